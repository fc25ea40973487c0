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
