"""The CLI as a user meets it: real commands, one clear error line and exit code 2 for user mistakes."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from benchmark.cli import app
from segdino.backbone import build_backbone
from segdino.head import SegDINOHead
from segdino.model import Segmenter
from segdino.public_checkpoint import to_public_state

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, kvasir_root):
    runs = tmp_path_factory.mktemp("runs")
    code, out = invoke("train", "--preset", "smoke", "--data-root", kvasir_root, "--runs-dir", runs,
                       "--epochs", 1, "--size", 64)
    assert code == 0, out
    assert "segdino" in out and "dice" in out
    return runs / "kvasir" / "segdino__test__smoke__s0"


def test_training_a_finished_run_again_says_so(trained_run, kvasir_root):
    code, out = invoke("train", "--preset", "smoke", "--data-root", kvasir_root, "--runs-dir",
                       trained_run.parent.parent, "--epochs", 1, "--size", 64)
    assert code == 0 and "already finished" in out, out
    code, out = invoke("train", "--preset", "smoke", "--data-root", kvasir_root, "--runs-dir",
                       trained_run.parent.parent, "--epochs", 2, "--size", 64)
    assert code == 2 and "different config (train.epochs: 1 there, 2 now)" in out.replace("\n", " "), out


def test_profile_json_reports_paper_parameter_counts():
    code, out = invoke("profile", "--method", "segdino", "--backbone", "dinov3_vits16", "--json")
    assert code == 0, out
    row = json.loads(out)[0]
    assert row["trainable_params"] == 2_213_793 and row["frozen_params"] == 21_596_160
    code, out = invoke("profile", "--method", "segdino", "--backbone", "dinov3_vitb16", "--no-timing", "--json")
    assert json.loads(out)[0]["trainable_params"] == 2_766_753


def test_evaluate_and_predict_a_trained_run(trained_run, kvasir_root, tmp_path):
    before = pd.read_csv(trained_run / "per_image.csv")
    code, out = invoke("evaluate", trained_run, "--profile", "mirror", "--device", "auto")   # auto: cuda or cpu
    assert code == 0, out
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert {"segdino", "medical-native", "mirror"} <= set(metrics["profiles"])
    after = pd.read_csv(trained_run / "per_image.csv")   # the earlier profiles' per-image rows are kept too
    assert after.profile.value_counts().to_dict() == {**before.profile.value_counts().to_dict(),
                                                      "mirror": len(before) // before.profile.nunique()}
    kept = after[after.profile != "mirror"][before.columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, before, check_dtype=False)
    code, out = invoke("evaluate", trained_run, "--dataset", "msd", "--data-root", kvasir_root)
    assert code == 2 and "would mix them into its records" in " ".join(out.split()), out
    assert json.loads((trained_run / "metrics.json").read_text()) == metrics   # records untouched
    code, out = invoke("evaluate", trained_run, "--data-root", tmp_path / "nowhere")
    assert code == 2 and "data root" in out and "nowhere is not there" in " ".join(out.split()), out
    assert "pass --data-root" not in " ".join(out.split())   # it was passed
    images = kvasir_root / "Kvasir-SEG" / "images"
    code, out = invoke("predict", trained_run, images, "--out", tmp_path / "pred")
    assert code == 0 and "(foreground probability x 255)" in out and "class" not in out, out
    first = sorted(images.iterdir())[0]
    pred = Image.open(tmp_path / "pred" / f"{first.stem}.png")
    assert pred.size == Image.open(first).size and pred.mode == "L"


def test_public_checkpoint_round_trips_through_import_and_predict(tmp_path, kvasir_root):
    torch.manual_seed(3)
    bb = build_backbone("test")
    model = Segmenter(bb, SegDINOHead(bb.embed_dim, 1), freeze_backbone=False)
    for p in model.parameters():
        p.data.normal_(0, 0.05)
    ckpt = tmp_path / "best_model.pth"
    torch.save(to_public_state(model), ckpt)
    run_dir = tmp_path / "imported"
    code, out = invoke("import-checkpoint", ckpt, "--backbone", "test", "--out", run_dir, "--dataset", "kvasirr")
    assert code == 2 and "unknown dataset 'kvasirr'" in out and not run_dir.exists(), out
    code, out = invoke("import-checkpoint", ckpt, "--backbone", "test", "--out", run_dir, "--data-root",
                       tmp_path / "nowhere")
    assert code == 2 and "data root not found" in out and not run_dir.exists(), out
    code, out = invoke("import-checkpoint", ckpt, "--backbone", "test", "--out", run_dir, "--data-root", kvasir_root,
                       "--size", 64)
    assert code == 0, out
    recorded = yaml.safe_load((run_dir / "config.yaml").read_text())["data"]["root"]
    assert recorded == str(kvasir_root.absolute())   # evaluate works from any folder
    image = sorted((kvasir_root / "Kvasir-SEG" / "images").iterdir())[0]
    code, out = invoke("predict", run_dir, image, "--out", tmp_path / "pred")
    assert code == 0, out
    # the same probabilities as the original model on the same resized input
    from benchmark.evaluate import native_probability
    arr = np.array(Image.open(image).convert("RGB").resize((64, 64), Image.BICUBIC))
    with torch.no_grad():
        prob = torch.sigmoid(model.eval()(torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 255))[0, 0].numpy()
    expected = np.round(native_probability(prob, Image.open(image).size[::-1]) * 255)
    got = np.asarray(Image.open(tmp_path / "pred" / f"{image.stem}.png"))
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    code, out = invoke("evaluate", run_dir)
    assert code == 0, out


def test_import_is_strict(tmp_path):
    bb = build_backbone("test")
    state = to_public_state(Segmenter(bb, SegDINOHead(bb.embed_dim, 1)))
    del state["head.scratch.layer2_rn.weight"]
    torch.save(state, tmp_path / "broken.pth")
    code, out = invoke("import-checkpoint", tmp_path / "broken.pth", "--backbone", "test", "--out", tmp_path / "r")
    assert code == 2 and "scratch.layer2_rn.weight" in out
    code, out = invoke("import-checkpoint", tmp_path / "gone.pth", "--backbone", "test", "--out", tmp_path / "r")
    assert code == 2 and "checkpoint file not found:" in out and "weights" not in out, out


@pytest.mark.parametrize("args, message", [
    (["train", "--preset", "smoke", "--method", "segformer", "--data-root", "."],
     "unknown method 'segformer'; valid: segdino"),
    (["train", "--preset", "smoke", "--backbone", "vit_huge", "--data-root", "."],
     "unknown backbone 'vit_huge'; valid:"),
    (["train", "--preset", "smoke", "--size", "250", "--data-root", "."], "not a positive multiple of 16"),
    (["train", "--preset", "smoke", "--weights", "/nonexistent/w.pth", "--data-root", "{kvasir}"],
     "weights file not found"),
    (["train", "--preset", "smoke", "--data-root", "/nonexistent/data"], "data root not found"),
    (["profile", "--method", "segdino", "--weights", "{garbage}", "--no-timing"], "cannot read weights file"),
    (["run", "--datasets", "kvasir", "--methods", "segdino", "--data-root", "/nonexistent"], "data root not found"),
    (["report", "/nonexistent/runs"], "runs directory not found"),
    (["report", "{empty}"], "no finished runs under"),
    (["data", "check", "/nonexistent/data"], "folder not found: /nonexistent/data"),
    (["run", "--datasets", "kvasirx", "--data-root", "{kvasir}"], "unknown dataset 'kvasirx'; valid: tn3k"),
    (["run", "--all", "--dry-run", "--data-root", "/nonexistent"], "data root not found"),
    (["run", "--all", "--dry-run", "--data-root", "{kvasir}", "--weights", "/nonexistent/w.pth"],
     "weights file not found"),
    (["train", "--preset", "smoke", "--data-root", "{kvasir}", "--device", "tpu"],
     "train.device 'tpu': use auto, cpu, cuda or cuda:N"),
    (["evaluate", "/nonexistent/run", "--device", "CPU"], "--device 'CPU': use auto, cpu, cuda or cuda:N"),
    (["train", "--preset", "smoke", "--data-root", "{kvasir}", "--set", "optim.lr=-1"],
     "optim.lr must be above 0, not -1.0"),
    (["train", "--preset", "smoke", "--data-root", "{kvasir}", "--seed", "-1"], "train.seed must be at least 0"),
    (["train", "--preset", "smoke", "--data-root", "{kvasir}", "--set", "optim.weight_decay=inf"],
     "optim.weight_decay must be a finite number, not inf"),
    (["train", "--preset", "smoke", "--data-root", "{kvasir}", "--config", "{empty}"], "is a folder: give a YAML"),
    (["evaluate", "/nonexistent/run"], "run directory not found: /nonexistent/run"),
    (["report", "{empty}", "--out", "{garbage}"], "garbage.pth is a file: give a folder"),
    (["data", "check", "{garbage}"], "data check: folder {garbage} is a file, not a folder"),
    (["data", "check", "{empty}", "--num-classes", "1"], "--num-classes counts the background too: 2 for binary"),
    (["demo", "--quick", "--out", "{garbage}/demo"], "lies under {garbage}, which is a file: give a folder"),
])
def test_user_errors_are_one_line_and_exit_2(args, message, kvasir_root, tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00junk")
    (tmp_path / "empty").mkdir()
    fill = dict(kvasir=kvasir_root, garbage=garbage, empty=tmp_path / "empty")
    args = ([a.format(**fill) for a in args] + ["--runs-dir", str(tmp_path)] * (args[0] in ("train", "run")))
    code, out = invoke(*args)
    assert code == 2, out
    assert message.format(**fill) in " ".join(out.split())
    assert "Traceback" not in out
    assert not any(tmp_path.glob("*/*/config.yaml"))   # a failed start leaves no run directory behind


def test_wrong_size_weights_via_cli(tmp_path, kvasir_root):
    from segdino.meta_layout import timm_to_meta
    torch.save(timm_to_meta(build_backbone("test").vit.state_dict()), tmp_path / "tiny.pth")
    code, out = invoke("profile", "--method", "segdino", "--backbone", "dinov3_vits16",
                       "--weights", tmp_path / "tiny.pth", "--no-timing")
    assert code == 2 and "expects (1, 1, 384)" in out and "Traceback" not in out


def test_predict_on_an_empty_folder(trained_run, tmp_path):
    (tmp_path / "empty").mkdir()
    code, out = invoke("predict", trained_run, tmp_path / "empty", "--out", tmp_path / "p")
    assert code == 2 and "no images" in out
    (tmp_path / "empty" / "broken.jpg").write_bytes(b"")   # predict has no --skip-bad: its error does not offer it
    code, out = invoke("predict", trained_run, tmp_path / "empty", "--out", tmp_path / "p")
    assert code == 2 and "cannot read image" in out and "replace this file" in out and "skip" not in out, out
    (tmp_path / "notes.txt").write_text("not an image")   # a lone file that is no image: refused before any work
    code, out = invoke("predict", trained_run, tmp_path / "notes.txt", "--out", tmp_path / "p2")
    assert code == 2 and "notes.txt is not an image (.txt)" in out and not (tmp_path / "p2").exists(), out


def test_a_predict_stopped_part_way_leaves_a_folder_score_refuses(trained_run, tmp_path):
    """An unreadable image after the first stops predict: the maps before it stay, and the record beside them
    says the set is incomplete, so `segbench score` refuses the folder instead of scoring part of it."""
    frames, masks = tmp_path / "images", tmp_path / "masks"
    frames.mkdir(), masks.mkdir()
    for name in ("a", "c"):
        Image.fromarray(np.zeros((40, 56, 3), np.uint8)).save(frames / f"{name}.jpg")
    for name in ("a", "b", "c"):
        Image.fromarray(np.zeros((40, 56), np.uint8)).save(masks / f"{name}.png")
    (frames / "b.jpg").write_bytes(b"not a jpeg")
    code, out = invoke("predict", trained_run, frames, "--out", tmp_path / "pred")
    assert code == 2 and "b.jpg" in out and "1 of the 3 maps were written to" in " ".join(out.split()), out
    meta = json.loads((tmp_path / "pred" / "segbench_predictions.json").read_text())
    assert meta["complete"] is False and meta["maps"] == 3 and meta["maps_written"] == 1
    assert meta["stopped_at"].endswith("b.jpg") and "cannot read image" in meta["reason"]
    assert (tmp_path / "pred" / "a.png").is_file() and not (tmp_path / "pred" / "c.png").exists()
    code, out = invoke("score", tmp_path / "pred", masks, "--profile", "segdino")
    flat = " ".join(out.split())
    assert code == 2 and "holds 1 of the 3 maps of a `segbench predict` that stopped at" in flat, out
    assert "run segbench predict again" in flat, out
    Image.fromarray(np.zeros((40, 56, 3), np.uint8)).save(frames / "b.jpg")
    code, out = invoke("predict", trained_run, frames, "--out", tmp_path / "pred", "--device", "auto")
    assert code == 0 and json.loads((tmp_path / "pred" / "segbench_predictions.json").read_text())["complete"]
    code, out = invoke("score", tmp_path / "pred", masks, "--profile", "segdino")
    assert code == 0 and "3 images scored" in out, out


def test_data_check_exit_codes(tmp_path):
    from benchmark.data.synthetic import plant_defects, write_all

    clean = write_all(tmp_path / "clean", n_train=6, n_test=3)
    code, out = invoke("data", "check", tmp_path / "clean", "--miniature")
    assert code == 0, out
    code, out = invoke("data", "check", clean["kvasir"])
    assert code == 1 and "count_deviation" in out            # 6 images are not the official 880
    bad = write_all(tmp_path / "bad", n_train=6, n_test=3)
    planted = plant_defects(bad["msd"], "msd")
    code, out = invoke("data", "check", bad["msd"], "--dataset", "msd", "--miniature")
    assert code == 1
    for line in planted:
        kind = line.split(":", 1)[0]
        assert kind in out, (kind, out)


def test_score_command_prints_summary_and_writes_rows(tmp_path):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    for i in range(3):
        mask = np.zeros((32, 40), np.uint8)
        mask[8:20, 10:30] = 255
        Image.fromarray(mask).save(gt / f"img{i}.png")
        Image.fromarray((mask * 0.8).astype(np.uint8)).save(pred / f"img{i}.png")
    code, out = invoke("score", pred, gt, "--profile", "mirror", "--out", tmp_path / "rows.csv", "--json")
    assert code == 0, out
    summary = json.loads(out)
    assert summary["metrics"]["iou"] == pytest.approx(1.0) and summary["counts"]["n_images"] == 3
    assert len((tmp_path / "rows.csv").read_text().splitlines()) == 4
    (gt / "img0.png").unlink()
    code, out = invoke("score", pred, gt)
    assert code == 2 and "unpaired" in out


def test_multiclass_folder_dataset_trains_predicts_and_reports(tmp_path):
    from benchmark.data.synthetic import write_folder

    write_folder(tmp_path / "mine", 12, 4, 0, num_classes=3)
    runs = tmp_path / "runs"
    code, out = invoke("train", "--dataset", "folder", "--data-root", tmp_path / "mine", "--preset", "smoke",
                       "--epochs", 1, "--size", 64, "--runs-dir", runs)
    assert code == 0, out
    # how the data was read, as `data check` says it: the split lists and the classes inferred from the masks
    assert "note: folder: splits from train.txt, test.txt" in out and "note: folder: num_classes 3 inferred" in out
    run_dir = runs / "folder" / "segdino__test__smoke__s0"
    assert torch.load(run_dir / "model.pt", weights_only=True)["num_classes"] == 3
    # giving the count the masks give is the same run (no conflict with the run made without it), in a sweep too
    for command in (["train", "--dataset", "folder"],
                    ["run", "--datasets", "folder", "--methods", "segdino", "--seeds", "0"]):
        code, out = invoke(*command, "--data-root", tmp_path / "mine", "--preset", "smoke", "--epochs", 1,
                           "--size", 64, "--runs-dir", runs, "--num-classes", 3)
        assert code == 0 and "--num-classes 3 is the count the masks give: recorded as inferred" in out, out
        assert "conflict" not in out.lower() and "different config" not in out, out
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["data"]["num_classes"] is None
    # the class count can be given: a class no mask holds yet is kept; too few classes names the mask
    code, out = invoke("train", "--dataset", "folder", "--data-root", tmp_path / "mine", "--preset", "smoke",
                       "--epochs", 1, "--size", 64, "--runs-dir", tmp_path / "runs4", "--num-classes", 4)
    assert code == 0 and "num_classes 4 given" in out, out
    run4 = tmp_path / "runs4" / "folder" / "segdino__test__smoke__s0"
    assert torch.load(run4 / "model.pt", weights_only=True)["num_classes"] == 4
    assert yaml.safe_load((run4 / "config.yaml").read_text())["data"]["num_classes"] == 4
    code, out = invoke("train", "--dataset", "folder", "--data-root", tmp_path / "mine", "--preset", "smoke",
                       "--epochs", 1, "--size", 64, "--runs-dir", tmp_path / "runs2", "--num-classes", 2)
    assert code == 2 and "mine/masks/sample_" in out and "num_classes 2" in out, out
    code, out = invoke("run", "--datasets", "kvasir", "--methods", "segdino", "--preset", "smoke", "--data-root",
                       tmp_path, "--num-classes", 3, "--batch-size", 2, "--dry-run")
    assert code == 2 and "data.num_classes (--num-classes) 3 is for folder datasets; kvasir is binary" in out, out
    code, out = invoke("predict", run_dir, tmp_path / "mine" / "images", "--out", tmp_path / "pred")
    assert code == 0 and "(class index (0-2))" in out and "probability" not in out, out
    pred = np.asarray(Image.open(sorted((tmp_path / "pred").iterdir())[0]))
    assert pred.max() <= 2                       # class indices, not probabilities
    code, out = invoke("report", runs, "--out", tmp_path / "report", "--no-figures")
    assert code == 0 and "report of 1 run (" in out, out
    code, out = invoke("report", runs, "--out", tmp_path / "report2", "--preset", "paper")
    assert code == 2 and "match --backbone any --preset paper; present: --backbone test --preset smoke" in out, out


def test_profile_outputs_csv_and_saves_files_with_variants(tmp_path):
    code, out = invoke("profile", "--methods", "segdino,unet-small", "--backbone", "test", "--size", 64, "--no-timing",
                       "--csv")
    assert code == 0, out
    lines = out.strip().splitlines()
    assert lines[0].startswith("method,") and len(lines) == 3
    code, out = invoke("profile", "--method", "segdino", "--backbone", "test", "--size", 64, "--no-timing",
                       "--out", tmp_path / "counts")   # parameters and FLOPs only: saved all the same
    assert code == 0, out
    saved = json.loads((tmp_path / "counts" / "profile_cpu.json").read_text())
    assert saved["torch"] and saved["rows"][0]["trainable_params"] > 0
    code, out = invoke("profile", "--method", "segdino", "--backbone", "test", "--size", 64, "--batch", 2,
                       "--variant", "float32:none", "--out", tmp_path, "--json")
    assert code == 0, out
    row = json.loads(out[out.index("["):])[0]
    assert row["dtype"] == "float32" and row["batch1_ms"] > 0 and row["throughput_img_s"] > 0
    assert (tmp_path / "profile_cpu.csv").is_file() and (tmp_path / "profile_cpu.json").is_file()
    code, out = invoke("profile", "--method", "segdino", "--backbone", "test", "--variant", "float8:none")
    assert code == 2 and "unknown variant" in out


def test_data_check_json(tmp_path):
    from benchmark.data.synthetic import write_kvasir

    write_kvasir(tmp_path / "Kvasir-SEG", n_train=4, n_test=2)
    code, out = invoke("data", "check", tmp_path / "Kvasir-SEG", "--miniature", "--json")
    assert code == 0, out
    assert json.loads(out)["ok"] is True


@pytest.mark.slow
def test_demo_quick_via_cli(tmp_path):
    code, out = invoke("demo", "--out", tmp_path / "demo", "--quick")
    assert code == 0, out
    assert "headline" in out and (tmp_path / "demo" / "headline" / "kvasir").is_dir()


def test_tqdm_disable_switches_every_bar_off(monkeypatch):
    # bars pass an explicit disable=, which would override tqdm's own TQDM_DISABLE; bars_off honours it
    from benchmark.progress import bars_off

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert (bars_off(True), bars_off(False)) == (False, True)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert bars_off(True)


def test_a_real_backbone_without_weights_is_named_random_with_the_fix(tmp_path, kvasir_root):
    base = ["run", "--datasets", "kvasir", "--methods", "segdino", "--seeds", "0", "--data-root", kvasir_root,
            "--runs-dir", tmp_path, "--dry-run"]
    code, out = invoke(*base, "--backbone", "dinov3_vits16")
    assert code == 0, out
    assert "starts from random weights" in out and "hub:facebook/dinov3-vits16-pretrain-lvd1689m" in out
    code, out = invoke(*base, "--backbone", "test")   # the tiny test backbone has no real weights to point to
    assert code == 0 and "random weights" not in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the note of a machine without a GPU")
def test_runs_per_gpu_without_a_gpu_is_noted(tmp_path, kvasir_root):
    base = ["run", "--datasets", "kvasir", "--methods", "segdino", "--seeds", "0", "--data-root", kvasir_root,
            "--runs-dir", tmp_path, "--dry-run", "--preset", "smoke"]
    code, out = invoke(*base, "--runs-per-gpu", 4)
    assert code == 0 and "--runs-per-gpu 4 with no GPU here: 4 runs at a time share the CPU's" in out, out
    code, out = invoke(*base)
    assert code == 0 and "runs-per-gpu" not in out, out


def test_seeds_must_be_whole_numbers(tmp_path, kvasir_root):
    code, out = invoke("run", "--datasets", "kvasir", "--methods", "segdino", "--seeds", "0,a", "--data-root",
                       kvasir_root, "--runs-dir", tmp_path, "--dry-run")
    assert code == 2 and "--seeds takes whole numbers" in out and "invalid literal" not in out
    code, out = invoke("run", "--datasets", "kvasir,kvasir", "--methods", "segdino", "--seeds", "0,1", "--seeds", "0",
                       "--data-root", kvasir_root, "--runs-dir", tmp_path, "--dry-run", "--preset", "smoke")
    assert code == 0 and "planned: 2 runs" in out and out.count("│ 0 ") == 1, out   # each run once


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without a GPU")
def test_cuda_without_a_gpu_and_bad_config_files_are_one_line(tmp_path, kvasir_root):
    for args in (["train", "--preset", "smoke", "--data-root", kvasir_root, "--device", "cuda",
                  "--runs-dir", tmp_path],
                 ["profile", "--method", "segdino", "--backbone", "test", "--device", "cuda"]):
        code, out = invoke(*args)
        assert code == 2 and "no usable CUDA GPU; use --device cpu" in " ".join(out.split()), out
    broken = tmp_path / "broken.yaml"
    broken.write_text("train:\n  epochs: [1\n")
    base = ["train", "--preset", "smoke", "--data-root", kvasir_root, "--runs-dir", tmp_path]
    code, out = invoke(*base, "--config", broken)
    assert code == 2 and "broken.yaml is not valid YAML (line" in " ".join(out.split()), out
    code, out = invoke(*base, "--config", tmp_path / "nope.yaml")
    assert code == 2 and "config file not found" in out, out
    code, out = invoke(*base, "--subset", -2)
    assert code == 2 and "data.subset must be at least 1" in out, out


def test_predict_keeps_sub_folders_so_score_pairs_video_frames(trained_run, tmp_path):
    """A video test set holds its frames in one folder per video: predict writes them in the same tree, and
    `segbench score` pairs them with the masks by relative path."""
    frames, masks = tmp_path / "images", tmp_path / "labels"
    for video in ("v1", "v2"):
        for folder in (frames / video, masks / video):
            folder.mkdir(parents=True)
        Image.fromarray(np.zeros((40, 56, 3), np.uint8)).save(frames / video / "00001.jpg")
        Image.fromarray(np.zeros((40, 56), np.uint8)).save(masks / video / "00001.png")
    code, out = invoke("predict", trained_run, frames, "--out", tmp_path / "pred")
    assert code == 0 and "wrote 2 maps" in out, out
    assert sorted(p.relative_to(tmp_path / "pred").as_posix() for p in (tmp_path / "pred").rglob("*.png")) == [
        "v1/00001.png", "v2/00001.png"]
    code, out = invoke("score", tmp_path / "pred", masks, "--profile", "shadow")
    assert code == 0 and "2 images scored" in out, out


def test_predict_a_split_and_score_it_against_the_native_layout(trained_run, kvasir_root, tmp_path):
    """`predict RUN --split test` writes one `<key>.png` per test sample of the run's dataset; `score PRED ROOT
    --dataset kvasir` pairs them with the official test split's masks (val.txt; the masks folder holds every image's
    mask, so scoring against it alone is unpaired) and reproduces what `evaluate` recorded for the run."""
    code, out = invoke("predict", trained_run, "--split", "test", "--out", tmp_path / "pred")
    assert code == 0 and "wrote 8 maps for the kvasir test split in" in " ".join(out.split()), out
    code, out = invoke("score", tmp_path / "pred", kvasir_root, "--dataset", "kvasir", "--profile", "medical-native",
                       "--json")
    assert code == 0, out
    summary = json.loads(out)
    recorded = json.loads((trained_run / "metrics.json").read_text())["profiles"]["medical-native"]["metrics"]
    assert summary["counts"]["n_images"] == 8 and summary["ignored"] == 0
    assert set(summary["metrics"]) == set(recorded) and "hd95" in recorded
    for name in recorded:   # probabilities saved as 8-bit: the same masks at p > 0.5
        assert summary["metrics"][name] == pytest.approx(recorded[name], abs=1e-6), name
    size = json.loads((trained_run / "config.yaml").read_text().split("size:")[1].split()[0])   # the run's (not 256)
    code, out = invoke("score", tmp_path / "pred", kvasir_root, "--dataset", "kvasir", "--profile", "segdino")
    assert code == 0 and f"at {size}x{size} (the network size of the run that predicted" in " ".join(out.split()), out
    code, explicit = invoke("score", tmp_path / "pred", kvasir_root, "--dataset", "kvasir", "--json", "--size", 256)
    assert json.loads(explicit)["scored_size"] == "256x256"   # --size still wins
    code, out = invoke("score", tmp_path / "pred", kvasir_root / "Kvasir-SEG" / "masks", "--profile", "medical-native")
    assert code == 2 and "ground-truth mask(s) without prediction" in " ".join(out.split()), out
    code, out = invoke("predict", trained_run, kvasir_root, "--split", "test", "--out", tmp_path / "p2")
    assert code == 2 and "either IMAGES or --split" in out, out
    code, out = invoke("predict", trained_run, "--split", "validation", "--out", tmp_path / "p2")
    assert code == 2 and "kvasir has no 'validation' split (it has train, test)" in out, out


def test_a_config_file_wins_over_train_defaults_it_was_not_told_to_override(tmp_path, kvasir_root):
    """`train --config exp.yaml` with the method and seed in the file: the run is that method and seed (the CLI's
    own defaults used to overwrite them); a flag given on the command line still wins over the file."""
    exp = tmp_path / "exp.yaml"
    exp.write_text("decoder:\n  name: unet-small\ntrain:\n  seed: 3\n  epochs: 1\ndata:\n  size: 64\n")
    base = ["train", "--preset", "smoke", "--data-root", kvasir_root, "--runs-dir", tmp_path / "runs", "--config", exp]
    code, out = invoke(*base)
    assert code == 0, out
    assert (tmp_path / "runs" / "kvasir" / "unet-small__test__smoke__s3" / "DONE").is_file()
    code, out = invoke(*base, "--seed", 4)
    assert code == 0 and (tmp_path / "runs" / "kvasir" / "unet-small__test__smoke__s4" / "DONE").is_file(), out
    code, out = invoke(*base, "--set", "eval.profiles=mirrr")
    assert code == 2 and "unknown scoring profile 'mirrr'" in out, out


def test_score_against_a_dataset_defaults_to_its_profile(tmp_path):
    """Mirror predictions scored with `--dataset vmd` and no --profile are scored as mirrors (not by the medical
    `segdino` profile, the default only without --dataset)."""
    from benchmark.data.synthetic import write_vmd
    from benchmark.registry import open_dataset

    source = open_dataset("vmd", write_vmd(tmp_path / "VMD", n_train=2, n_test=3))
    for ref in source.splits["test"]:
        (tmp_path / "pred" / ref.key).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((source.read_mask(ref) > 0).astype(np.uint8) * 255).save(tmp_path / "pred" / f"{ref.key}.png")
    code, out = invoke("score", tmp_path / "pred", tmp_path, "--dataset", "vmd")
    assert code == 0 and "scored under 'mirror'" in " ".join(out.split()), out
    code, out = invoke("score", tmp_path / "pred", tmp_path / "VMD" / "test")
    assert code == 2 and "--dataset vmd" in " ".join(out.split()), out
    code, out = invoke("score", tmp_path / "pred", tmp_path / "VMD" / "test", "--split", "train")
    assert code == 2 and "give --dataset too" in out, out


def test_profile_exit_codes_say_when_rows_are_missing(monkeypatch):
    code, out = invoke("profile", "--method", "segdino", "--backbone", "test", "--size", 64, "--batch", 0)
    assert code == 2 and "--batch must be at least 1, not 0" in out, out
    code, out = invoke("profile", "--method", "segdino", "--backbone", "test", "--variant", "foo", "--no-timing")
    assert code == 2 and "drop --no-timing" in out, out
    code, out = invoke("profile", "--method", "segdino", "--backbone", "test", "--size", 64, "--variant", "float8")
    assert code == 2 and "unknown variant 'float8:none'" in out, out
    import benchmark.profiling as profiling

    def one_variant_fails(methods, backbone, size, *args):
        return [{"method": methods[0], "backbone": backbone, "dtype": "bfloat16", "compile": "max-autotune",
                 "error": "RuntimeError: no compiler"}]

    monkeypatch.setattr(profiling, "profile_methods", one_variant_fails)
    code, out = invoke("profile", "--method", "segdino", "--backbone", "test", "--size", 64)
    assert code == 1 and "1 of 1 measurements failed" in out and "no compiler" in out, out


def test_ctrl_c_says_the_same_command_resumes(monkeypatch, kvasir_root, tmp_path):
    import benchmark.train

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(benchmark.train, "train_run", interrupted)
    code, out = invoke("train", "--preset", "smoke", "--data-root", kvasir_root, "--runs-dir", tmp_path)
    text = " ".join(out.split())
    assert code == 130 and "interrupted" in out and "resumes from its last checkpoint" in text, out
    assert "nothing finished is lost" not in text   # a plain interrupt: the epochs since the checkpoint are redone
    stop = KeyboardInterrupt("run x stopped after epoch 2 of 4, which is saved")
    stop.boundary = True

    def at_a_boundary(*args, **kwargs):
        raise stop

    monkeypatch.setattr(benchmark.train, "train_run", at_a_boundary)
    code, out = invoke("train", "--preset", "smoke", "--data-root", kvasir_root, "--runs-dir", tmp_path)
    assert code == 130 and "epoch 2 of 4, which is saved; nothing finished is lost" in " ".join(out.split()), out
    import benchmark.metrics

    monkeypatch.setattr(benchmark.metrics, "score_directories", interrupted)
    code, out = invoke("score", tmp_path, tmp_path)   # nothing to resume: just "interrupted"
    assert code == 130 and "interrupted" in out and "resume" not in out, out


def test_user_errors_found_by_the_error_path_review(trained_run, kvasir_root, tmp_path):
    """Each gave a silently wrong result, destroyed a file or printed a traceback before."""
    import shutil

    from benchmark.data.synthetic import write_folder

    # masks that read as empty (0/1 saved as JPEG, or all zero) are refused before training, naming a mask
    root = write_folder(tmp_path / "empty_masks", 6, 3)
    for mask in (root / "masks").glob("*.png"):
        Image.fromarray(np.zeros_like(np.asarray(Image.open(mask)))).save(mask)
    code, out = invoke("train", "--preset", "smoke", "--dataset", "folder", "--data-root", root, "--runs-dir",
                       tmp_path / "r1", "--epochs", 1, "--size", 64)
    assert code == 2 and "not one training mask has a foreground pixel" in out and "sample_0" in out, out
    # predict --out inside the image folder would overwrite images; two images would write one map
    images = tmp_path / "images"
    images.mkdir()
    for path in sorted((kvasir_root / "Kvasir-SEG" / "images").glob("*.jpg"))[:2]:
        shutil.copy(path, images)
    code, out = invoke("predict", trained_run, images, "--out", images / "maps")
    assert code == 2 and "is inside the image folder" in out and not (images / "maps").exists(), out
    Image.new("RGB", (40, 30)).save(images / (sorted(images.glob("*.jpg"))[0].stem + ".png"))
    code, out = invoke("predict", trained_run, images, "--out", tmp_path / "maps")
    assert code == 2 and "would both write" in out, out
    # a damaged config.yaml or model.pt names the file instead of a traceback
    damaged = tmp_path / "damaged"
    shutil.copytree(trained_run, damaged)
    (damaged / "config.yaml").write_text("backbone: [\n")
    code, out = invoke("evaluate", damaged)
    assert code == 2 and "config.yaml is not valid YAML (line 2)" in out, out
    shutil.copy(trained_run / "config.yaml", damaged / "config.yaml")
    (damaged / "model.pt").write_bytes((trained_run / "model.pt").read_bytes()[:1000])
    code, out = invoke("evaluate", damaged)
    assert code == 2 and "model.pt is unreadable" in out, out


def test_score_reads_predict_maps_as_probabilities_even_when_all_zero_or_one(tmp_path):
    """A confident-background map of `segbench predict` holds only 0 and 1 (p < 0.006): read as p = 1/255, not as a
    0/1 mask whose ones are foreground; a folder without predict's record keeps the 0/1-mask rule."""
    from benchmark.metrics.score import PREDICTIONS_META, probability_folder, read_prediction

    values = np.zeros((8, 8), np.uint8)
    values[2:4, 2:4] = 1
    Image.fromarray(values).save(tmp_path / "a.png")
    assert not probability_folder(tmp_path) and read_prediction(tmp_path / "a.png").max() == 1.0
    (tmp_path / PREDICTIONS_META).write_text("{}")
    assert probability_folder(tmp_path)
    assert read_prediction(tmp_path / "a.png", probability_folder(tmp_path)).max() == np.float32(1 / 255)


def test_a_diverging_run_stops_at_the_first_non_finite_loss(tmp_path, kvasir_root):
    code, out = invoke("train", "--preset", "smoke", "--data-root", kvasir_root, "--runs-dir", tmp_path,
                       "--epochs", 4, "--size", 64, "--set", "optim.lr=1e12")
    assert code == 2 and "training diverged in epoch" in out and "lower optim.lr (now 1000000000000.0)" in out, out


def test_options_records_and_interrupts_named_in_errors(trained_run, kvasir_root, tmp_path):
    """The second error-path review: each printed a raw OS error, a traceback, or went wrong quietly before."""
    import shutil
    import subprocess
    import sys

    import benchmark.config

    train = ["train", "--preset", "smoke", "--data-root", kvasir_root, "--epochs", 1, "--size", 64]
    # a runs folder under a file, or at a broken symbolic link
    (tmp_path / "f").write_text("x")
    code, out = invoke(*train, "--runs-dir", tmp_path / "f" / "runs")
    assert code == 2 and "lies under" in out and "which is a file" in out, out
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    code, out = invoke("report", trained_run.parent.parent, "--out", tmp_path / "gone")
    assert code == 2 and "is a symbolic link to" in out and "which is not there" in " ".join(out.split()), out
    # runs written into the dataset's own folder: its kvasir/ runs folder is not taken for the dataset after
    data = tmp_path / "Kvasir-SEG"
    shutil.copytree(kvasir_root / "Kvasir-SEG", data)
    in_data = ["train", "--preset", "smoke", "--data-root", data, "--epochs", 1, "--size", 64, "--runs-dir", data]
    assert invoke(*in_data)[0] == 0
    code, out = invoke(*in_data)
    assert code == 0 and "already finished" in out, out
    # how often a run checkpoints is not part of what it is: the finished run is found again
    code, out = invoke(*train, "--runs-dir", trained_run.parent.parent, "--set", "train.checkpoint_every_s=5")
    assert code == 0 and "already finished" in out, out
    # score --out at a folder writes the rows in it, leaving no temporary file
    maps = tmp_path / "maps"
    assert invoke("predict", trained_run, "--out", maps)[0] == 0
    (tmp_path / "scores").mkdir()
    code, out = invoke("score", maps, kvasir_root, "--dataset", "kvasir", "--out", tmp_path / "scores")
    assert code == 0 and (tmp_path / "scores" / "scores.csv").is_file(), out
    assert sorted(p.name for p in tmp_path.glob("scores*")) == ["scores"]
    # a run that lost its metrics.json is not re-scored as if imported; a damaged one is named
    lost = tmp_path / "lost"
    shutil.copytree(trained_run, lost)
    (lost / "metrics.json").unlink()
    code, out = invoke("evaluate", lost)
    assert code == 2 and "has no metrics.json though it is marked DONE" in " ".join(out.split()), out
    assert not (lost / "metrics.json").exists()
    (lost / "metrics.json").write_text("{\n")
    code, out = invoke("evaluate", lost)
    assert code == 2 and "metrics.json is damaged" in out and "segbench run" in out, out
    # a config.yaml cut short that still parses is damaged, for evaluate as for `run`
    from benchmark.sweep import run_state

    (lost / "config.yaml").write_text((trained_run / "config.yaml").read_text().split("\ntrain:")[0])
    code, out = invoke("evaluate", lost)
    assert code == 2 and "is missing its train, eval, run sections (cut short?)" in " ".join(out.split()), out
    assert run_state(lost)[0] == "corrupt"
    # a runs folder given where a run directory is wanted points at a run inside it
    code, out = invoke("evaluate", trained_run.parent.parent)
    assert code == 2 and f"e.g. {trained_run}" in " ".join(out.split()), out
    # Ctrl-C while a command loads torch is the command's own interrupt; --help and the CLI module load no torch
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(benchmark.config, "load_config", interrupted)   # the command's first import of segbench code
        code, out = invoke(*train, "--runs-dir", tmp_path / "r")
    assert code == 130 and "interrupted" in out, out
    loaded = subprocess.run([sys.executable, "-c", "import sys, benchmark.cli; print('torch' in sys.modules)"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "False"


def test_train_without_dataset_names_the_layout_found(tmp_path):
    """`train` defaults to the preset's dataset (kvasir); on a user's images/ + masks/ folder its error says so and
    names the layout data check would detect."""
    from benchmark.data.synthetic import write_folder

    write_folder(tmp_path / "mine", 6, 2, split_lists=False)
    code, out = invoke("train", "--data-root", tmp_path / "mine", "--preset", "smoke", "--runs-dir", tmp_path / "r")
    message = " ".join(out.split())
    assert code == 2 and "no --dataset was given, so kvasir;" in message and "looks like --dataset folder" in message
    code, out = invoke("train", "--dataset", "kvasir", "--data-root", tmp_path / "mine", "--preset", "smoke",
                       "--runs-dir", tmp_path / "r")
    assert code == 2 and "no --dataset was given" not in " ".join(out.split()), out


def test_a_keyerror_from_a_bug_keeps_its_traceback():
    """An unknown key is the user's to fix (one line, exit 2); any other KeyError is a bug, shown as one."""
    from benchmark.cli import user_errors
    from benchmark.registry import DECODERS, UnknownKey, check_key

    @user_errors
    def broken():
        return {}["profiles"]

    with pytest.raises(KeyError, match="profiles"):
        broken()
    with pytest.raises(UnknownKey) as info:
        check_key("method", "segdin", DECODERS)
    assert str(info.value) == "unknown method 'segdin'; valid: " + ", ".join(DECODERS)   # no KeyError quotes


def test_segbench_warnings_print_as_one_line(capsys):
    """A warning segbench raises (another pretraining than the paper's) is one `warning:` line, not Python's
    UserWarning with a source line; other libraries' warnings keep Python's form."""
    import os

    from benchmark import cli

    cli._show_warning(UserWarning("hub weights 'x' are not the paper's lvd1689m pretraining"), UserWarning,
                      f"{os.sep}site{os.sep}segdino{os.sep}backbone.py", 236)
    err = capsys.readouterr().err
    assert err.strip() == "warning: hub weights 'x' are not the paper's lvd1689m pretraining", err
    cli._show_warning(UserWarning("other"), UserWarning, f"{os.sep}site{os.sep}timm{os.sep}x.py", 1)
    err = capsys.readouterr().err
    assert "UserWarning: other" in err and "x.py:1" in err


def test_train_and_run_warn_of_counts_that_differ_from_the_official_ones(tmp_path, kvasir_root, monkeypatch):
    """A partial copy trains without an error: `train` and `run` say so in one warning line before any work, with
    the count deviations `data check` reports (one function computes both). A --subset run differs on purpose, and a
    copy of the official counts is as expected: no warning for either."""
    import benchmark.data.kvasir
    import benchmark.sweep
    import benchmark.train
    from benchmark.data.check import check_dataset

    def stop(*args, **kwargs):
        raise ValueError("stopped before any work")

    monkeypatch.setattr(benchmark.train, "train_run", stop)
    monkeypatch.setattr(benchmark.sweep, "run_sweep", stop)
    root = kvasir_root / "Kvasir-SEG"
    deviations = [p.message for p in check_dataset(kvasir_root, "kvasir").deviations]
    assert deviations == ["train: 24 samples, the official count is 880", "test: 8 samples, the official count is 120"]
    warning = (f"warning: kvasir: {'; '.join(deviations)} (in {root}): a partial or altered copy trains and scores on "
               "what it holds, and its numbers do not compare with the paper's; `segbench data check "
               f"{root}` shows the counts and checks every file")
    common = ["--preset", "smoke", "--data-root", kvasir_root, "--runs-dir", tmp_path]
    for command in (["train", "--dataset", "kvasir"], ["run", "--datasets", "kvasir", "--methods", "segdino"]):
        code, out = invoke(*command, *common)
        assert code == 2 and "stopped before any work" in out, out
        assert warning in out.splitlines() and out.count("warning:") == 1, out
        code, out = invoke(*command, *common, "--subset", 4)
        assert code == 2 and "stopped before any work" in out and "warning:" not in out, out
    monkeypatch.setattr(benchmark.data.kvasir, "EXPECTED", {"train": 24, "test": 8})
    assert check_dataset(kvasir_root, "kvasir").ok
    code, out = invoke("train", "--dataset", "kvasir", *common)
    assert code == 2 and "stopped before any work" in out and "warning:" not in out, out
