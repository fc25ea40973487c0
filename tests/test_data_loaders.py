"""Every dataset loader reads its generated miniature replica through the same code path as real data: layout quirks,
official splits and counts, video ids as groups, binarisation per mask encoding, TN3K's fold files, the folder
dataset's encodings, and load_resized's handling of bad files."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark.data.base import DataError, natural_key, read_mask
from benchmark.data.folder import open_folder
from benchmark.data.image_cache import load_resized
from benchmark.data.isic2017 import open_isic2017
from benchmark.data.splits import carve_validation, make_splits
from benchmark.data.synthetic import FOLDER_NAMES, write_all, write_folder, write_msd, write_tn3k
from benchmark.data.tn3k import open_tn3k
from benchmark.registry import DATASETS, find_dataset_root, open_dataset

N_TRAIN, N_TEST = 10, 4
OFFICIAL = {   # REFERENCE.md §4
    "tn3k": ({"train": 2879, "test": 614}, {}, None),
    "kvasir": ({"train": 880, "test": 120}, {}, None),
    "isic2017": ({"train": 2000, "val": 150, "test": 600}, {}, None),
    "msd": ({"train": 3063, "test": 955}, {}, None),
    "vmd": ({"train": 7835, "test": 7152}, {"train": 143, "test": 126}, None),
    "visha": ({}, {"train": 50, "test": 70}, 11685),
    "folder": ({}, {}, None),
}
VIDEO = ("vmd", "visha")


@pytest.fixture(scope="module")
def replicas(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    root = tmp_path_factory.mktemp("data")
    return root, write_all(root, N_TRAIN, N_TEST, seed=0)


def _open(key: str, replicas) -> object:
    root, paths = replicas
    # --data-root is the folder holding every dataset, except for a user's folder dataset (its own folder)
    return open_dataset(key, paths[key] if key == "folder" else root)


def test_registry_lists_every_dataset():
    assert set(OFFICIAL) == set(DATASETS)


@pytest.mark.parametrize("key", list(OFFICIAL))
def test_loader_reads_its_replica(key, replicas):
    source = _open(key, replicas)
    assert source.name == key
    expected_splits = {"train", "val", "test"} if key == "isic2017" else {"train", "test"}
    assert set(source.splits) == expected_splits
    sizes = {"train": N_TRAIN, "test": N_TEST, "val": max(2, N_TEST // 2)}
    assert {k: len(v) for k, v in source.splits.items()} == {k: sizes[k] for k in expected_splits}
    # keys are unique within a split (TN3K's test and trainval both start at 0000)
    for refs in source.splits.values():
        assert len({r.key for r in refs}) == len(refs)
    for ref in source.splits["train"][:3] + source.splits["test"][:2]:
        image, mask = source.read_image(ref), source.read_mask(ref)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert mask.shape == image.shape[:2] and set(np.unique(mask)) <= {0, 1}
        assert 0.01 < mask.mean() < 0.8, f"{ref.mask}: the scene's target should be binarised as foreground"


@pytest.mark.parametrize("key", list(OFFICIAL))
def test_official_counts_are_encoded(key, replicas):
    counts, groups, total = OFFICIAL[key]
    source = _open(key, replicas)
    assert source.expected_counts == counts
    assert source.expected_groups == groups
    assert source.expected_total == total


@pytest.mark.parametrize("key", list(OFFICIAL))
def test_load_resized_and_cache(key, replicas, tmp_path):
    source = _open(key, replicas)
    refs = source.splits["test"]
    first = load_resized(source, refs, 32, tmp_path)
    assert first.images.shape == (len(refs), 32, 32, 3) and first.masks.shape == (len(refs), 32, 32)
    assert set(np.unique(first.masks)) <= {0, 1} and first.masks.any()
    again = load_resized(source, refs, 32, tmp_path)
    assert again.cache_key == first.cache_key
    np.testing.assert_array_equal(np.asarray(again.images), first.images)


@pytest.mark.parametrize("key", VIDEO)
def test_video_frames_are_grouped_by_video(key, replicas):
    source = _open(key, replicas)
    train = source.splits["train"]
    for ref in train:
        video, frame = ref.key.split("/")
        assert ref.group == video and ref.group_id == video and frame == Path(ref.image).stem
    by_video: dict[str, list[str]] = {}
    for ref in train:
        by_video.setdefault(ref.group, []).append(ref.key.split("/")[1])
    assert len(by_video) >= 3
    assert all(frames == sorted(frames, key=natural_key) for frames in by_video.values())
    for seed in range(5):
        rest, val = carve_validation(train, 0.3, seed)
        assert val and rest and not {r.group for r in rest} & {r.group for r in val}
        splits, rule = make_splits(source, seed, 0.3)
        assert not {r.group for r in splits["train"]} & {r.group for r in splits["val"]}
        assert "seeded split of training groups" in rule


def test_vmd_palette_masks_binarise_by_index(replicas):
    source = _open("vmd", replicas)
    ref = source.splits["train"][0]
    raw = Image.open(ref.mask)
    assert raw.mode == "P" and set(np.unique(np.asarray(raw))) == {0, 1}
    assert source.mask_encoding == "nonzero"
    assert source.read_mask(ref).any()
    # the quirk: the foreground's palette colour is dark, so a > 127 grey threshold would read it as empty; every
    # binary encoding therefore reads a palette mask by its index
    assert not (np.asarray(raw.convert("L")) > 127).any()
    np.testing.assert_array_equal(read_mask(ref.mask, "threshold128"), source.read_mask(ref))


def test_tn3k_grey_jpeg_masks_and_fold_files(replicas):
    _, paths = replicas
    source = open_tn3k(paths["tn3k"])
    raw = Image.open(source.splits["train"][0].mask)
    assert raw.format == "JPEG" and raw.mode == "L"
    assert len(source.val_folds) == 5
    train_keys = [r.key for r in source.splits["train"]]
    for k in range(5):
        fold = json.loads((paths["tn3k"] / f"tn3k-trainval-fold{k}.json").read_text())
        assert source.val_folds[k] == [f"{i:04d}" for i in fold["val"]]   # ids are the trainval image numbers
    held_out = [key for fold in source.val_folds for key in fold]
    assert sorted(held_out) == sorted(train_keys)    # the five folds partition trainval
    for seed in range(6):
        splits, rule = make_splits(source, seed)
        assert [r.key for r in splits["val"]] == source.val_folds[seed % 5]
        assert f"fold {seed % 5}" in rule
        assert sorted(r.key for r in splits["train"] + splits["val"]) == sorted(train_keys)
        assert splits["test"] == source.splits["test"]


def test_tn3k_fold_ids_as_stems_and_bad_ids(tmp_path):
    root = write_tn3k(tmp_path / "tn3k", 6, 2)
    (root / "tn3k-trainval-fold0.json").write_text(json.dumps({"train": [], "val": ["0003.jpg", "0001"]}))
    assert open_tn3k(root).val_folds[0] == ["0003", "0001"]
    (root / "tn3k-trainval-fold1.json").write_text(json.dumps({"train": [0], "val": [6]}))
    with pytest.raises(DataError, match="tn3k-trainval-fold1.json.*id 6"):
        open_tn3k(root)
    for p in root.glob("*.json"):
        p.unlink()
    source = open_tn3k(root)
    assert source.val_folds == [] and any("no tn3k-trainval-fold" in n for n in source.notes)


def test_tn3k_fold_ids_are_image_numbers_so_a_missing_file_shifts_nothing(tmp_path):
    root = write_tn3k(tmp_path / "tn3k", 6, 2)
    for k in range(1, 5):
        (root / f"tn3k-trainval-fold{k}.json").unlink()
    (root / "tn3k-trainval-fold0.json").write_text(json.dumps({"train": [0, 1, 2, 3], "val": [4, 5]}))
    for folder in ("trainval-image", "trainval-mask"):
        (root / folder / "0002.jpg").unlink()   # not held out: the held-out ids still name 0004 and 0005
    source = open_tn3k(root)
    assert source.val_folds[0] == ["0004", "0005"]
    assert any("ids read as trainval image numbers" in n for n in source.notes)
    for folder in ("trainval-image", "trainval-mask"):
        (root / folder / "0005.jpg").unlink()   # held out: named, never silently replaced
    with pytest.raises(DataError, match=r"fold0.json holds id 5, but trainval-image/0005.jpg is missing"):
        open_tn3k(root)


def test_tn3k_unnumbered_files_fall_back_to_positions(tmp_path):
    root = write_tn3k(tmp_path / "tn3k", 6, 2)
    for k in range(1, 5):
        (root / f"tn3k-trainval-fold{k}.json").unlink()
    for folder in ("trainval-image", "trainval-mask"):
        for i, path in enumerate(sorted((root / folder).iterdir())):
            path.rename(path.with_name(f"case{i:02d}.jpg"))
    (root / "tn3k-trainval-fold0.json").write_text(json.dumps({"train": [0, 1, 2, 3], "val": [4, 5]}))
    source = open_tn3k(root)
    assert source.val_folds[0] == ["case04", "case05"]
    assert any("positions in the sorted trainval-image/ listing" in n for n in source.notes)


def test_tn3k_missing_folder_is_named(tmp_path):
    root = write_tn3k(tmp_path / "tn3k", 5, 2)
    shutil.rmtree(root / "test-mask")
    with pytest.raises(DataError, match="test-mask"):
        open_tn3k(root)


def test_isic_quirks(replicas):
    root, paths = replicas
    holder = paths["isic2017"]
    masks = [p.name for p in (holder / "ISIC-2017_Training_Part1_GroundTruth").iterdir()]
    assert any("_Segmentation" in m for m in masks) and any(m.endswith(".PNG") for m in masks)
    assert any(p.name.endswith("_superpixels.png") for p in (holder / "ISIC-2017_Training_Data").iterdir())
    assert any(p.suffix == ".csv" for p in (holder / "ISIC-2017_Training_Data").iterdir())
    for where in (holder, root):     # the folder holding the ISIC-2017_* folders, or one above it
        source = open_isic2017(where)
        assert source.root == holder
        refs = [r for refs in source.splits.values() for r in refs]
        assert all(r.mask is not None for r in refs)          # every suffix case matched
        assert not any("superpixels" in r.key for r in refs)
        assert all(r.key.startswith("ISIC_") for r in refs)


def test_isic_nested_archive_folder(tmp_path, replicas):
    _, paths = replicas
    holder = tmp_path / "isic"
    shutil.copytree(paths["isic2017"], holder)
    data = holder / "ISIC-2017_Test_v2_Data"
    inner = data / "ISIC-2017_Test_v2_Data"
    inner.mkdir()
    for p in list(data.iterdir()):
        if p != inner:
            p.rename(inner / p.name)
    assert len(open_isic2017(holder).splits["test"]) == N_TEST


def test_msd_known_bad_sample_is_excluded_by_rule(replicas):
    source = _open("msd", replicas)
    assert "1751_512x640" not in [r.key for r in source.splits["test"]]
    assert [(e["split"], e["key"]) for e in source.excluded] == [("test", "1751_512x640")]
    assert "known bad ground-truth mask" in source.excluded[0]["reason"]
    assert any("1751_512x640" in n for n in source.notes)
    load_resized(source, source.splits["test"], 32)     # its bad mask is never read


def test_msd_without_the_known_bad_file(tmp_path):
    root = write_msd(tmp_path / "MSD", 4, 2)
    (root / "test" / "image" / "1751_512x640.jpg").unlink()
    assert open_dataset("msd", root).excluded == []


def test_find_dataset_root_uses_usual_names(replicas):
    root, paths = replicas
    for key in FOLDER_NAMES:
        if key not in ("folder", "isic2017"):
            assert find_dataset_root(key, root) == paths[key]
            assert find_dataset_root(key, paths[key]) == paths[key]
    with pytest.raises(KeyError, match="valid"):
        open_dataset("nope", root)


# --- the folder dataset ------------------------------------------------------------------------------------------

def test_folder_binary_255_and_01(tmp_path):
    source = open_folder(write_folder(tmp_path / "a", 6, 2))
    assert (source.mask_encoding, source.num_classes) == ("threshold128", 2)
    source01 = open_folder(write_folder(tmp_path / "b", 6, 2, binary_values=1))
    assert (source01.mask_encoding, source01.num_classes) == ("index", 2)
    ref = source01.splits["train"][0]
    assert set(np.unique(source01.read_mask(ref))) == {0, 1}


def test_folder_multiclass_inferred_and_checked(tmp_path):
    root = write_folder(tmp_path / "m", 6, 2, num_classes=4)
    source = open_folder(root)
    assert (source.mask_encoding, source.num_classes) == ("index", 4)
    assert any("inferred" in n for n in source.notes)
    values = set()
    for ref in source.splits["train"]:
        values |= set(np.unique(source.read_mask(ref)).tolist())
    assert values == {0, 1, 2, 3}
    assert open_folder(root, num_classes=6).num_classes == 6
    with pytest.raises(DataError, match=r"masks/sample_\d+\.png holds .*num_classes 3"):
        open_folder(root, num_classes=3)


def test_folder_mixed_encodings_name_the_file(tmp_path):
    root = write_folder(tmp_path / "x", 6, 2)
    bad = root / "masks" / "sample_003.png"
    arr = np.asarray(Image.open(bad)).copy()
    arr[:10] = 128
    Image.fromarray(arr).save(bad)
    with pytest.raises(DataError, match="sample_003.png"):
        open_folder(root)
    assert any("sample_003.png" in n for n in open_folder(root, strict=False).notes)


def _set_pixel(mask: Path, value: int, at: tuple[int, int] = (3, 3)) -> None:
    arr = np.asarray(Image.open(mask)).copy()
    arr[at] = value
    Image.fromarray(arr).save(mask)


def test_folder_stray_index_is_refused_not_read_as_classes(tmp_path):
    """One pixel of 7 in a 0/1 dataset: indices 2..6 appear in no mask, so the count is not inferred as 8 (a stray
    value would make an 8-class model); given (--num-classes 8) it is checked and gaps are fine."""
    root = write_folder(tmp_path / "s", 8, 2, binary_values=1)
    stray = root / "masks" / "sample_007.png"
    _set_pixel(stray, 7)
    with pytest.raises(DataError) as caught:
        open_folder(root)
    message = str(caught.value)
    assert f"the largest mask index is 7 (in {stray})" in message, message
    assert "indices 2..6 appear in no mask: a stray value?" in message
    assert "--num-classes 8" in message and "train 8 classes" in message
    assert [n for n in open_folder(root, strict=False).notes if "appear in no mask" in n] == [message]
    given = open_folder(root, num_classes=8)
    assert (given.num_classes, given.inferred_classes) == (8, None)   # given, as no count is inferred here
    _set_pixel(root / "masks" / "sample_001.png", 3)
    with pytest.raises(DataError, match=r"indices 2, 4\.\.6 appear in no mask"):
        open_folder(root)


def test_folder_top_class_in_one_mask_is_noted(tmp_path):
    root = write_folder(tmp_path / "r", 10, 2, binary_values=1)
    _set_pixel(root / "masks" / "sample_004.png", 2)   # no gap: 3 classes, but class 2 only here
    source = open_folder(root)
    assert (source.num_classes, source.inferred_classes) == (3, 3)
    assert [open_folder(root, num_classes=n).inferred_classes for n in (3, 4)] == [3, 3]
    assert "class 2, the largest index, is in only 1 mask of 12 (sample_004.png): a stray value? if so, fix the " \
           "mask" in source.notes
    _set_pixel(root / "masks" / "sample_005.png", 2)
    assert not any("only 1 mask" in n for n in open_folder(root).notes)


def _soften(mask: Path, factor: int = 2) -> None:
    """A binary mask resized bilinearly (down, then up to its size): grey values 1..254 along its edges."""
    img = Image.open(mask)
    img.resize((img.width // factor, img.height // factor), Image.BILINEAR).resize(img.size, Image.BILINEAR).save(mask)


def test_folder_soft_edged_masks_are_binary(tmp_path):
    """Anti-aliased 0/255 masks (edges in grey 1..254) are binary masks read at grey >= 128, not ~250 classes."""
    root = write_folder(tmp_path / "soft", 6, 2)
    masks = sorted((root / "masks").glob("*.png"))
    for mask in masks[:5]:
        _soften(mask)
    assert len(np.unique(np.asarray(Image.open(masks[0])))) > 50
    source = open_folder(root)
    assert (source.mask_encoding, source.num_classes) == ("threshold128", 2)
    assert "5 of 8 masks have soft (anti-aliased) edges, grey values between 0 and 255 (e.g. sample_000.png), " \
           "binarised at grey >= 128 as well" in source.notes
    ref = next(r for r in source.splits["train"] if r.mask == masks[0])
    assert np.array_equal(source.read_mask(ref), (np.asarray(Image.open(masks[0])) >= 128).astype(np.uint8))
    with pytest.raises(DataError) as caught:   # a class count for 0/255 masks: 255 is the value at fault
        open_folder(root, num_classes=3)
    assert f"mask {masks[0]} holds" in str(caught.value) and "values, among them {255}: 255 is no class index for " \
        "num_classes 3 (indices 0..2): 0/255 masks are binary; give --num-classes 2" in str(caught.value)
    arr = np.asarray(Image.open(masks[6])).copy()
    arr[:10] = 128                                  # a flat grey band is no soft edge: still refused
    Image.fromarray(arr).save(masks[6])
    with pytest.raises(DataError, match="sample_006.png holds {0, 128, 255}: the other masks are binary 0/255"):
        open_folder(root)


def test_folder_misfit_shows_the_offending_value(tmp_path):
    root = write_folder(tmp_path / "ten", 6, 2, num_classes=10)
    mask = root / "masks" / "sample_002.png"
    arr = np.asarray(Image.open(mask)).copy()
    arr[0, :10], arr[1, 0] = np.arange(10), 255     # every class and one 255: past 8 values, 255 is what shows
    Image.fromarray(arr).save(mask)
    with pytest.raises(DataError, match=r"sample_002.png holds 11 values, among them \{255\}: 255 among class "):
        open_folder(root)


def test_folder_images_in_no_split_list_are_noted(tmp_path):
    root = write_folder(tmp_path / "l", 8, 2)
    (root / "train.txt").write_text("\n".join(f"sample_{i:03d}" for i in range(6)) + "\n")
    (root / "val.txt").write_text("sample_006\nsample_007\n")
    (root / "test.txt").write_text("sample_008\n")
    source = open_folder(root)
    assert "1 image in images/ is in no split list and is not used (e.g. sample_009)" in source.notes
    (root / "test.txt").write_text("sample_009\n")
    (root / "val.txt").unlink()
    assert "3 images in images/ are in no split list and are not used (e.g. sample_006)" in open_folder(root).notes


def test_folder_seeded_split_without_lists(tmp_path):
    root = write_folder(tmp_path / "s", 8, 2, split_lists=False)
    source = open_folder(root)
    train, test = [r.key for r in source.splits["train"]], [r.key for r in source.splits["test"]]
    assert (len(train), len(test)) == (8, 2) and not set(train) & set(test)
    assert any("seeded 80%/20%" in n and "seed 0" in n for n in source.notes)
    assert [r.key for r in open_folder(root).splits["test"]] == test       # deterministic
    assert [r.key for r in open_folder(root, seed=1).splits["test"]] != test or len(test) == 10


def test_folder_split_lists(tmp_path):
    root = write_folder(tmp_path / "l", 6, 2)
    train = [line for line in (root / "train.txt").read_text().split() if Path(line).stem != "sample_000"]
    (root / "train.txt").write_text("\n".join(train) + "\n")   # each image in one list
    (root / "val.txt").write_text("sample_000.jpg\n")
    source = open_folder(root)
    assert [r.key for r in source.splits["val"]] == ["sample_000"]
    assert make_splits(source, 0)[1] == "the dataset's val.txt"     # the user's own list, not an official split
    (root / "test.txt").unlink()
    with pytest.raises(DataError, match="no test.txt"):
        open_folder(root)
    (root / "test.txt").write_text("sample_999\n")
    with pytest.raises(DataError, match="sample_999"):
        open_folder(root)
    (root / "test.txt").write_text("sample_007\n")
    (root / "train.txt").rename(root / "train.old")   # lists without train.txt: refused (was a KeyError 'train')
    with pytest.raises(DataError, match="found val.txt, test.txt in .* but no train.txt"):
        open_folder(root)


# --- bad files met while training --------------------------------------------------------------------------------

def _damaged_tn3k(tmp_path: Path):
    root = write_tn3k(tmp_path / "tn3k", 6, 4)
    source = open_tn3k(root)
    refs = source.splits["test"]
    data = refs[0].image.read_bytes()
    refs[0].image.write_bytes(data[: len(data) // 2])         # truncated download
    refs[1].mask.unlink()                                     # missing file
    mask = Image.open(refs[2].mask)
    mask.resize((mask.width + 8, mask.height)).save(refs[2].mask)   # size mismatch
    return source, refs


def test_load_resized_names_a_bad_file(tmp_path):
    source, refs = _damaged_tn3k(tmp_path)
    for ref, bad in ((refs[0], refs[0].image), (refs[1], refs[1].mask), (refs[2], refs[2].mask)):
        with pytest.raises(DataError, match=f"{bad.parent.name}/{bad.name}"):
            load_resized(source, [ref], 32, tmp_path / "cache")


def test_load_resized_skips_and_records_bad_files(tmp_path):
    source, refs = _damaged_tn3k(tmp_path)
    split = load_resized(source, refs, 32, tmp_path / "cache", skip_bad=True)
    assert [r.key for r in split.refs] == [refs[3].key] and split.images.shape == (1, 32, 32, 3)
    assert [s["key"] for s in split.skipped] == [r.key for r in refs[:3]]
    assert "0000.jpg" in split.skipped[0]["reason"] and "0001.jpg" in split.skipped[1]["reason"]
    cached = load_resized(source, refs, 32, tmp_path / "cache", skip_bad=True)
    assert cached.skipped == split.skipped and len(cached) == len(split)


def test_replicas_are_deterministic(tmp_path):
    a, b = write_tn3k(tmp_path / "a", 5, 2, seed=3), write_tn3k(tmp_path / "b", 5, 2, seed=3)
    for p in sorted(a.rglob("*")):
        if p.is_file():
            assert p.read_bytes() == (b / p.relative_to(a)).read_bytes(), p


def test_natural_key_orders_numbered_frames():
    assert sorted(["f10", "f2", "f1"], key=natural_key) == ["f1", "f2", "f10"]


def test_archive_leftovers_are_not_datasets_or_videos(tmp_path):
    # macOS zips carry a __MACOSX mirror of every folder (with ._ files); notebooks leave .ipynb_checkpoints
    from benchmark.data.synthetic import write_isic2017, write_vmd

    write_isic2017(tmp_path / "isic" / "data", n_train=4, n_test=2)
    for part in ("ISIC-2017_Training_Data", "ISIC-2017_Test_v2_Data"):
        (tmp_path / "isic" / "__MACOSX" / part).mkdir(parents=True)
        (tmp_path / "isic" / "__MACOSX" / part / "._ISIC_0000000.jpg").write_bytes(b"\x00\x05\x16\x07")
    source = open_isic2017(tmp_path / "isic")
    assert len(source.splits["train"]) == 4 and len(source.splits["test"]) == 2
    write_vmd(tmp_path / "VMD", n_train=6, n_test=3)
    (tmp_path / "VMD" / "train" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "VMD" / "train" / "__MACOSX").mkdir()
    assert len(open_dataset("vmd", tmp_path / "VMD").splits["train"]) == 6


def test_kvasir_split_lists_must_be_disjoint_and_without_repeats(tmp_path):
    from benchmark.data.synthetic import write_kvasir

    root = write_kvasir(tmp_path / "Kvasir-SEG", n_train=6, n_test=2)
    train, test = (root / "train.txt").read_text().split(), (root / "val.txt").read_text().split()
    (root / "val.txt").write_text("\n".join(test + train[:1]) + "\n")
    with pytest.raises(DataError, match="1 images are in both train.txt and val.txt"):
        open_dataset("kvasir", root)
    (root / "val.txt").write_text("\n".join(test) + "\n")
    (root / "train.txt").write_text("\n".join(train + train[:2]) + "\n")
    with pytest.raises(DataError, match="the train list names 2 images more than once"):
        open_dataset("kvasir", root)


def test_folder_dataset_lists_must_be_disjoint(tmp_path):
    root = write_folder(tmp_path / "mine", n_train=6, n_test=2)
    stems = sorted(p.stem for p in (root / "images").iterdir())
    (root / "train.txt").write_text("\n".join(stems[:5]) + "\n")
    (root / "test.txt").write_text("\n".join(stems[4:]) + "\n")
    with pytest.raises(DataError, match=f"'{stems[4]}' is listed in both train.txt and test.txt"):
        open_folder(root)


def test_vmd_training_videos_may_sit_in_train_origin(tmp_path):
    from benchmark.data.synthetic import write_vmd

    write_vmd(tmp_path / "VMD", n_train=6, n_test=3)
    (tmp_path / "VMD" / "train").rename(tmp_path / "VMD" / "train_origin")
    source = open_dataset("vmd", tmp_path)
    assert len(source.splits["train"]) == 6 and "train split read from train_origin/" in source.notes


def test_kvasir_unzipped_into_a_folder_of_its_own_name(tmp_path):
    from benchmark.data.synthetic import write_kvasir

    write_kvasir(tmp_path / "kvasir-seg" / "Kvasir-SEG", n_train=6, n_test=2)
    assert len(open_dataset("kvasir", tmp_path).splits["train"]) == 6           # --data-root above it
    assert len(open_dataset("kvasir", tmp_path / "kvasir-seg").splits["test"]) == 2


def test_folder_images_in_sub_folders_are_named_not_dropped_silently(tmp_path):
    """Only images/ itself is read; images in its sub-folders are counted in a note that data check prints."""
    import shutil

    root = write_folder(tmp_path / "f", 6, 2, split_lists=False)
    (root / "images" / "sub a").mkdir()
    moved = sorted((root / "images").glob("*.jpg"))[0]
    shutil.move(moved, root / "images" / "sub a" / moved.name)
    (root / "images" / ".cache").mkdir()
    (root / "images" / ".cache" / "thumb.jpg").write_bytes(b"")
    source = open_folder(root)
    assert sum(map(len, source.splits.values())) == 7
    assert any(n.startswith("1 image in sub-folders of") and "sub a" in n for n in source.notes), source.notes


def test_val_fraction_is_reset_where_the_validation_split_is_not_carved(tmp_path):
    """TN3K's fold files, ISIC's official validation split, a folder's val.txt and selection on the test split leave
    data.val_fraction unused: such a run is the default one (no second recipe in a report, no resume conflict), and
    a note says why; where validation is carved (Kvasir), the setting stays and moves the split."""
    from benchmark.config import load_config
    from benchmark.registry import canonical_data

    roots = write_all(tmp_path, 6, 3)
    folder = write_folder(tmp_path / "mine", 8, 3)
    first, *rest = (folder / "train.txt").read_text().split()
    (folder / "train.txt").write_text("\n".join(rest) + "\n")
    (folder / "val.txt").write_text(first + "\n")
    for key, root, preset, kept in [("kvasir", roots["kvasir"], "paper", True), ("tn3k", roots["tn3k"], "paper", False),
                                    ("isic2017", roots["isic2017"], "paper", False), ("folder", folder, "paper", False),
                                    ("kvasir", roots["kvasir"], "public-code", False)]:
        cfg = load_config(preset, None, {"data.dataset": key, "data.root": str(root), "data.val_fraction": 0.3})
        source = open_dataset(key, root)
        canonical, notes = canonical_data(cfg, source)
        assert canonical.data.val_fraction == (0.3 if kept else 0.1), key
        assert (notes == []) == kept, (key, notes)
        if not kept:   # and the reset changes no split
            assert make_splits(source, 0, 0.3, selection=cfg.train.selection_split) == \
                make_splits(source, 0, 0.1, selection=cfg.train.selection_split)
    assert notes == ["data.val_fraction 0.3 is not used: train.selection_split is test; recorded as the default (0.1)"]
    cfg = load_config("paper", None, {"data.dataset": "tn3k", "data.root": str(roots["tn3k"]),
                                      "data.val_fraction": 0.3})
    assert canonical_data(cfg, open_dataset("tn3k", roots["tn3k"]))[1] == [
        "data.val_fraction 0.3 is not used: tn3k's validation split is a fold of its fold files (seed mod 5); "
        "recorded as the default (0.1)"]


def test_threaded_decoding_gives_the_same_arrays_and_the_first_bad_file(tmp_path):
    """train.num_workers decodes in threads: the arrays, native sizes and skipped samples are those of one thread,
    in order; without --skip-bad the first unreadable sample in order is the one named, whichever thread ends first."""
    source = open_tn3k(write_tn3k(tmp_path / "ok", 6, 9))
    refs = source.splits["train"] + source.splits["test"]
    one, four = (load_resized(source, refs, 32, workers=n) for n in (1, 4))
    np.testing.assert_array_equal(one.images, four.images)
    np.testing.assert_array_equal(one.masks, four.masks)
    assert (one.refs, one.native_sizes) == (four.refs, four.native_sizes)
    source, refs = _damaged_tn3k(tmp_path)
    for workers in (1, 3):
        with pytest.raises(DataError, match=f"{refs[0].image.parent.name}/{refs[0].image.name}"):
            load_resized(source, refs[::-1][:1] + refs, 32, workers=workers)
        split = load_resized(source, refs, 32, skip_bad=True, workers=workers)
        assert [s["key"] for s in split.skipped] == [r.key for r in refs[:3]]


def _vmd_split_off_val(root: Path, held: str) -> None:
    """What a VMD-Net train/val split script leaves: train_origin/ kept whole, train/ and val/ beside it."""
    shutil.copytree(root / "train", root / "train_origin")
    (root / "val").mkdir()
    (root / "train" / held).rename(root / "val" / held)


def test_vmd_with_train_and_train_origin_reads_the_official_one_and_says_so(tmp_path, monkeypatch):
    """walk15 #2: train/ (a user's 80% subset) used to be read without a word when train_origin/ sat beside it."""
    import benchmark.data.vmd as vmd
    from benchmark.data.synthetic import write_vmd

    root = write_vmd(tmp_path / "VMD", n_train=12, n_test=3)   # 4 training videos of 3 frames
    _vmd_split_off_val(root, "0803")
    with pytest.raises(DataError) as caught:     # neither holds the official 143 videos: no guess
        open_dataset("vmd", root)
    message = str(caught.value)
    assert f"{root} holds both train/ (3 videos) and train_origin/ (4 videos)" in message, message
    assert "neither holds the official 143 training videos" in message and "move the other out of" in message
    monkeypatch.setitem(vmd.EXPECTED_VIDEOS, "train", 4)      # a full copy: train_origin/ holds the official count
    source = open_dataset("vmd", root)
    assert len(source.splits["train"]) == 12
    assert ("train split read from train_origin/ (4 videos, the official count); ignored: train/ (3 videos), val/ "
            "(1 video) (VMD-D's official splits are train and test; validation is carved from the training videos)"
            in source.notes), source.notes
    monkeypatch.setitem(vmd.EXPECTED_VIDEOS, "train", 3)      # ... or train/ does
    assert len(open_dataset("vmd", root).splits["train"]) == 9


def test_vmd_train_beside_a_copy_or_a_val_folder_is_named_in_a_note(tmp_path):
    from benchmark.data.synthetic import write_vmd

    root = write_vmd(tmp_path / "VMD", n_train=12, n_test=3)
    shutil.copytree(root / "train", root / "train_origin")       # the same videos twice: no ambiguity
    source = open_dataset("vmd", root)
    assert len(source.splits["train"]) == 12
    assert "train split read from train/ (4 videos, the same as train_origin/); ignored: train_origin/ (4 videos)" \
        in source.notes, source.notes
    shutil.rmtree(root / "train_origin")
    (root / "val").mkdir()
    (root / "train" / "0803").rename(root / "val" / "0803")       # train/ and val/ only: val/ is not read
    notes = open_dataset("vmd", root).notes
    assert any(n.startswith("train split read from train/; ignored: val/ (1 video)") for n in notes), notes
    (root / "val" / "0803").rename(root / "train" / "0803")       # train/ alone: nothing to say
    assert not any("train split" in n for n in open_dataset("vmd", root).notes)
    with pytest.raises(DataError, match=f"{root / 'train'} holds video folders itself, so it is a split folder"):
        open_dataset("vmd", root / "train")                       # a split folder given as the data root


@pytest.mark.parametrize("key", VIDEO)
def test_a_split_folder_nested_in_its_own_name_says_move_it_up(key, tmp_path):
    """walk15 #7: `unzip train_origin.zip -d VMD/train_origin` leaves train_origin/train_origin/<videos>."""
    from benchmark.data.synthetic import write_visha, write_vmd

    root = (write_vmd if key == "vmd" else write_visha)(tmp_path / FOLDER_NAMES[key], n_train=6, n_test=3)
    split = "train_origin" if key == "vmd" else "train"
    (root / "train").rename(root / "inner")
    (root / split).mkdir()
    (root / "inner").rename(root / split / split)
    with pytest.raises(DataError) as caught:
        open_dataset(key, root)
    inner = root / split / split
    assert str(caught.value).endswith(f"{inner} is nested in a folder of its own name (an archive extracted into a "
                                      f"folder named after it): move its contents up one level (mv {inner}/* "
                                      f"{root / split}/ && rmdir {inner})"), str(caught.value)


def test_visha_label_folder_without_images_is_unpaired_not_only_a_note(tmp_path):
    """walk15 #1: a test video's labels without its images are labelled frames the split would lose: its files are
    unpaired masks (data check: errors; train: refused for the test split), not only a note."""
    from benchmark.data.synthetic import write_visha

    root = write_visha(tmp_path / "ViSha", n_train=6, n_test=6)
    (root / "test" / "images" / "test_video_01").rename(tmp_path / "away")
    source = open_dataset("visha", root)
    labels = root / "test" / "labels" / "test_video_01"
    assert sorted(source.unpaired_masks) == sorted(labels.iterdir()) and len(source.unpaired_masks) == 3
    assert len(source.splits["test"]) == 3
    assert (f"test: label folders without images: test_video_01 (their frames are left out; restore the images "
            f"under {root / 'test' / 'images'}/)") in source.notes, source.notes


@pytest.mark.parametrize("key", ["tn3k", "kvasir", "msd", "vmd", "visha", "folder"])
def test_a_dataset_unzipped_into_a_folder_of_its_own_name_is_read_from_there_with_a_note(key, tmp_path):
    """`unzip VMD.zip -d VMD` leaves VMD/VMD/train/...: the inner folder is read, as Kvasir-SEG's and ISIC's loaders
    always read theirs, with a note naming it, whether --data-root is the outer folder or the one holding it; and
    `data check` finds it the same way."""
    from benchmark.data.check import check_dataset
    from benchmark.data.synthetic import WRITERS

    name = FOLDER_NAMES[key]
    outer = tmp_path / "data" / name
    inner = WRITERS[key](outer / name, 6, 3, 0)
    note = (f"read from {inner}, the dataset's folder inside {outer} (an archive extracted into a folder named after "
            "it)")
    for data_root in (outer,) if key == "folder" else (outer, outer.parent):   # a folder dataset is --data-root
        source = open_dataset(key, data_root)
        assert source.root == inner and note in source.notes and len(source.splits["train"]) == 6, source.notes
        report = check_dataset(data_root, key, expect_counts=False)
        assert report.ok and [d.root for d in report.datasets] == [inner] and note in report.datasets[0].notes
    if key != "folder":   # without --dataset: found by its usual name, then read from the inner folder
        assert [(d.key, d.root) for d in check_dataset(outer.parent, expect_counts=False).datasets] == [(key, inner)]
