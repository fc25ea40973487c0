"""Dataset mistakes a user makes on disk, each refused or reported with a message that names the files and the fix:
two files with one stem, masks named after another convention, an archive passed as the data root, and a runs
directory written inside the dataset folder."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.data.base import DataError
from benchmark.data.check import check_dataset, detect_datasets
from benchmark.data.folder import open_folder
from benchmark.data.synthetic import write_all, write_folder, write_isic2017, write_kvasir, write_tn3k
from benchmark.registry import DATASETS, find_dataset_root, open_dataset

runner = CliRunner()


def _invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def replicas(tmp_path_factory) -> dict[str, Path]:
    return write_all(tmp_path_factory.mktemp("replicas"), n_train=4, n_test=3)


def _copy(replicas: dict[str, Path], key: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(replicas[key], tmp_path / replicas[key].name))


def _twin(path: Path) -> Path:
    """A copy of `path` under the same stem with another image suffix."""
    twin = path.with_suffix(".jpg" if path.suffix.lower() == ".png" else ".png")
    shutil.copy(path, twin)
    return twin


# --- 1. two files with one stem ------------------------------------------------------------------------------------

@pytest.mark.parametrize("what", ["image", "mask"])
@pytest.mark.parametrize("key", list(DATASETS))
def test_two_files_with_one_stem_are_refused_by_every_loader(key, what, replicas, tmp_path):
    root = _copy(replicas, key, tmp_path)
    ref = open_dataset(key, root).splits["train"][0]
    first = getattr(ref, what)
    twin = _twin(first)
    with pytest.raises(DataError) as caught:
        open_dataset(key, root)
    message = str(caught.value)
    assert str(min(first, twin)) in message and str(max(first, twin)) in message, message
    assert "keep one of them" in message


def test_data_check_names_both_files_of_a_stem(tmp_path):
    root = write_folder(tmp_path / "F2", n_train=4, n_test=2)
    image = root / "images" / "sample_000.jpg"
    Image.new("RGB", Image.open(image).size).save(root / "images" / "sample_000.png")   # a black re-export
    code, out = _invoke("data", "check", root, "--dataset", "folder", "--miniature", "--json")
    assert code == 1, out
    (problem,) = [p for d in json.loads(out)["datasets"] for p in d["problems"]]
    assert problem["kind"] == "duplicate_stem"
    assert f"{image} and {root / 'images' / 'sample_000.png'} share the stem sample_000" in problem["message"]
    assert "keep one of them" in problem["message"]
    assert "duplicate_stem" in check_dataset(root, "folder", expect_counts=False).to_text()


# --- 2. masks named after another convention -----------------------------------------------------------------------

def _suffixed_masks(tmp_path: Path) -> Path:
    root = write_folder(tmp_path / "F", n_train=4, n_test=2)
    for mask in (root / "masks").iterdir():
        mask.rename(mask.with_name(f"{mask.stem}_mask{mask.suffix}"))
    return root


def test_missing_mask_error_names_the_unpaired_masks(tmp_path):
    root = _suffixed_masks(tmp_path)
    source = open_folder(root)
    ref = source.splits["train"][0]
    with pytest.raises(DataError) as caught:
        source.read_mask(ref)
    message = str(caught.value)
    assert f"no mask for {ref.image}" in message
    assert f"{root / 'masks'} has 6 files with no image of the same stem (e.g. sample_000_mask.png)" in message
    assert "pair an image and its mask by identical stem" in message and "rename them" in message
    assert "--skip-bad" not in message    # skipping would skip every sample


def test_a_plainly_missing_mask_keeps_its_advice(tmp_path):
    root = write_folder(tmp_path / "F", n_train=4, n_test=2)
    (root / "masks" / "sample_000.png").unlink()
    source = open_folder(root)
    ref = next(r for refs in source.splits.values() for r in refs if r.key == "sample_000")
    with pytest.raises(DataError, match="restore it, or skip such samples with --skip-bad"):
        source.read_mask(ref)


def test_data_check_lists_masks_without_an_image(tmp_path):
    root = _suffixed_masks(tmp_path)
    report = check_dataset(root, "folder", expect_counts=False)
    kinds = [p.kind for p in report.errors]
    assert kinds.count("missing_mask") == 6 and kinds.count("extra_mask") == 6, kinds
    extra = [p for p in report.errors if p.kind == "extra_mask"]
    assert extra[0].path == str(root / "masks" / "sample_000_mask.png")
    assert "sample_000_mask.png has no image of the same stem" in extra[0].message


def test_no_class_count_is_noted_when_no_mask_pairs(tmp_path):
    """No mask pairs: nothing to infer the class count from, so no note about it (it read '(1, in -)')."""
    root = _suffixed_masks(tmp_path)
    assert not any("num_classes" in n for n in open_folder(root).notes)
    assert "num_classes" not in check_dataset(root, "folder", expect_counts=False).to_text()


def test_isic_masks_named_without_their_suffix_are_named_with_isic_s_rule(tmp_path):
    """ISIC pairs `ISIC_<id>.jpg` with `ISIC_<id>_segmentation.png`: masks saved as `ISIC_<id>.png` pair with
    nothing, and the missing-mask error and `data check` say so with ISIC's rule, not "identical stem"."""
    root = write_isic2017(tmp_path / "isic", n_train=3, n_test=2)
    truth = root / "ISIC-2017_Training_Part1_GroundTruth"
    for mask in list(truth.iterdir()):
        mask.rename(mask.with_name(mask.name.lower().replace("_segmentation", "")))
    source = open_dataset("isic2017", root)
    ref = source.splits["train"][0]
    assert ref.mask is None and len(source.unpaired_masks) == 3
    with pytest.raises(DataError) as caught:
        source.read_mask(ref)
    message = str(caught.value)
    assert f"{truth} has 3 files with no image (e.g. {ref.key.lower()}.png)" in message, message
    assert (f"pair an image and its mask by stem + `_segmentation` ({ref.key}.jpg with {ref.key}_segmentation.png)"
            in message and "--skip-bad" not in message), message
    report = check_dataset(root, "isic2017", expect_counts=False)
    extra = [p for p in report.errors if p.kind == "extra_mask"]
    assert len(extra) == 3 and "names a mask <image stem>_segmentation" in extra[0].message, report.errors
    assert [p.kind for p in check_dataset(write_isic2017(tmp_path / "ok", n_train=3, n_test=2), "isic2017",
                                          expect_counts=False).errors] == []


# --- 3. an archive or other file as the data root ------------------------------------------------------------------

@pytest.mark.parametrize("name", ["Kvasir-SEG.zip", "kvasir.tar.gz", "kvasir.tgz", "kvasir.7z", "kvasir.tar"])
def test_an_archive_as_data_root_says_extract_it(name, tmp_path):
    archive = tmp_path / name
    archive.write_bytes(b"PK\x03\x04")
    with pytest.raises(DataError) as caught:
        find_dataset_root("kvasir", archive)
    message = str(caught.value)
    assert f"data root {archive} is a file, not a folder" in message
    assert "extract it first and pass the folder" in message and "not found" not in message
    assert "is a file, not a folder" in check_dataset(archive, "kvasir").problems[0].message


def test_a_plain_file_as_data_root_is_called_a_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("x")
    with pytest.raises(DataError) as caught:
        open_dataset("folder", path)
    assert str(caught.value) == f"data root {path} is a file, not a folder; pass the dataset's folder"
    with pytest.raises(DataError, match="data root not found"):
        find_dataset_root("kvasir", tmp_path / "missing")


# --- 4. a runs directory inside the dataset folder -----------------------------------------------------------------

def _runs_in(folder: Path, dataset: str) -> Path:
    """What `segbench train --runs-dir FOLDER` leaves: FOLDER/<dataset>/<run>/config.yaml, a lock, FOLDER/.cache."""
    run = folder / dataset / "segdino__test__smoke__s0"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("data:\n  dataset: %s\n" % dataset)
    (run / "DONE").write_text("")
    (folder / dataset / ".segdino__test__smoke__s0.lock").write_text("{}")
    (folder / dataset / "unet__test__smoke__s0.corrupt-20250101-120000").mkdir()   # moved aside, config.yaml lost
    (folder / ".cache").mkdir()
    return folder / dataset


def test_a_runs_folder_in_the_dataset_folder_is_not_the_dataset(tmp_path):
    root = write_kvasir(tmp_path / "K3", n_train=4, n_test=2)
    _runs_in(root, "kvasir")
    assert find_dataset_root("kvasir", root) == root
    assert len(open_dataset("kvasir", root).splits["train"]) == 4
    assert detect_datasets(root) == [("kvasir", root)]
    assert check_dataset(root, "kvasir", expect_counts=False).ok


def test_a_runs_folder_beside_the_dataset_is_not_the_dataset(tmp_path):
    data = write_kvasir(tmp_path / "data" / "kvasir-seg", n_train=4, n_test=2).parent
    _runs_in(data, "kvasir")      # data/kvasir/ (runs) sorts before data/kvasir-seg/ (the dataset)
    assert find_dataset_root("kvasir", data) == data / "kvasir-seg"
    assert detect_datasets(data) == [("kvasir", data / "kvasir-seg")]


def test_a_dataset_folder_holding_a_run_is_still_the_dataset(tmp_path):
    data = tmp_path / "data"
    write_tn3k(data / "tn3k", n_train=5, n_test=2)
    _runs_in(data, "tn3k")        # runs written into the dataset's own folder: it still holds the dataset
    assert find_dataset_root("tn3k", data) == data / "tn3k"


def test_a_duplicate_stem_error_survives_a_worker_process(tmp_path):
    """A sweep's workers raise it and the sweep unpickles it: the files and the message travel with it."""
    import pickle

    from benchmark.data.base import DuplicateStemError, by_stem

    files = [tmp_path / "images" / name for name in ("a.jpg", "a.png", "b.jpg", "b.tif")]
    with pytest.raises(DuplicateStemError) as caught:
        by_stem(files)
    again = pickle.loads(pickle.dumps(caught.value))
    assert again.pairs == caught.value.pairs and str(again) == str(caught.value)
    assert str(again).endswith(f"; 1 more file in {tmp_path / 'images'} shares a stem with another")


def test_16_bit_grey_images_are_stretched_not_clipped_to_white(tmp_path):
    """PIL's convert("RGB") clips an I;16 image to 255 everywhere; read_image stretches it to 0..255."""
    from PIL import Image

    from benchmark.data.base import read_image

    values = (np.arange(48 * 64).reshape(48, 64) * 10 + 10280).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "ct.png")
    assert Image.open(tmp_path / "ct.png").mode == "I;16"
    image = read_image(tmp_path / "ct.png")
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8
    assert image.min() == 0 and image.max() == 255 and (image[..., 0] == image[..., 2]).all()
    assert np.all(np.diff(image[..., 0].ravel().astype(int)) >= 0)   # the order of grey levels is kept
    Image.fromarray(np.full((8, 8), 4000, np.uint16)).save(tmp_path / "flat.png")
    assert (read_image(tmp_path / "flat.png") == 0).all()


def test_a_file_that_is_no_image_is_called_so(tmp_path):
    """A .txt among the images (`predict RUN notes.txt`) is not an image: nothing to re-extract. An image file
    that fails to decode keeps that advice."""
    from benchmark.data.base import read_image

    for name, what in (("notes.txt", "a .txt file"), ("README", "no suffix, and of no format PIL knows")):
        (tmp_path / name).write_text("not pixels")
        with pytest.raises(DataError) as caught:
            read_image(tmp_path / name, skip_hint=False)
        assert str(caught.value) == (f"cannot read {tmp_path / name}: not an image ({what}); give image files "
                                     "(.jpg, .jpeg, .png, .bmp, .tif, .tiff)")
    (tmp_path / "broken.png").write_text("not pixels")
    with pytest.raises(DataError, match="cannot read image .*broken.png .*; re-extract or replace this file"):
        read_image(tmp_path / "broken.png")


def test_a_cache_decoded_with_skip_bad_does_not_skip_for_a_run_without_it(tmp_path):
    """The decoded-image cache is shared: an entry a --skip-bad run wrote (an unreadable image left out) must not
    let a run without --skip-bad score one image fewer; it fails as a fresh decode does."""
    from benchmark.data.image_cache import load_resized
    from benchmark.data.kvasir import open_kvasir
    from benchmark.data.synthetic import write_kvasir

    root = write_kvasir(tmp_path / "Kvasir-SEG", n_train=4, n_test=3, seed=0)
    source = open_kvasir(root)
    bad = source.splits["test"][0].image
    bad.write_bytes(bad.read_bytes()[:200])   # truncated
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="cannot read image .*--skip-bad"):
        load_resized(source, source.splits["test"], 32, cache)
    kept = load_resized(source, source.splits["test"], 32, cache, skip_bad=True)
    assert len(kept) == 2 and kept.skipped[0]["key"] == source.splits["test"][0].key
    with pytest.raises(DataError, match=f"cannot read image {bad}"):
        load_resized(source, source.splits["test"], 32, cache)


# --- 5. a dataset folder under a name of the user's ------------------------------------------------------------------

def test_a_dataset_under_another_name_is_found_by_its_layout(tmp_path):
    """walk15 #8: `data check ROOT` found ViSha_release/ and VMD_dataset/ by their layout, while `--dataset visha
    --data-root ROOT` looked only for the usual names and failed naming ROOT/train/images."""
    from benchmark.data.synthetic import write_visha, write_vmd

    root = tmp_path / "rn"
    write_visha(root / "ViSha_release", n_train=6, n_test=3)
    write_vmd(root / "VMD_dataset", n_train=6, n_test=3)
    write_tn3k(root / "thyroid", n_train=5, n_test=2)
    for key, folder in (("visha", "ViSha_release"), ("vmd", "VMD_dataset"), ("tn3k", "thyroid")):
        assert find_dataset_root(key, root) == root / folder
        assert open_dataset(key, root).root == root / folder
    assert check_dataset(root, "visha", expect_counts=False).ok
    assert find_dataset_root("folder", root) == root               # a folder dataset is the data root itself
    write_visha(root / "ViSha_copy", n_train=6, n_test=3)           # two of them: say which, do not pick
    with pytest.raises(DataError) as caught:
        find_dataset_root("visha", root)
    assert str(caught.value) == (f"{root} holds 2 folders laid out as visha: ViSha_copy, ViSha_release; give the one "
                                 "to use as the data root")
    write_visha(root / "ViSha", n_train=6, n_test=3)                # a usual name still wins
    assert find_dataset_root("visha", root) == root / "ViSha"
    with pytest.raises(DataError, match=f"expected folders {tmp_path / 'train' / 'images'}"):
        open_dataset("visha", tmp_path)                              # nothing laid out as ViSha: the loader's error


def test_a_frame_without_mask_is_judged_by_its_own_video_s_stray_files(tmp_path):
    """A stray mask file in one video says nothing of another video's naming: a frame whose mask is missing is told
    to restore it, unless its own video holds masks that pair with no image (then the pairing rule is named)."""
    import shutil

    from benchmark.data.synthetic import write_vmd
    from benchmark.data.vmd import open_vmd

    root = write_vmd(tmp_path / "VMD", n_train=12, n_test=6)
    first = open_vmd(root).splits["train"]
    lost = first[0]
    other = next(r for r in first if r.group != lost.group)
    lost.mask.unlink()
    shutil.copy(other.mask, other.mask.with_name("stray_frame.png"))    # another video's stray file
    source = open_vmd(root)
    ref = next(r for r in source.splits["train"] if r.key == lost.key)
    assert source.no_mask_message(ref).endswith("restore it, or skip such samples with --skip-bad")
    shutil.copy(other.mask, lost.mask.with_name("misnamed.png"))        # its own video's: a naming problem
    source = open_vmd(root)
    ref = next(r for r in source.splits["train"] if r.key == lost.key)
    assert "misnamed.png" in source.no_mask_message(ref) and "rename them" in source.no_mask_message(ref)


def _two_foreground_indices(mask: Path) -> None:
    """Re-save a palette mask with a second foreground index: its top rows index 1, the next ones index 2 (a
    multi-class mask, or one of another dataset, dropped in)."""
    palette = Image.open(mask)
    arr = np.asarray(palette).copy()
    arr[:2], arr[2:4] = 1, 2
    out = Image.fromarray(arr, mode="P")
    out.putpalette(palette.getpalette())
    out.save(mask)


def test_a_palette_mask_of_two_foreground_indices_is_refused_by_train_and_score_as_data_check_reports_it(tmp_path):
    """VMD-D reads foreground as index > 0: a mask of two foreground indices was reported by `data check` but read
    as one class by training and `score`, silently. All three now refuse it with the same words, naming the file,
    its indices and the fix; training's --skip-bad skips it."""
    from benchmark.data.image_cache import load_resized
    from benchmark.data.synthetic import write_vmd
    from benchmark.metrics import score_split

    root = write_vmd(tmp_path / "VMD", n_train=6, n_test=3)
    source = open_dataset("vmd", root)
    ref = source.splits["test"][1]
    _two_foreground_indices(ref.mask)
    words = (f"mask {ref.mask} holds indices {{0, 1, 2}}; this dataset's masks hold 0 and one foreground index, and "
             "every other index would read as foreground too (a multi-class or mislabelled mask?): re-export it with "
             "index 0 background and index 1 foreground")
    (problem,) = check_dataset(root, "vmd", expect_counts=False).errors
    assert (problem.kind, problem.path, problem.message) == ("non_binary_mask", str(ref.mask), words)
    with pytest.raises(DataError) as caught:   # training's decode (the image cache's one read of each mask)
        load_resized(source, source.splits["test"], 32)
    assert str(caught.value) == words + ", or skip such samples with --skip-bad"
    split = load_resized(source, source.splits["test"], 32, skip_bad=True)
    assert [s["key"] for s in split.skipped] == [ref.key] and ref.key not in [r.key for r in split.refs]
    for other in source.splits["test"]:   # `score --dataset vmd`: perfect predictions, but one mask is refused
        path = tmp_path / "pred" / f"{other.key}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros(Image.open(other.mask).size[::-1], np.uint8)).save(path)
    with pytest.raises(DataError) as caught:
        score_split(tmp_path / "pred", source, "test", "mirror")
    assert str(caught.value) == words   # score has no --skip-bad
