"""`segbench score` and `predict` on the video datasets (VMD-D, ViSha) in their downloaded layouts (walk15): labelled
test frames whose image is missing, the profile of mask folders scored without --dataset, and predict on a folder
that holds mask folders."""

import dataclasses
import json
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from benchmark.cli import app
from benchmark.data import synthetic
from benchmark.data.base import DataError
from benchmark.metrics import score_split
from benchmark.registry import open_dataset

FOLDER = {"visha": "ViSha", "vmd": "VMD"}


def invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, " ".join(result.output.split())


def _dataset(tmp_path, key, n_test=6):
    root = getattr(synthetic, f"write_{key}")(tmp_path / "data" / FOLDER[key], n_train=4, n_test=n_test)
    return root, open_dataset(key, root)


def _predict_from_masks(source, refs, pred_dir, name=lambda ref: ref.key):
    """Each sample's own mask as a p x 255 map (the value 200) named `name(ref)`.png."""
    for ref in refs:
        target = pred_dir / f"{name(ref)}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(((source.read_mask(ref) > 0) * 200).astype(np.uint8)).save(target)


# ---- finding 1: the test split is defined by its ground truth ----

@pytest.mark.parametrize("key", ["visha", "vmd"])
def test_a_labelled_test_frame_without_its_image_is_an_error_naming_its_mask(tmp_path, key):
    """A test frame whose mask is there but whose image is gone: its loader cannot read it, so it is in no split.
    score used to score the others and count its prediction as "outside the test split"; now it names the mask and
    the fix, whether or not the frame has a prediction."""
    root, source = _dataset(tmp_path, key)
    test = source.splits["test"]
    _predict_from_masks(source, test, tmp_path / "pred")
    summary, rows = score_split(tmp_path / "pred", source, "test", "mirror")
    assert len(rows) == len(test) and summary["ignored"] == 0
    gone = test[1]
    gone.image.unlink()
    broken = open_dataset(key, root)
    assert gone.key not in {ref.key for ref in broken.splits["test"]}
    with pytest.raises(ValueError, match=(
            rf"1 {key} test mask has no image: {re.escape(str(gone.mask.parent))}/ \({gone.mask.name}\)\. The test "
            rf"split is every labelled sample.*\(it has a prediction in .*pred\): restore the missing images")):
        score_split(tmp_path / "pred", broken, "test", "mirror")
    (tmp_path / "pred" / f"{gone.key}.png").unlink()   # without its prediction too: the same error
    with pytest.raises(ValueError, match=f"1 {key} test mask has no image") as info:
        score_split(tmp_path / "pred", broken, "test", "mirror")
    assert "prediction in" not in str(info.value)
    code, out = invoke("score", tmp_path / "pred", root, "--dataset", key)
    assert code == 2 and gone.mask.name in out and "restore the missing images" in out and "outside" not in out, out


def test_a_whole_video_without_images_is_named_by_its_label_folder(tmp_path):
    """ViSha: a test video whose images/ folder is gone while labels/<video>/ is there. Its label files are the
    loader's `unpaired_masks` (added here as well, for loaders that only note the folder): five of ten labelled
    frames used to be scored and the rest called predictions "outside the test split"."""
    root, source = _dataset(tmp_path, "visha")
    test = source.splits["test"]
    _predict_from_masks(source, test, tmp_path / "pred")
    video = test[-1].group
    shutil.move(str(root / "test" / "images" / video), tmp_path / "elsewhere")
    labels = sorted((root / "test" / "labels" / video).glob("*.png"))
    broken = open_dataset("visha", root)
    broken = dataclasses.replace(broken, unpaired_masks=sorted(set(broken.unpaired_masks) | set(labels)))
    n = len(labels)
    with pytest.raises(ValueError, match=rf"{n} visha test masks have no image: .*labels/{video}/ \(.*\).*{n} of them "
                                         "have a prediction in"):
        score_split(tmp_path / "pred", broken, "test", "shadow")


def test_masks_without_images_elsewhere_do_not_stop_a_test_score(tmp_path):
    """A training frame without its image is the training split's business; a mask in a folder several splits share
    (Kvasir-SEG's masks/, whose split is a list) belongs to no split in particular."""
    root, source = _dataset(tmp_path, "visha")
    _predict_from_masks(source, source.splits["test"], tmp_path / "pred")
    source.splits["train"][0].image.unlink()
    summary, rows = score_split(tmp_path / "pred", open_dataset("visha", root), "test", "shadow")
    assert len(rows) == len(source.splits["test"])
    kvasir = synthetic.write_kvasir(tmp_path / "Kvasir-SEG", n_train=4, n_test=3)
    ksource = open_dataset("kvasir", kvasir)
    _predict_from_masks(ksource, ksource.splits["test"], tmp_path / "kpred")
    stray = ksource.splits["test"][0].mask.with_name("not_listed.jpg")
    shutil.copy(ksource.splits["test"][0].mask, stray)
    ksource = open_dataset("kvasir", kvasir)
    assert stray in ksource.unpaired_masks
    assert len(score_split(tmp_path / "kpred", ksource, "test", "segdino")[1]) == 3


def test_predictions_named_after_vmd_jpegimages_pair_and_the_rest_are_named(tmp_path):
    """VMD-D maps saved in the dataset's own tree (`<video>/JPEGImages/<frame>.png`) pair with their frames;
    predictions that pair with no test sample are counted and a few named, and not called "outside the split"."""
    root, source = _dataset(tmp_path, "vmd")
    test = source.splits["test"]
    _predict_from_masks(source, test, tmp_path / "pred", lambda ref: f"{ref.group}/JPEGImages/{ref.image.stem}")
    _predict_from_masks(source, source.splits["train"][:2], tmp_path / "pred")
    summary, rows = score_split(tmp_path / "pred", source, "test", "mirror")
    assert [r["key"] for r in rows] == [ref.key for ref in test] and summary["metrics"]["iou"] == 1.0
    assert summary["ignored"] == 2 and summary["ignored_examples"] == sorted(
        f"{ref.key}.png" for ref in source.splits["train"][:2])
    code, out = invoke("score", tmp_path / "pred", root, "--dataset", "vmd")
    assert code == 0 and "not scored: 2 predictions that pair with no test sample (e.g." in out, out
    assert "outside" not in out


# ---- finding 5: mask folders of a video dataset scored without --dataset ----

@pytest.mark.parametrize("key", ["visha", "vmd"])
def test_score_without_a_profile_takes_the_profile_of_the_dataset_the_masks_lie_in(tmp_path, key):
    """`score PRED ViSha/test/labels` (or one VMD-D video's SegmentationClassPNG/) without --profile scored the
    medical `segdino` profile on a 256 grid; the masks' layout says which dataset they are, and so the profile."""
    root, source = _dataset(tmp_path, key)
    test = source.splits["test"]
    if key == "visha":
        gt, refs, name = root / "test" / "labels", test, lambda ref: ref.key
    else:
        video = test[0].group
        gt, refs, name = test[0].mask.parent, [r for r in test if r.group == video], lambda ref: ref.mask.stem
    _predict_from_masks(source, refs, tmp_path / "pred", name)
    profile = {"visha": "shadow", "vmd": "mirror"}[key]
    code, out = invoke("score", tmp_path / "pred", gt)
    assert code == 0 and f"scored under '{profile}' at each mask's native size" in out, out
    assert f"the {key} profile, as {gt} lies in the {key} dataset's layout at {root}" in out, out
    assert f"--dataset {key}` scores its official test split" in out, out
    code, out = invoke("score", tmp_path / "pred", gt, "--profile", "segdino")   # --profile still decides
    assert code == 0 and "scored under 'segdino' at 256x256" in out and "layout" not in out, out
    result = CliRunner().invoke(app, ["score", str(tmp_path / "pred"), str(gt), "--json"])   # the note: stderr
    summary = json.loads(result.stdout)
    assert summary["profile"] == profile and "layout" in summary["profile_from"]


def test_score_without_a_profile_keeps_segdino_for_other_folders(tmp_path):
    """Plain mask folders, a medical dataset's and a YOLO-style `test/images` + `test/labels` layout (ViSha's
    signature without its videos) keep the `segdino` default: no note, results as before."""
    kvasir = synthetic.write_kvasir(tmp_path / "k" / "Kvasir-SEG", n_train=4, n_test=3)
    source = open_dataset("kvasir", kvasir)
    _predict_from_masks(source, source.splits["test"], tmp_path / "kpred")
    gt = tmp_path / "kgt"
    gt.mkdir()
    for ref in source.splits["test"]:
        shutil.copy(ref.mask, gt / ref.mask.name)
    for folder in (gt, tmp_path / "yolo" / "test" / "labels"):
        if not folder.exists():
            (tmp_path / "yolo" / "test" / "images").mkdir(parents=True)
            shutil.copytree(gt, folder)
        code, out = invoke("score", tmp_path / "kpred", folder)
        assert code == 0 and "scored under 'segdino' at 256x256" in out and "profile, as" not in out, out


def _fake_run_model(monkeypatch, dataset):
    """predict's run loading replaced by a constant model of a `dataset` run (p = sigmoid(0) = 0.5 everywhere)."""
    import benchmark.predict as predict

    class Constant(torch.nn.Module):
        num_classes = 2

        def forward(self, x):
            return torch.zeros(x.shape[0], 1, x.shape[2], x.shape[3])

    cfg = SimpleNamespace(data=SimpleNamespace(size=32, dataset=dataset))
    monkeypatch.setattr(predict, "load_run_model", lambda run_dir, device="cpu": (cfg, Constant()))


def test_score_without_a_profile_takes_the_profile_of_the_run_that_predicted_the_maps(tmp_path, monkeypatch):
    """Masks copied out of the dataset's layout: `segbench_predictions.json` still names the run that predicted the
    maps (its dataset is recorded beside them; older folders name only the run, whose config.yaml names it)."""
    root, source = _dataset(tmp_path, "visha")
    _fake_run_model(monkeypatch, "visha")
    code, out = invoke("predict", tmp_path / "run", root / "test" / "images", "--out", tmp_path / "pred")
    assert code == 0, out
    meta_path = tmp_path / "pred" / "segbench_predictions.json"
    meta = json.loads(meta_path.read_text())
    assert meta["run_dataset"] == "visha"
    shutil.copytree(root / "test" / "labels", tmp_path / "masks")
    code, out = invoke("score", tmp_path / "pred", tmp_path / "masks")
    assert code == 0 and "scored under 'shadow'" in out and "a visha run" in out, out
    from benchmark.config import dump_yaml, load_config

    run = tmp_path / "old_run"   # an older record without run_dataset: the run's config.yaml
    run.mkdir()
    cfg = load_config("smoke")
    (run / "config.yaml").write_text(dump_yaml(dataclasses.replace(cfg, data=dataclasses.replace(cfg.data,
                                                                                                 dataset="vmd"))))
    del meta["run_dataset"]
    meta_path.write_text(json.dumps({**meta, "run_dir": str(run)}))
    code, out = invoke("score", tmp_path / "pred", tmp_path / "masks")
    assert code == 0 and "scored under 'mirror'" in out and "a vmd run" in out, out


# ---- finding 6: predict on a folder holding mask folders ----

@pytest.mark.parametrize("key, inside", [("vmd", "test"), ("vmd", "test/{video}"), ("visha", "test"), ("vmd", ".")])
def test_predict_refuses_a_dataset_folder_with_its_masks_and_names_the_split_command(tmp_path, key, inside):
    """`predict RUN VMD/test` ran the model on every SegmentationClassPNG/ and SegmentationClassVisualization/ mask
    too (two thirds of the work), under names `score --dataset vmd` pairs with nothing: refused before the run is
    loaded, naming the mask folders and `--split test`."""
    from benchmark.predict import predict_folder

    root, source = _dataset(tmp_path, key, n_test=4)
    video = source.splits["test"][0].group
    for ref in source.splits["test"]:   # as the VMD-D download has them
        if key == "vmd":
            shutil.copytree(ref.mask.parent, ref.mask.parent.with_name("SegmentationClassVisualization"),
                            dirs_exist_ok=True)
    images = root / inside.format(video=video)
    with pytest.raises(DataError, match=re.escape(f"{images} holds mask folders (") + ".*" + re.escape(
            f"predict would run the model on the masks as if they were images. It lies in the {key} dataset at "
            f"{root}: `segbench predict {tmp_path / 'run'} --split test --dataset {key} --data-root {root} "
            f"--out {tmp_path / 'out'}`")):
        predict_folder(tmp_path / "run", images, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_predict_reads_image_folders_of_a_dataset_and_refuses_other_folders_with_masks(tmp_path, monkeypatch):
    """ViSha's test/images and one VMD-D video's JPEGImages/ hold only images: predicted as before. A folder of one's
    own with a masks/ sub-folder is refused, pointing at a folder of images only."""
    from benchmark.predict import predict_folder

    _fake_run_model(monkeypatch, "visha")
    root, source = _dataset(tmp_path, "visha", n_test=4)
    written = predict_folder(tmp_path / "run", root / "test" / "images", tmp_path / "p1", progress=False)
    assert len(written) == len(source.splits["test"])
    vmd, vsource = _dataset(tmp_path, "vmd", n_test=4)
    frames = vsource.splits["test"][0].image.parent
    assert len(predict_folder(tmp_path / "run", frames, tmp_path / "p2", progress=False)) == len(
        list(frames.glob("*.jpg")))
    own = tmp_path / "own"
    for sub in ("scans", "masks"):
        (own / "case1" / sub).mkdir(parents=True)
        Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(own / "case1" / sub / "a.png")
    with pytest.raises(DataError, match=re.escape(f"{own} holds mask folders (case1/masks/: 1 of its 2 images)")
                       + ".*" + re.escape(f"give a folder of images only (e.g. {own / 'case1' / 'scans'})")):
        predict_folder(tmp_path / "run", own, tmp_path / "p3")
    assert Path(tmp_path / "p3").exists() is False
