"""`data check` on generated replicas: a clean replica passes (its size aside), every planted defect is named with its
file and fails the check, the official counts are encoded and a deviation is reported, known-bad samples are
listed."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark.data.check import CheckReport, check_dataset, detect_datasets
from benchmark.data.synthetic import FOLDER_NAMES, WRITERS, plant_defects, write_all, write_folder
from benchmark.registry import DATASETS

OFFICIAL = {"tn3k": {"train": 2879, "test": 614}, "kvasir": {"train": 880, "test": 120},
            "isic2017": {"train": 2000, "val": 150, "test": 600}, "msd": {"train": 3063, "test": 955},
            "vmd": {"train": 7835, "test": 7152}}   # REFERENCE.md §4; ViSha: videos and total only
OFFICIAL_VIDEOS = {"vmd": {"train": 143, "test": 126}, "visha": {"train": 50, "test": 70}}


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    root = tmp_path_factory.mktemp("clean")
    return root, write_all(root, 6, 3, seed=1)


def test_clean_replicas_pass_as_miniatures(clean):
    root, paths = clean
    report = check_dataset(root, expect_counts=False)
    assert {d.key for d in report.datasets} == set(DATASETS)
    assert {d.key: d.root for d in report.datasets} == {k: p for k, p in paths.items()}
    assert report.errors == [] and report.ok and report.exit_code == 0
    assert report.deviations, "a miniature deviates from the official counts; the deviation is still reported"
    assert "OK" in report.to_text() and "ignored" in report.to_text()


def test_count_deviations_fail_unless_miniature(clean):
    root, _ = clean
    report = check_dataset(root, "tn3k")
    assert report.errors == [] and not report.ok and report.exit_code == 1
    assert all(p.kind == "count_deviation" and p.severity == "warning" for p in report.deviations)
    text = report.to_text()
    assert "2,879" in text and "614" in text and "FAILED" in text
    assert "--miniature keeps counts from failing" in text   # the way out for a subset, named where it fails


@pytest.mark.parametrize("key", list(DATASETS))
def test_official_counts_in_report(key, clean):
    _, paths = clean
    (dataset,) = check_dataset(paths[key], key).datasets
    assert {c.split: c.expected for c in dataset.counts if c.expected is not None} == OFFICIAL.get(key, {})
    assert ({c.split: c.expected_videos for c in dataset.counts if c.expected_videos is not None}
            == OFFICIAL_VIDEOS.get(key, {}))
    if key == "visha":
        assert dataset.expected_total == 11685 and dataset.total == 9
        assert any("11,685" in p.message for p in dataset.problems)
    if key == "msd":   # the known-bad file counts as on disk, but is listed, not scored
        assert {c.split: c.found for c in dataset.counts} == {"train": 6, "test": 4}
        assert {c.split: c.used for c in dataset.counts} == {"train": 6, "test": 3}
        assert [b["key"] for b in dataset.known_bad] == ["1751_512x640"]
        text = check_dataset(paths[key], key).to_text()
        assert "known bad" in text and text.split("\n")[3].split()[-1] == "used", text
        assert [line.split()[-1] for line in text.split("\n")[4:6]] == ["6", "3"], text


@pytest.mark.parametrize("key", list(DATASETS))
def test_every_planted_defect_is_named(key, tmp_path):
    root = WRITERS[key](tmp_path / FOLDER_NAMES[key], 6, 3, 2)
    planted = plant_defects(root, key)
    assert len(planted) == 6
    # found under the parent by its usual name (a user's folder dataset has none: it is named directly)
    report = check_dataset(root if key == "folder" else tmp_path, key, expect_counts=False)
    assert not report.ok and report.exit_code == 1
    for line in planted:
        kind, _, what = line.partition(": ")
        target = what.split(" (")[0]
        matches = [p for p in report.errors if p.kind == kind and (target in p.path or f"'{target}'" in p.message)]
        assert matches, f"not reported: {line}\n{report.to_text()}"
    text = report.to_text()
    assert all(line.split(": ")[1].split(" (")[0] in text for line in planted)


def test_nothing_recognised(tmp_path):
    (tmp_path / "something").mkdir()
    report = check_dataset(tmp_path)
    assert not report.ok and report.problems[0].kind == "layout" and "--dataset" in report.problems[0].message
    assert not check_dataset(tmp_path / "missing").ok


def test_layout_error_names_the_folder(tmp_path):
    root = WRITERS["tn3k"](tmp_path / "tn3k", 5, 2, 0)
    shutil.rmtree(root / "test-mask")
    report = check_dataset(tmp_path)
    (problem,) = report.errors
    assert problem.kind == "layout" and "test-mask" in problem.message


def test_detects_a_single_dataset_folder_and_loose_isic_folders(clean):
    _, paths = clean
    assert detect_datasets(paths["vmd"]) == [("vmd", paths["vmd"])]
    assert detect_datasets(paths["isic2017"]) == [("isic2017", paths["isic2017"])]


def test_folder_multiclass_index_beyond_num_classes(tmp_path):
    root = write_folder(tmp_path / "mc", 6, 2, num_classes=3)
    assert check_dataset(root, "folder", expect_counts=False).ok
    bad = root / "masks" / "sample_001.png"
    arr = np.asarray(Image.open(bad)).copy()
    arr[:5] = 7
    Image.fromarray(arr).save(bad)
    inferred = check_dataset(root, "folder", expect_counts=False)    # {0, 1, 2, 7}: not 8 classes, an error
    assert not inferred.ok and [p.kind for p in inferred.errors] == ["mask_index"]
    message = inferred.errors[0].message
    assert f"the largest mask index is 7 (in {bad})" in message and "indices 3..6 appear in no mask" in message
    assert "--num-classes 8" in message and not any("appear in no mask" in n for n in inferred.datasets[0].notes)
    assert check_dataset(root, "folder", expect_counts=False, num_classes=8).ok     # the count given: gaps are fine
    given = check_dataset(root, "folder", expect_counts=False, num_classes=3)
    assert not given.ok
    assert [(p.kind, Path(p.path).name) for p in given.errors] == [("mask_index", "sample_001.png")]
    assert f"mask {bad} holds {{0, 1, 2, 7}}, beyond class indices 0..2" == given.errors[0].message


def test_folder_stray_index_is_an_error_beside_other_errors(tmp_path):
    """The gap is an error of its own, also where other errors (a missing mask) fail the check already."""
    root = write_folder(tmp_path / "b", 6, 2, binary_values=1)
    bad = root / "masks" / "sample_003.png"
    arr = np.asarray(Image.open(bad)).copy()
    arr[2, 2] = 7
    Image.fromarray(arr).save(bad)
    (root / "masks" / "sample_000.png").unlink()
    report = check_dataset(root, "folder", expect_counts=False)
    assert sorted(p.kind for p in report.errors) == ["mask_index", "missing_mask"], report.to_text()
    assert "indices 2..6 appear in no mask" in report.to_text()


def test_folder_soft_edged_masks_pass_and_are_noted(tmp_path):
    """0/255 masks resized bilinearly (grey edges) are binary masks with soft edges: OK, with a note; a flat grey
    band is still refused."""
    root = write_folder(tmp_path / "soft", 6, 2)
    masks = sorted((root / "masks").glob("*.png"))
    for mask in masks[:5]:
        img = Image.open(mask)
        img.resize((img.width // 3, img.height // 3), Image.BILINEAR).resize(img.size, Image.BILINEAR).save(mask)
    report = check_dataset(root, "folder", expect_counts=False)
    assert report.ok and report.datasets[0].mask_encoding == "threshold128", report.to_text()
    assert "note: 5 of 8 masks have soft (anti-aliased) edges" in report.to_text()
    given = check_dataset(root, "folder", expect_counts=False, num_classes=3)
    assert not given.ok and {p.kind for p in given.errors} == {"mask_index"}
    assert "among them {" in given.errors[0].message and "255}, beyond class indices 0..2" in given.errors[0].message
    arr = np.asarray(Image.open(masks[6])).copy()
    arr[:12] = 128
    Image.fromarray(arr).save(masks[6])
    report = check_dataset(root, "folder", expect_counts=False)
    assert [(p.kind, p.path) for p in report.errors] == [("non_binary_mask", str(masks[6]))]
    assert f"mask {masks[6]} holds {{0, 128, 255}}, not 0/255" == report.errors[0].message


def test_folder_palette_class_index_masks_pass(tmp_path):
    """Palette masks holding class indices: judged as indices, not as a binary palette (0 and one index)."""
    root = write_folder(tmp_path / "pal", 6, 2, num_classes=3)
    for mask in (root / "masks").glob("*.png"):
        Image.open(mask).convert("P").save(mask)
    report = check_dataset(root, "folder", expect_counts=False)
    assert report.ok and report.datasets[0].mask_encoding == "index", report.to_text()


def test_jpeg_noise_is_tolerated_but_grey_masks_are_not(tmp_path):
    root = WRITERS["kvasir"](tmp_path / "Kvasir-SEG", 6, 2, 0)
    assert check_dataset(root, "kvasir", expect_counts=False).ok     # lossy JPEG masks as written: edge noise only
    mask = min((root / "masks").iterdir())
    Image.fromarray(np.full((40, 40), 100, np.uint8)).resize(Image.open(mask).size).save(mask, quality=90)
    report = check_dataset(root, "kvasir", expect_counts=False)
    assert [p.kind for p in report.errors] == ["non_binary_mask"] and mask.name in report.errors[0].path


def test_binary_01_png_in_a_255_dataset_is_flagged(tmp_path):
    root = WRITERS["msd"](tmp_path / "MSD", 5, 2, 0)
    mask = min((root / "train" / "mask").iterdir())
    Image.fromarray((np.asarray(Image.open(mask)) > 0).astype(np.uint8)).save(mask)
    report = check_dataset(root, "msd", expect_counts=False)
    assert [p.kind for p in report.errors] == ["non_binary_mask"] and "ships 0/255" in report.errors[0].message


def test_rendering(clean):
    from rich.console import Console

    root, _ = clean
    report = check_dataset(root, expect_counts=False)
    console = Console(record=True, width=160)
    console.print(report)
    out = console.export_text()
    assert "vmd" in out and "7,835" in out and "OK" in out
    data = report.to_dict()
    assert data["ok"] is True and len(data["datasets"]) == len(DATASETS)
    assert isinstance(report, CheckReport)


def test_folder_masks_train_refuses_fail_the_check(tmp_path):
    """A 0/65535 mask among 0/255 ones: the loose reading of data check used to call it a note (OK, exit 0) while
    train refused the dataset; the check now fails on what train refuses."""
    import numpy as np
    from PIL import Image

    from benchmark.data.synthetic import write_folder

    root = write_folder(tmp_path / "f16", 6, 2)
    mask = sorted((root / "masks").glob("*.png"))[1]
    Image.fromarray(np.asarray(Image.open(mask)).astype(np.uint16) * 257).save(mask)
    report = check_dataset(root, "folder", expect_counts=False)
    assert not report.ok and [p.kind for p in report.errors] == ["non_binary_mask"]
    assert f"mask {mask} holds {{0, 65535}}" in report.errors[0].message


# --- video datasets (walk15) -----------------------------------------------------------------------------------------

def _videos(tmp_path: Path) -> tuple[Path, Path]:
    """VMD and ViSha replicas of 3 videos per split, 3 frames each."""
    return (WRITERS["vmd"](tmp_path / "VMD", 9, 9, 0), WRITERS["visha"](tmp_path / "ViSha", 9, 9, 0))


def test_a_video_without_masks_is_one_line_naming_its_mask_folder(tmp_path):
    """walk15 #9: a video's mask folder removed gave one `image ... has no mask` line per frame, naming neither the
    folder nor a fix; a single missing mask now reads as the loader's error does."""
    vmd, visha = _videos(tmp_path)
    shutil.rmtree(vmd / "test" / "0901" / "SegmentationClassPNG")
    shutil.rmtree(visha / "test" / "labels" / "test_video_01")
    single = vmd / "train" / "0800" / "JPEGImages" / "00005.jpg"
    (vmd / "train" / "0800" / "SegmentationClassPNG" / "00005.png").unlink()
    report = check_dataset(tmp_path, expect_counts=False)
    missing = [p for p in report.errors if p.kind == "missing_mask"]
    assert [p.path for p in missing] == [str(single), str(vmd / "test" / "0901" / "SegmentationClassPNG"),
                                         str(visha / "test" / "labels" / "test_video_01")], report.to_text()
    assert missing[0].message == f"no mask for {single}: restore it, or skip such samples with --skip-bad"
    assert missing[1].message == (f"mask folder {vmd / 'test' / '0901' / 'SegmentationClassPNG'} is missing, so no "
                                  "frame of video 0901 has a mask (3 frames): restore it (re-extract the video's "
                                  "masks), or skip such samples with --skip-bad")
    assert missing[2].message.startswith(f"mask folder {visha / 'test' / 'labels' / 'test_video_01'} is missing, so "
                                         "no frame of video test_video_01 has a mask (3 frames)")


def test_a_video_whose_masks_are_misnamed_names_the_pairing_rule(tmp_path):
    vmd, _ = _videos(tmp_path)
    folder = vmd / "train" / "0801" / "SegmentationClassPNG"
    for mask in list(folder.iterdir()):
        mask.rename(mask.with_name(f"{int(mask.stem)}.png"))    # 00005.png -> 5.png: pads that differ
    stray = vmd / "train" / "0802" / "SegmentationClassPNG" / "99.png"   # another video's stray file ...
    stray.write_bytes((vmd / "train" / "0802" / "SegmentationClassPNG" / "00000.png").read_bytes())
    lone = vmd / "train" / "0800" / "JPEGImages" / "00000.jpg"
    (vmd / "train" / "0800" / "SegmentationClassPNG" / "00000.png").unlink()
    report = check_dataset(vmd, "vmd", expect_counts=False)
    missing = {p.path: p.message for p in report.errors if p.kind == "missing_mask"}
    assert missing[str(folder)].startswith(f"no frame of video 0801 has a mask in {folder} (3 frames); it holds 3 "
                                           "files with no frame of the same stem (e.g. ")
    assert missing[str(folder)].endswith("vmd pairs a frame and its mask by identical stem (00000.jpg with "
                                         "00000.png): rename them")
    # ... does not turn a plainly missing mask of a third video into a naming problem
    assert missing[str(lone)] == f"no mask for {lone}: restore it, or skip such samples with --skip-bad"
    assert [p.path for p in report.errors if p.kind == "extra_mask"] == \
        sorted(str(p) for p in [*folder.iterdir(), stray]), report.to_text()


def test_visha_labels_without_images_fail_the_check(tmp_path):
    """walk15 #1: a test video's labels without its images passed `data check --miniature` with a note; they are
    labelled frames the test split loses, so an error naming the folder and the fix."""
    _, visha = _videos(tmp_path)
    (visha / "test" / "images" / "test_video_02").rename(tmp_path / "away")
    (visha / "train" / "labels" / "train_video_00" / "00000009.png").write_bytes(
        (visha / "train" / "labels" / "train_video_00" / "00000001.png").read_bytes())
    report = check_dataset(visha, "visha", expect_counts=False)
    assert not report.ok
    labels = visha / "test" / "labels" / "test_video_02"
    extra = [p for p in report.errors if p.kind == "extra_mask"]
    assert [p.path for p in extra] == [str(labels), str(visha / "train" / "labels" / "train_video_00" /
                                                        "00000009.png")], report.to_text()
    assert extra[0].message == (f"mask folder {labels} holds 3 masks of video test_video_02, which has no image "
                                f"({visha / 'test' / 'images' / 'test_video_02'} is missing): the split loses these "
                                f"labelled frames; restore the video's images (re-extract it), or move {labels} out "
                                "of the dataset")


def test_a_nested_split_folder_is_one_dataset_with_the_fix(tmp_path):
    """walk15 #7: VMD/train_origin/train_origin/ made `data check VMD` report its split folders as two VMD datasets,
    and `data check` above it call the nested folder a video to re-extract."""
    vmd = WRITERS["vmd"](tmp_path / "nest" / "VMD", 6, 3, 0)
    for split, name in (("train", "train_origin"), ("test", "test")):
        (vmd / split).rename(vmd / "inner")
        (vmd / name).mkdir()
        (vmd / "inner").rename(vmd / name / name)
    assert detect_datasets(vmd) == [("vmd", vmd)] and detect_datasets(vmd.parent) == [("vmd", vmd)]
    for root in (vmd, vmd.parent):
        report = check_dataset(root, expect_counts=False)
        (problem,) = report.errors
        assert [d.root for d in report.datasets] == [vmd] and problem.kind == "layout", report.to_text()
        assert f"{vmd / 'train_origin' / 'train_origin'} is nested in a folder of its own name" in problem.message
        assert "move its contents up one level" in problem.message and "re-extract" not in problem.message
    visha = WRITERS["visha"](tmp_path / "ViSha", 6, 3, 0)
    for split in ("train", "test"):
        (visha / split).rename(visha / "inner")
        (visha / split).mkdir()
        (visha / "inner").rename(visha / split / split)
    assert detect_datasets(visha) == [("visha", visha)]
    assert "move its contents up one level" in check_dataset(visha, expect_counts=False).errors[0].message


def test_vmd_train_and_train_origin_in_the_check(tmp_path):
    """walk15 #2: both folders, neither of the official count: an error naming both with their video counts."""
    vmd, _ = _videos(tmp_path)
    shutil.copytree(vmd / "train", vmd / "train_origin")
    (vmd / "val").mkdir()
    (vmd / "train" / "0802").rename(vmd / "val" / "0802")
    (problem,) = check_dataset(vmd, "vmd", expect_counts=False).errors
    assert problem.kind == "layout" and "both train/ (2 videos) and train_origin/ (3 videos)" in problem.message


def _recolour(mask: Path, colours: list[tuple[int, int, int]]) -> None:
    """Re-save a palette mask as RGB: foreground in colours[0], and its top rows in colours[1:] if any."""
    from benchmark.data.base import read_mask

    foreground = read_mask(mask, "nonzero").astype(bool)
    rgb = np.zeros((*foreground.shape, 3), np.uint8)
    rgb[foreground] = colours[0]
    for row, colour in enumerate(colours[1:]):
        rgb[row] = colour
    Image.fromarray(rgb).save(mask)


def test_colour_vmd_masks_are_judged_as_training_reads_them(tmp_path):
    """walk15 #11: a VMD mask re-saved in its VOC colour was an error in `data check` though training reads it
    right (foreground where not black); a colour mask of several colours is an error naming the fix, in `data check`
    and, in the same words, where training reads it (it read every colour as foreground)."""
    from benchmark.data.base import DataError, read_mask

    vmd, _ = _videos(tmp_path)
    mask = vmd / "train" / "0800" / "SegmentationClassPNG" / "00000.png"
    palette = read_mask(mask, "nonzero")
    _recolour(mask, [(128, 0, 0)])
    np.testing.assert_array_equal(read_mask(mask, "nonzero"), palette)    # what training reads: unchanged
    assert check_dataset(vmd, "vmd", expect_counts=False).ok
    _recolour(mask, [(128, 0, 0), (0, 128, 0)])
    (problem,) = check_dataset(vmd, "vmd", expect_counts=False).errors
    assert problem.kind == "non_binary_mask" and problem.path == str(mask)
    assert problem.message == (f"mask {mask} is a colour image with 2 colours besides black ((0, 128, 0), (128, 0, "
                               "0)); this dataset's masks hold black and one foreground colour, and every other colour "
                               "would read as foreground too (a multi-class or mislabelled mask?): re-export it as a "
                               "palette PNG (index 0 background, index 1 foreground)")
    with pytest.raises(DataError) as caught:
        read_mask(mask, "nonzero")
    assert str(caught.value) == problem.message + ", or skip such samples with --skip-bad"


def test_colour_masks_of_a_grey_dataset_name_the_fix(tmp_path):
    """A grey 0/255 dataset reads colour by brightness: a red mask reads as background, an error with the fix."""
    from benchmark.data.base import read_mask

    root = WRITERS["msd"](tmp_path / "MSD", 5, 2, 0)
    mask = min((root / "train" / "mask").iterdir())
    _recolour(mask, [(255, 0, 0)])
    assert not read_mask(mask).any()
    (problem,) = check_dataset(root, "msd", expect_counts=False).errors
    assert problem.message.startswith(f"mask {mask} is a colour image; msd masks are grey 0/255")
    assert problem.message.endswith("re-export it as a grey 0/255 PNG")


def test_videos_without_foreground_are_noted(tmp_path):
    """walk15 #12: a video whose every mask is empty is named in a note (not an error: VMD-D and ViSha hold some)."""
    vmd, visha = _videos(tmp_path)
    for folder in (vmd / "train" / "0802" / "SegmentationClassPNG", visha / "test" / "labels" / "test_video_00"):
        for mask in folder.iterdir():
            Image.fromarray(np.zeros(Image.open(mask).size[::-1], np.uint8)).save(mask)
    report = check_dataset(tmp_path, expect_counts=False)
    assert report.ok, report.to_text()
    notes = {d.key: [n for n in d.notes if "no foreground" in n] for d in report.datasets}
    assert notes["vmd"] == ["train: 1 of 3 videos has no foreground in any mask: 0802 (a few are normal; if most "
                            "videos are listed, check the mask rule: nonzero)"]
    assert notes["visha"] == ["test: 1 of 3 videos has no foreground in any mask: test_video_00 (a few are normal; "
                              "if most videos are listed, check the mask rule: threshold128)"]
    assert "note: train: 1 of 3 videos has no foreground" in report.to_text()
    assert not any(n for key, lines in notes.items() for n in lines if key not in ("vmd", "visha"))
