import json
import re
import subprocess
import sys

import pandas as pd
import pytest
import torch

from benchmark.config import ConfigError, load_config
from benchmark.train import RunConflict, train_run

RECORD_FILES = ["config.yaml", "env.json", "history.csv", "metrics.json", "per_image.csv", "profile.json",
                "model.pt", "split.json", "DONE"]


def test_run_writes_every_record(tmp_path, smoke_overrides):
    cfg = load_config("smoke", overrides={**smoke_overrides, "run.runs_dir": str(tmp_path)})
    run_dir = train_run(cfg, progress=False)
    assert run_dir == tmp_path / "kvasir" / "segdino__test__smoke__s0"
    for name in RECORD_FILES:
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["selection"]["split"] == "val"
    seg = metrics["profiles"]["segdino"]
    assert seg["convention"]["name"] == "segdino" and 0 <= seg["metrics"]["dice"] <= 1
    assert "hd95_inf" in seg["counts"]
    assert set(metrics["profiles"]) == {"segdino", "medical-native"}
    history = pd.read_csv(run_dir / "history.csv")
    assert list(history.epoch) == [1, 2]
    split = json.loads((run_dir / "split.json").read_text())
    assert not set(split["val"]) & set(split["test"]) and not set(split["val"]) & set(split["train"])
    assert len(split["val"]) == round(0.1 * 24)
    per_image = pd.read_csv(run_dir / "per_image.csv")
    assert set(per_image.profile) == {"segdino", "medical-native"} and len(per_image) == 16
    profile = json.loads((run_dir / "profile.json").read_text())
    assert profile["trainable_params"] > 0 and profile["flops"]["total_gflops"] > 0
    assert not (run_dir / "checkpoint.pt").exists()   # a finished run never resumes: only model.pt is kept
    assert all(k.startswith("decoder.") for k in torch.load(run_dir / "model.pt", weights_only=True)["state"])


def test_interrupted_run_resumes_to_the_same_result(tmp_path, smoke_overrides, monkeypatch):
    overrides = {**smoke_overrides, "train.epochs": 3, "train.checkpoint_every_s": 0}
    ref = json.loads((train_run(load_config("smoke", overrides={**overrides, "run.runs_dir": str(tmp_path / "a")}),
                                progress=False) / "metrics.json").read_text())
    cfg = load_config("smoke", overrides={**overrides, "run.runs_dir": str(tmp_path / "b")})
    import benchmark.train as T

    real_write_csv, calls = T.records.write_csv, []

    def killed_after_epoch_2(*args, **kwargs):   # history.csv is written after each epoch's checkpoint
        real_write_csv(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
    monkeypatch.setattr(T.records, "write_csv", killed_after_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train_run(cfg, progress=False)
    monkeypatch.setattr(T.records, "write_csv", real_write_csv)
    run_dir = tmp_path / "b" / "kvasir" / "segdino__test__smoke__s0"
    assert not (run_dir / "DONE").exists()
    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 2 and {"model", "optimizer", "scheduler", "rng", "best"} <= set(ckpt)
    assert all(k.startswith("decoder.") for k in ckpt["model"])   # the frozen backbone is never saved again
    resumed = json.loads((train_run(cfg, progress=False) / "metrics.json").read_text())
    assert resumed["selected_epoch"] == ref["selected_epoch"]
    assert resumed["profiles"]["segdino"]["metrics"] == pytest.approx(ref["profiles"]["segdino"]["metrics"])
    assert len(pd.read_csv(run_dir / "history.csv")) == 3


@pytest.fixture
def ctrl_c_raises():
    """SIGINT handled as in a terminal's foreground job (a job started in the background, as CI may be, ignores it)."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_finishes_and_saves_the_epoch_under_way(tmp_path, smoke_overrides, monkeypatch, presses, ctrl_c_raises):
    """A real SIGINT in epoch 2 of 4, with checkpoints otherwise only every hour: one Ctrl-C finishes epoch 2, saves
    it and stops, and the resumed run ends where an uninterrupted one does; a second Ctrl-C stops at once, back to
    the checkpoint of epoch 1 (the first epoch is always saved)."""
    import os
    import signal

    import benchmark.train as T

    overrides = {**smoke_overrides, "train.epochs": 4, "train.checkpoint_every_s": 3600}
    ref = json.loads((train_run(load_config("smoke", overrides={**overrides, "run.runs_dir": str(tmp_path / "a")}),
                                progress=False) / "metrics.json").read_text())
    cfg = load_config("smoke", overrides={**overrides, "run.runs_dir": str(tmp_path / "b")})
    real_epoch, calls = T.train_epoch, []

    def ctrl_c_in_epoch_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            for _ in range(presses):
                os.kill(os.getpid(), signal.SIGINT)
        return real_epoch(*args, **kwargs)
    with monkeypatch.context() as patch:
        patch.setattr(T, "train_epoch", ctrl_c_in_epoch_2)
        with pytest.raises(KeyboardInterrupt) as stopped:
            train_run(cfg, progress=False)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler   # Python's own handler is back
    run_dir = tmp_path / "b" / "kvasir" / "segdino__test__smoke__s0"
    saved = torch.load(run_dir / "checkpoint.pt", weights_only=True)["epoch"]
    if presses == 1:
        assert saved == 2 and len(calls) == 2, (saved, calls)
        assert "stopped after epoch 2 of 4, which is saved" in str(stopped.value)
        assert len(pd.read_csv(run_dir / "history.csv")) == 2
    else:
        assert saved == 1 and not stopped.value.args
    assert not (run_dir / "DONE").exists() and not (run_dir / "FAILED").exists()
    resumed = json.loads((train_run(cfg, progress=False) / "metrics.json").read_text())
    assert resumed["selected_epoch"] == ref["selected_epoch"]
    assert resumed["profiles"]["segdino"]["metrics"] == pytest.approx(ref["profiles"]["segdino"]["metrics"])
    assert len(pd.read_csv(run_dir / "history.csv")) == 4


def test_done_run_is_skipped_and_conflicting_config_refused(tmp_path, smoke_overrides):
    cfg = load_config("smoke", overrides={**smoke_overrides, "train.epochs": 1, "run.runs_dir": str(tmp_path)})
    run_dir = train_run(cfg, progress=False)
    stamp = (run_dir / "metrics.json").stat().st_mtime_ns
    assert train_run(cfg, progress=False) == run_dir
    assert (run_dir / "metrics.json").stat().st_mtime_ns == stamp
    other = load_config("smoke", overrides={**smoke_overrides, "train.epochs": 1, "optim.lr": 0.5,
                                            "run.runs_dir": str(tmp_path)})
    with pytest.raises(RunConflict, match=r"holds a finished run with a different config \(optim.lr: 0.0003 there, "
                                          r"0.5 now\)"):
        train_run(other, progress=False)   # finished: never reported for a config it was not trained with
    (run_dir / "DONE").unlink()
    with pytest.raises(RunConflict, match="holds a run with a different config"):
        train_run(other, progress=False)
    moved = load_config("smoke", overrides={**smoke_overrides, "train.epochs": 1, "run.runs_dir": str(tmp_path),
                                            "train.device": "cpu", "data.cache_dir": str(tmp_path / "elsewhere")})
    (run_dir / "DONE").write_text("")
    assert train_run(moved, progress=False) == run_dir   # where it runs and where files are: not a conflict


def test_public_code_preset_selects_on_test_and_trains_backbone(tmp_path, smoke_overrides):
    cfg = load_config("public-code", overrides={**smoke_overrides, "backbone.name": "test", "train.epochs": 1,
                                                "run.runs_dir": str(tmp_path)})
    assert not cfg.train.freeze_backbone and cfg.train.batch_size == 8
    run_dir = train_run(cfg, progress=False)
    split = json.loads((run_dir / "split.json").read_text())
    assert split["val"] == split["test"] and "public code" in split["validation_rule"]
    assert any(k.startswith("backbone.") for k in torch.load(run_dir / "model.pt", weights_only=True)["state"])


def test_size_must_be_a_multiple_of_16():
    with pytest.raises(ConfigError, match="multiple of 16"):
        load_config("paper", overrides={"data.size": 250})


@pytest.mark.parametrize("overrides, expected", [
    ({"data.subset": "3"}, ("data", "subset", 3)),                       # default None: still converted
    ({"eval.profiles": "mirror"}, ("eval", "profiles", ("mirror",))),    # not ('m', 'i', 'r', ...)
    ({"eval.profiles": "mirror, segdino"}, ("eval", "profiles", ("mirror", "segdino"))),
    ({"eval.profiles": ["shadow"]}, ("eval", "profiles", ("shadow",))),  # a YAML list
    ({"decoder.options": "{width: 128}"}, ("decoder", "options", {"width": 128})),
    ({"data.size": 256.0}, ("data", "size", 256)),
    ({"train.checkpoint_every_s": 30}, ("train", "checkpoint_every_s", 30.0)),
    ({"train.amp_dtype": "none"}, ("train", "amp_dtype", None)),
    ({"train.compile": "none"}, ("train", "compile", None)),
])
def test_overrides_take_the_type_each_key_declares(overrides, expected):
    section, key, value = expected
    got = getattr(getattr(load_config("paper", overrides=overrides), section), key)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize("overrides, message", [
    ({"train.epochs": 1.5}, "train.epochs: expected an integer, got 1.5"),
    ({"train.epochs": True}, "train.epochs: expected an integer, got True"),
    ({"train.freeze_backbone": "maybe"}, "train.freeze_backbone: expected true/false"),
    ({"decoder.options": "foo"}, "decoder.options: expected a mapping"),
    ({"eval.profiles": "mirrr"}, "eval.profiles: unknown scoring profile 'mirrr'; valid: segdino"),
    ({"data.val_fraction": 2}, "data.val_fraction is the share of the training split"),
    ({"backbone.name": 7}, "backbone.name: expected a name or path, got 7"),
    ({"train.seed": None}, "train.seed cannot be empty"),
    ({"run.preset": "public-code"}, "--set sets run.preset=public-code, which is not a setting: choose the preset "
                                    "with --preset"),
])
def test_overrides_of_the_wrong_type_are_refused_before_any_work(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config("paper", overrides=overrides)


def test_a_config_file_is_checked_section_by_section_and_cannot_relabel_the_preset(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("train: 5\n")
    with pytest.raises(ConfigError, match="section 'train' must be a mapping of keys"):
        load_config("paper", path)
    path.write_text("run:\n  preset: public-code\n")   # would be labelled public-code with the paper's recipe
    with pytest.raises(ConfigError, match="sets run.preset=public-code, which is not a setting"):
        load_config("paper", path)
    path.write_text("decoder:\n  name: unet-small\n  options: {width: 64}\ntrain:\n  seed: 3\n")
    cfg = load_config("paper", path)
    assert (cfg.decoder.name, cfg.decoder.options, cfg.train.seed) == ("unet-small", {"width": 64}, 3)
    # a run's own resolved config.yaml trains again with its own preset
    from benchmark.config import dump_yaml

    path.write_text(dump_yaml(load_config("smoke", overrides={"train.epochs": 3, "data.root": tmp_path})))
    assert load_config("smoke", path).train.epochs == 3      # data.root given as a Path above is taken too
    with pytest.raises(ConfigError, match="sets run.preset=smoke"):
        load_config("paper", path)


def test_decoder_options_the_method_does_not_take_are_refused_up_front():
    from benchmark.registry import check_config

    with pytest.raises(ConfigError, match="do not fit method 'segdino'.*'foo'; it takes project_channels=.*, "
                                          "features=128"):
        check_config(load_config("smoke", overrides={"decoder.options": {"foo": 1}}))
    check_config(load_config("smoke", overrides={"decoder.name": "unet-small", "decoder.options": {"width": 64}}))


def test_a_single_sample_last_batch_joins_the_previous_one():
    import torch as t

    from benchmark.train import batches

    sizes = [len(b) for b in batches(t.arange(13), 4, drop_last=False)]
    assert sizes == [4, 4, 5] and sum(sizes) == 13
    assert [len(b) for b in batches(t.arange(12), 4, False)] == [4, 4, 4]
    assert [len(b) for b in batches(t.arange(14), 4, False)] == [4, 4, 4, 2]
    assert [len(b) for b in batches(t.arange(13), 4, True)] == [4, 4, 4]
    assert [len(b) for b in batches(t.arange(1), 4, False)] == [1]


def test_batchnorm_decoders_train_when_the_split_leaves_one_sample(tmp_path, smoke_overrides):
    """13 training images at batch 4 once crashed UPerNet's BatchNorm on a batch of one."""
    cfg = load_config("smoke", overrides={**smoke_overrides, "decoder.name": "upernet", "train.batch_size": 4,
                                          "train.epochs": 1, "data.val_fraction": 0.46,
                                          "run.runs_dir": str(tmp_path)})
    run_dir = train_run(cfg, progress=False)
    assert len(json.loads((run_dir / "split.json").read_text())["train"]) == 13


@pytest.mark.parametrize("method", ["segdino", "dpt"])   # dpt also reads the per-tap prefix tokens
def test_features_held_on_device_train_exactly_like_memory_maps(tmp_path, smoke_overrides, method):
    """The accelerator path (`train.features_on_device`), exercised with the CPU as the device."""
    metrics, envs = {}, {}
    for choice in ("no", True):   # True: what YAML makes of `features_on_device: yes` in a config file
        cfg = load_config("smoke", overrides={**smoke_overrides, "run.runs_dir": str(tmp_path / str(choice)),
                                              "decoder.name": method, "train.features_on_device": choice})
        run_dir = train_run(cfg, progress=False)
        metrics[choice] = json.loads((run_dir / "metrics.json").read_text())["profiles"]["segdino"]["metrics"]
        envs[choice] = json.loads((run_dir / "env.json").read_text())["feature_cache"]
    assert metrics[True] == metrics["no"]
    assert all(v["on_device"] for v in envs[True].values()) and not any(v["on_device"] for v in envs["no"].values())
    with pytest.raises(ValueError, match="features_on_device"):
        train_run(load_config("smoke", overrides={**smoke_overrides, "run.runs_dir": str(tmp_path / "bad"),
                                                  "train.features_on_device": "maybe"}), progress=False)


def test_a_run_started_before_a_new_setting_existed_still_resumes(tmp_path, smoke_overrides):
    cfg = load_config("smoke", overrides={**smoke_overrides, "run.runs_dir": str(tmp_path)})
    run_dir = tmp_path / "kvasir" / "segdino__test__smoke__s0"
    run_dir.mkdir(parents=True)
    from benchmark.config import dump_yaml
    old = dump_yaml(cfg).replace("  drop_last: false\n", "")   # a setting added later, at its default
    assert old != dump_yaml(cfg)
    (run_dir / "config.yaml").write_text(old)
    assert (train_run(cfg, progress=False) / "DONE").is_file()


@pytest.mark.parametrize("num_classes", [1, 3])
def test_validation_counted_on_the_device_equals_dice_of_the_probability_maps(tmp_path, smoke_overrides, num_classes):
    import numpy as np

    from benchmark.evaluate import dice_iou, predict_split, validate
    from benchmark.features import cached_features
    from benchmark.registry import build_model
    from benchmark.train import load_data

    cfg = load_config("smoke", overrides={**smoke_overrides, "run.runs_dir": str(tmp_path)})
    tmp_path.joinpath("run").mkdir()
    _, splits = load_data(cfg, tmp_path / "run")
    val = splits["train"]
    torch.manual_seed(0)
    model = build_model(cfg, max(num_classes, 2) if num_classes > 1 else 1).eval()
    if num_classes > 1:   # a 3-class problem on the same images: classes 1 and 2 from the mask and a stripe
        masks = np.asarray(val.masks).copy()
        masks[:, :, :8] = 2
        val = type(val)(val.images, masks, val.refs, val.native_sizes)
    store = cached_features(val, model.backbone, tmp_path / "cache", torch.device("cpu"), 16, False)
    for features in (None, store):
        expected = dice_iou(predict_split(model, val, torch.device("cpu"), 5, None, features), np.asarray(val.masks))
        assert validate(model, val, torch.device("cpu"), 5, None, features) == expected
        assert 0 < expected[0] < 1


def test_records_get_the_umask_mode_not_mkstemps_0600(tmp_path):
    # run records on a shared runs directory must be readable by the group, as any file the user creates
    import os

    from benchmark import records
    from reports.load import write_csv_atomic

    old = os.umask(0o022)
    try:
        records.atomic_write_text(tmp_path / "a.json", "{}")
        write_csv_atomic(pd.DataFrame({"x": [1]}), tmp_path / "b.csv")
        os.umask(0o077)
        records.atomic_write_text(tmp_path / "c.json", "{}")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {"a.json": 0o644, "b.csv": 0o644, "c.json": 0o600}
    assert (tmp_path / "b.csv").read_text() == "x\n1\n"


def test_auto_features_on_device_budget_is_shared_by_runs_on_one_gpu(monkeypatch):
    # 10 GB of features; a GPU with 80 GB total and 60 GB free: alone they fit (<= 30 GB), with 8 runs sharing
    # the GPU each run's budget is 80/8/2 = 5 GB, so they stay in host memory maps
    from types import SimpleNamespace

    from benchmark.train import features_on_device

    gb = 1 << 30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (60 * gb, 80 * gb))
    cfg = load_config("smoke", overrides={"train.features_on_device": "auto"})
    stores = {"train": SimpleNamespace(nbytes=10 * gb, folder="a")}
    cuda = torch.device("cuda", 0)
    monkeypatch.delenv("SEGBENCH_RUNS_ON_DEVICE", raising=False)
    assert features_on_device(cfg, cuda, stores)
    monkeypatch.setenv("SEGBENCH_RUNS_ON_DEVICE", "8")
    assert not features_on_device(cfg, cuda, stores)
    monkeypatch.setenv("SEGBENCH_RUNS_ON_DEVICE", "2")
    assert features_on_device(cfg, cuda, stores)   # 80/2/2 = 20 GB
    assert not features_on_device(cfg, torch.device("cpu"), stores)


def test_selection_on_test_uses_the_test_images_and_the_whole_training_split(tmp_path):
    # TN3K numbers trainval and test images alike (0000.jpg in both): the "val" of the public-code choice must be
    # the test images, and nothing is carved out of training (the public code trains on all of it)
    import numpy as np

    from benchmark.data.synthetic import write_tn3k
    from benchmark.train import load_data

    write_tn3k(tmp_path / "data" / "tn3k", n_train=15, n_test=5)
    base = {"data.root": str(tmp_path / "data"), "data.dataset": "tn3k", "data.size": 32,
            "run.runs_dir": str(tmp_path / "runs")}
    (tmp_path / "run").mkdir()
    _, on_test = load_data(load_config("smoke", overrides={**base, "train.selection_split": "test"}),
                           tmp_path / "run")
    assert len(on_test["train"]) == 15 and len(on_test["val"]) == len(on_test["test"]) == 5
    np.testing.assert_array_equal(np.asarray(on_test["val"].images), np.asarray(on_test["test"].images))
    assert not np.array_equal(np.asarray(on_test["val"].images), np.asarray(on_test["train"].images[:5]))
    _, paper = load_data(load_config("smoke", overrides=base), tmp_path / "run")
    assert len(paper["train"]) + len(paper["val"]) == 15 and len(paper["val"]) == 3   # fold 0 of 5 held out


@pytest.mark.parametrize("override", [{"data.val_fraction": 0.0}, {"data.subset": 3}])
def test_an_empty_validation_split_is_an_error_not_the_test_split(tmp_path, override):
    from benchmark.data.base import DataError
    from benchmark.data.synthetic import write_vmd

    write_vmd(tmp_path / "data" / "VMD", n_train=20, n_test=6)
    cfg = load_config("smoke", overrides={"data.root": str(tmp_path / "data"), "data.dataset": "vmd",
                                          "data.size": 32, "run.runs_dir": str(tmp_path / "runs"), **override})
    with pytest.raises(DataError, match="the val split is empty.*selection_split=test"):
        train_run(cfg, progress=False)
    assert not (tmp_path / "runs" / "vmd").exists()   # fails before any run directory is made


@pytest.mark.slow
def test_compiled_decoder_trains_like_the_eager_one(tmp_path, smoke_overrides):
    # train.compile compiles the decoder in place: same losses (to float noise), same records and state_dict keys
    import numpy as np

    runs = {}
    for mode in ("none", "default"):
        cfg = load_config("smoke", overrides={**smoke_overrides, "run.runs_dir": str(tmp_path / mode),
                                              "train.compile": mode})
        runs[mode] = train_run(cfg, progress=False)
    eager, compiled = (pd.read_csv(runs[m] / "history.csv") for m in ("none", "default"))
    np.testing.assert_allclose(compiled.train_loss, eager.train_loss, rtol=1e-5)
    state = {m: torch.load(runs[m] / "model.pt", weights_only=True)["state"] for m in runs}
    assert list(state["default"]) == list(state["none"])
    for key in state["none"]:
        torch.testing.assert_close(state["default"][key], state["none"][key], rtol=1e-4, atol=1e-6)
    assert json.loads((runs["default"] / "profile.json").read_text())["flops"] == \
        json.loads((runs["none"] / "profile.json").read_text())["flops"]
    with pytest.raises(ConfigError, match="train.compile must be one of"):
        load_config("smoke", overrides={**smoke_overrides, "train.compile": "fast"})


def test_frozen_backbone_runs_in_float32_under_autocast_without_the_cache(tmp_path, smoke_overrides, monkeypatch):
    """With `train.amp_dtype`, a run without the feature cache decodes the float32 features the cache holds;
    autocast covers the decoder only (CPU bfloat16 autocast stands in for the GPU's)."""
    import numpy as np

    from benchmark.registry import build_model
    from benchmark.train import forward, load_data

    cfg = load_config("smoke", overrides={**smoke_overrides, "run.runs_dir": str(tmp_path),
                                          "train.amp_dtype": "bfloat16"})
    _, splits = load_data(cfg, tmp_path)
    model = build_model(cfg, 1)
    split, idx, device = splits["train"], np.arange(4), torch.device("cpu")
    images = torch.from_numpy(np.array(split.images[idx])).permute(0, 3, 1, 2).float() / 255
    reference = model.features(images)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not torch.allclose(model.features(images).taps[0].float(), reference.taps[0])  # autocast moves them
        seen = []
        monkeypatch.setattr(model, "decode", lambda features, size: seen.append(features) or torch.zeros(1))
        forward(model, split, idx, device)
    assert all(torch.equal(a, b) for a, b in zip(seen[0].taps, reference.taps))


@pytest.mark.parametrize("dtype", ["float16", "half"])
def test_float16_autocast_is_refused_for_training(dtype):
    with pytest.raises(ConfigError, match="amp_dtype"):
        load_config("smoke", overrides={"train.amp_dtype": dtype})


def test_a_start_that_failed_before_any_checkpoint_is_taken_over_by_a_new_config(tmp_path, smoke_overrides):
    """E.g. an unreadable image stops the first start; the retry with --skip-bad, as the error advises, must not
    be refused as another config: nothing was trained there."""
    from benchmark import records
    from benchmark.config import dump_yaml

    cfg = load_config("smoke", overrides={**smoke_overrides, "train.epochs": 1, "run.runs_dir": str(tmp_path)})
    failed = load_config("smoke", overrides={**smoke_overrides, "train.epochs": 1, "run.runs_dir": str(tmp_path),
                                             "data.skip_bad": True})
    run_dir = records.run_dir_for(cfg)
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(dump_yaml(failed))   # what the failed start left behind
    assert train_run(cfg, progress=False) == run_dir
    assert "skip_bad: false" in (run_dir / "config.yaml").read_text()


def test_evaluating_a_run_whose_backbone_weights_changed_or_moved_is_refused(tmp_path, smoke_overrides):
    from benchmark.records import load_run_model
    from segdino.backbone import build_backbone
    from segdino.meta_layout import timm_to_meta

    weights = tmp_path / "w.pth"
    state = build_backbone("test").vit.state_dict()
    torch.save(timm_to_meta(state), weights)
    cfg = load_config("smoke", overrides={**smoke_overrides, "train.epochs": 1, "run.runs_dir": str(tmp_path),
                                          "backbone.weights": str(weights)})
    run_dir = train_run(cfg, progress=False)
    load_run_model(run_dir)   # unchanged weights: fine
    torch.save(timm_to_meta({k: v + 0.01 for k, v in state.items()}), weights)
    with pytest.raises(ValueError, match="have changed since .* was trained"):
        load_run_model(run_dir)
    weights.unlink()
    with pytest.raises(FileNotFoundError, match="put them back at that path"):
        load_run_model(run_dir)


@pytest.mark.parametrize("override, message", [
    ({"train.epochs": "abc"}, "train.epochs: expected an integer, got 'abc'"),
    ({"optim.lr": "fast"}, "optim.lr: expected a number, got 'fast'"),
    ({"train.epochs": 0}, "train.epochs must be at least 1, not 0"),
    ({"train.batch_size": "0"}, "train.batch_size must be at least 1, not 0"),
    ({"train.nope": 1}, "unknown config key 'train.nope'; train.* keys: epochs, batch_size"),
    ({"nope.x": 1}, "unknown config key 'nope.x'; sections: backbone, decoder, data"),
])
def test_bad_settings_name_the_key_and_what_is_valid(override, message):
    with pytest.raises(ConfigError) as err:
        load_config("smoke", overrides=override)
    assert message in str(err.value)


def test_a_cache_that_would_not_fit_on_disk_is_refused_before_writing(tmp_path, smoke_overrides, monkeypatch):
    """A memory-mapped write to a full disk kills the process with SIGBUS: the caches check the free space first and
    name the fix."""
    import shutil
    from collections import namedtuple

    from benchmark import records
    from benchmark.features import cached_features
    from benchmark.registry import build_model
    from benchmark.train import load_data

    cfg = load_config("smoke", overrides={**smoke_overrides, "run.runs_dir": str(tmp_path)})
    tmp_path.joinpath("run").mkdir()
    _, splits = load_data(cfg, tmp_path / "run")
    backbone = build_model(cfg, 1).backbone
    usage = namedtuple("usage", "total used free")
    real = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(records.shutil, "disk_usage", lambda _: usage(real.total, real.total, 1 << 20))
    with pytest.raises(OSError, match=r"not enough disk space for the feature cache of \d+ images.*"
                                      r"data\.cache_dir.*train\.feature_cache=false"):
        cached_features(splits["train"], backbone, tmp_path / "cache", torch.device("cpu"), 16, False)
    assert not list((tmp_path / "cache" / "features").glob("*/taps.npy"))
    with pytest.raises(OSError, match=r"not enough disk space for the decoded-image cache of \d+ images"):
        load_data(load_config("smoke", overrides={**smoke_overrides, "run.runs_dir": str(tmp_path / "other")}),
                  tmp_path / "run")   # checked before decoding, which takes minutes on a real dataset
    monkeypatch.setattr(records.shutil, "disk_usage", lambda _: real)
    store = cached_features(splits["train"], backbone, tmp_path / "cache", torch.device("cpu"), 16, False)
    assert store.extracted and (store.folder / "taps.npy").is_file()


def test_a_resident_store_reads_nothing_from_the_host_during_an_epoch(tmp_path, smoke_overrides):
    """With features held in device memory, a training epoch and a validation read features and masks there, by
    rows sent once (a pageable host-to-device copy per step makes the host wait for the device), and give the same
    losses and scores as the memory maps."""
    import copy

    from benchmark.evaluate import validate
    from benchmark.registry import build_model
    from benchmark.train import batches, epoch_order, feature_stores, load_data, train_epoch

    class HostGuard:   # stands in for a split's arrays: the shape is known, any read fails
        def __init__(self, array):
            self.shape = array.shape

        def __getitem__(self, idx):
            raise AssertionError("read from the host during a resident epoch")

    cpu = torch.device("cpu")
    results = {}
    for choice in ("no", "yes"):
        cfg = load_config("smoke", overrides={**smoke_overrides, "run.runs_dir": str(tmp_path),
                                              "train.features_on_device": choice})
        (tmp_path / choice).mkdir()
        _, splits = load_data(cfg, tmp_path / choice)
        torch.manual_seed(0)
        model = build_model(cfg, 1)
        stores = feature_stores(cfg, model, splits, cpu, False)
        train, val = splits["train"], splits["val"]
        if choice == "yes":
            assert stores["train"].resident and stores["train"].masks is stores["val"].masks is not None
            train = type(train)(HostGuard(train.images), HostGuard(train.masks), train.refs, train.native_sizes)
            val = type(val)(HostGuard(val.images), HostGuard(val.masks), val.refs, val.native_sizes)
        optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-3)
        losses = train_epoch(model, optimizer, train, batches(epoch_order(len(train), 0, 0), 8, False), cpu, None,
                             stores["train"])
        results[choice] = (losses, validate(model, val, cpu, 16, None, stores["val"]),
                           copy.deepcopy(model.decoder.state_dict()))
    assert results["yes"][:2] == results["no"][:2]
    assert all(torch.equal(a, b) for a, b in zip(results["yes"][2].values(), results["no"][2].values()))


def test_a_failed_attempt_is_recorded_and_cleared_by_the_next(tmp_path, smoke_overrides, monkeypatch):
    """A run that raises leaves FAILED (error and traceback) beside its checkpoint: `run --dry-run` and the report
    say why it is not done, and the next successful attempt removes it."""
    import benchmark.train as train
    from benchmark.sweep import run_state
    from reports.load import load_runs

    def out_of_memory(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    cfg = load_config("smoke", overrides={**smoke_overrides, "run.runs_dir": str(tmp_path)})
    monkeypatch.setattr(train, "finish_run", out_of_memory)
    with pytest.raises(RuntimeError, match="out of memory"):
        train_run(cfg, progress=False)
    run_dir = tmp_path / "kvasir" / "segdino__test__smoke__s0"
    record = (run_dir / "FAILED").read_text()
    assert "RuntimeError: CUDA out of memory" in record.splitlines()[0] and "Traceback" in record
    state, why = run_state(run_dir)
    assert state == "failed" and "the last attempt failed at" in why and "CUDA out of memory" in why
    (skipped,) = load_runs(tmp_path).skipped
    assert skipped.reason.startswith("failed at ") and "CUDA out of memory" in skipped.reason
    monkeypatch.undo()
    assert (train_run(cfg, progress=False) / "DONE").is_file()
    assert not (run_dir / "FAILED").exists() and run_state(run_dir)[0] == "done"


def test_skip_bad_only_conflicts_with_a_run_that_skipped_something(tmp_path, smoke_overrides):
    """Adding --skip-bad to a sweep after one dataset's unreadable image must not refuse the finished runs of the
    others: they met no unreadable sample, so the setting changes nothing for them."""
    from benchmark.train import RunConflict, check_same_config

    cfg = load_config("smoke", overrides={**smoke_overrides, "train.epochs": 1, "run.runs_dir": str(tmp_path)})
    run_dir = train_run(cfg, progress=False)
    again = load_config("smoke", overrides={**smoke_overrides, "train.epochs": 1, "run.runs_dir": str(tmp_path),
                                            "data.skip_bad": True})
    check_same_config(again, run_dir)
    (run_dir / "skipped.json").write_text("{}")   # had it skipped samples, the settings would differ in effect
    with pytest.raises(RunConflict, match="data.skip_bad"):
        check_same_config(again, run_dir)


def test_a_run_killed_after_its_last_checkpoint_finishes_whole(tmp_path, smoke_overrides, monkeypatch):
    """A kill between the last epoch's checkpoint and history.csv (or mid atomic write) used to leave history.csv
    an epoch short for good and temporary files behind: the resumed attempt rewrites history from the checkpoint
    and clears what the killed one was writing."""
    import benchmark.train as T

    cfg = load_config("smoke", overrides={**smoke_overrides, "train.epochs": 2, "run.runs_dir": str(tmp_path)})

    def killed(run_dir):   # just before DONE, so the last checkpoint is still there (a finished run drops it)
        raise KeyboardInterrupt
    with monkeypatch.context() as patch:
        patch.setattr(T.records, "mark_done", killed)
        with pytest.raises(KeyboardInterrupt):
            train_run(cfg, progress=False)
    run_dir = tmp_path / "kvasir" / "segdino__test__smoke__s0"
    whole = (run_dir / "history.csv").read_text()
    assert len(whole.splitlines()) == 3 and (run_dir / "checkpoint.pt").is_file()
    for name in ("metrics.json", "model.pt"):   # back to the moment after the last checkpoint
        (run_dir / name).unlink()
    (run_dir / "history.csv").write_text("\n".join(whole.splitlines()[:2]) + "\n")
    (run_dir / ".checkpoint.pt.x1y2.tmp").write_bytes(b"half a checkpoint")
    (run_dir / "samples" / ".a.pred.png.z.tmp").write_bytes(b"half a map")
    train_run(cfg, progress=False)
    assert (run_dir / "history.csv").read_text() == whole and (run_dir / "DONE").is_file()
    assert not list(run_dir.rglob("*.tmp"))


def test_spellings_of_no_autocast_are_one_config_but_bfloat16_is_another(tmp_path, smoke_overrides):
    """train.amp_dtype none / float32 / "" all train without autocast (and reports pool them as one recipe), so a
    run restarted with another of those spellings resumes; bfloat16 is a different run."""
    from benchmark.train import check_same_config

    base = {**smoke_overrides, "train.epochs": 1, "run.runs_dir": str(tmp_path)}
    run_dir = train_run(load_config("smoke", overrides={**base, "train.amp_dtype": "none"}), progress=False)
    for spelling in ("float32", "", None):
        check_same_config(load_config("smoke", overrides={**base, "train.amp_dtype": spelling}), run_dir)
    with pytest.raises(RunConflict, match="train.amp_dtype: unset there, bfloat16 now"):
        check_same_config(load_config("smoke", overrides={**base, "train.amp_dtype": "bfloat16"}), run_dir)


def test_two_folder_datasets_never_share_a_run_but_a_moved_folder_resumes(tmp_path):
    """A `folder` dataset is the user's folder: another folder in the same runs directory is a conflict naming both
    (it used to report the first folder's result for the second); the same folder moved elsewhere is the same run."""
    import shutil

    from benchmark.data.synthetic import write_folder

    write_folder(tmp_path / "a" / "polyps", 6, 3)
    write_folder(tmp_path / "b" / "lesions", 6, 3, seed=1)

    def cfg(root):
        return load_config("smoke", overrides={"data.dataset": "folder", "data.root": str(root), "train.epochs": 1,
                                               "data.size": 64, "train.device": "cpu",
                                               "run.runs_dir": str(tmp_path / "runs")})

    run_dir = train_run(cfg(tmp_path / "a" / "polyps"), progress=False)
    with pytest.raises(RunConflict,
                       match="another folder dataset \\(data.folder: polyps there, lesions now.*own --runs-dir"):
        train_run(cfg(tmp_path / "b" / "lesions"), progress=False)
    shutil.move(tmp_path / "a" / "polyps", tmp_path / "polyps")
    assert train_run(cfg(tmp_path / "polyps"), progress=False) == run_dir


def test_a_run_resumes_and_reports_only_on_the_files_it_was_trained_on(tmp_path):
    """Another folder of the same name (or the folder after files were added, lost or replaced) is not the data a
    checkpoint or a finished run was trained on: refused, naming the split and the first differing file; the
    original folder resumes."""
    from benchmark.data.synthetic import write_folder

    write_folder(tmp_path / "a" / "data", 6, 3)
    write_folder(tmp_path / "b" / "data", 7, 3)             # other file names
    write_folder(tmp_path / "c" / "data", 6, 3, seed=1)     # the same names, other images

    def cfg(root, epochs=1):
        return load_config("smoke", overrides={"data.dataset": "folder", "data.root": str(root), "train.epochs": epochs,
                                               "data.size": 64, "train.device": "cpu",
                                               "run.runs_dir": str(tmp_path / "runs")})

    run_dir = train_run(cfg(tmp_path / "a" / "data"), progress=False)
    split = json.loads((run_dir / "split.json").read_text())
    assert set(split["content"]) == {"train", "test"} and all(len(k) == 24 for k in split["content"].values())
    changed = (r"other files than folder at .*b.data holds now: of its 6 training images, 1 file moved here from its "
               r"test split \(first: sample_006")
    with pytest.raises(RunConflict, match=changed):
        train_run(cfg(tmp_path / "b" / "data"), progress=False)
    # files replaced under the same names: a finished run is checked by the files' sizes (no bytes read)
    assert set(split["file_sizes"]) == {"train", "test"}
    replaced = r"same file names, but files of its train and test splits changed size since"
    with pytest.raises(RunConflict, match=replaced):
        train_run(cfg(tmp_path / "c" / "data"), progress=False)
    (run_dir / "DONE").unlink()                              # as if killed after its last checkpoint
    with pytest.raises(RunConflict, match=changed):
        train_run(cfg(tmp_path / "b" / "data"), progress=False)
    with pytest.raises(RunConflict, match=replaced):
        train_run(cfg(tmp_path / "c" / "data"), progress=False)
    # a resume also compares the bytes (the image cache's content keys), e.g. for a run recorded before file sizes
    del split["file_sizes"]
    (run_dir / "split.json").write_text(json.dumps(split))
    with pytest.raises(RunConflict, match=r"same file names, but the contents of its train and test splits"):
        train_run(cfg(tmp_path / "c" / "data"), progress=False)
    assert not (run_dir / "FAILED").exists()                 # a conflict is not a failure of the run
    assert train_run(cfg(tmp_path / "a" / "data"), progress=False) == run_dir and (run_dir / "DONE").is_file()


def test_selection_last_trains_on_the_whole_training_split_and_keeps_the_last_epoch(tmp_path, smoke_overrides):
    """train.selection_split=last: no validation split (nothing held out, no validation pass), the last epoch is
    scored, and the report's caption says so."""
    from reports.load import load_runs
    from reports.tables import _selection_note

    overrides = {**smoke_overrides, "train.selection_split": "last", "run.runs_dir": str(tmp_path)}
    run_dir = train_run(load_config("smoke", overrides=overrides), progress=False)
    split = json.loads((run_dir / "split.json").read_text())
    assert split["val"] == [] and len(split["train"]) == 24 and split["validation_rule"].startswith("no selection")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["selected_epoch"] == 2 and metrics["selection"]["split"] == "last"
    history = pd.read_csv(run_dir / "history.csv")
    assert list(history.columns) == ["epoch", "step", "train_loss", "lr", "seconds"]
    runs = load_runs(tmp_path)
    assert runs.wide["val_share"].tolist() == [0.0]

    class Ctx:
        wide = runs.wide
    assert _selection_note(Ctx, ["kvasir"]).startswith("Our models are the last training epoch, with no model "
                                                       "selection and no images held out of training")
    with pytest.raises(ConfigError, match="train.selection_split must be one of val, test, last"):
        load_config("smoke", overrides={**overrides, "train.selection_split": "best"})


def test_a_relative_path_meant_from_the_config_file_s_folder_is_named(tmp_path, monkeypatch):
    """Paths in --config are read from the working directory, as on the command line; one that exists only beside
    the file is refused with both places named, and one that exists from the working directory is kept."""
    (tmp_path / "exp" / "data").mkdir(parents=True)
    exp = tmp_path / "exp" / "exp.yaml"
    exp.write_text("data:\n  root: data\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_config("smoke", exp)
    message = " ".join(str(caught.value).split())
    assert f"sets data.root: data, which is not in the working directory {tmp_path}" in message, message
    assert f"write {tmp_path / 'exp' / 'data'} if that is the one" in message, message
    assert load_config("smoke", exp, {"data.root": str(tmp_path)}).data.root == str(tmp_path)   # the CLI's wins
    monkeypatch.chdir(tmp_path / "exp")
    assert load_config("smoke", exp).data.root == str(tmp_path / "exp" / "data")


def test_a_folder_split_reshuffled_by_an_added_image_says_files_moved(tmp_path):
    """Without split lists a folder is split by a seeded shuffle of all its images: one image added moves others
    between training and test. The conflict names them as moved (not as lost) and says how to fix the split."""
    import shutil

    from benchmark.data.synthetic import write_folder

    root = write_folder(tmp_path / "data", 16, 4, split_lists=False)
    cfg = load_config("smoke", overrides={"data.dataset": "folder", "data.root": str(root), "train.epochs": 1,
                                          "data.size": 64, "train.device": "cpu", "run.runs_dir": str(tmp_path / "r")})
    run_dir = train_run(cfg, progress=False)
    for sub, suffix in (("images", ".jpg"), ("masks", ".png")):
        shutil.copy(root / sub / f"sample_000{suffix}", root / sub / f"zzz{suffix}")
    with pytest.raises(RunConflict, match=r"training images, .*now in the test split \(first: sample_.*1 file new "
                                          r"\(first: zzz\)\. A folder without split lists .*write train.txt and "
                                          rf"test.txt .*{run_dir.name}.split.json"):
        train_run(cfg, progress=False)


def test_records_are_strict_json_with_null_for_an_undefined_mean(tmp_path):
    """The mean HD95 of a set whose every image's HD95 is infinite is undefined: written as null, never as the bare
    NaN / Infinity that jq and JavaScript refuse."""
    import numpy as np

    from benchmark import records

    records.write_json(tmp_path / "m.json", {"hd95": float("nan"), "rows": [np.float32("inf"), 0.5, np.int64(3)],
                                              "nested": {"x": -float("inf")}})

    def refuse(name):
        raise ValueError(name)

    loaded = json.loads((tmp_path / "m.json").read_text(), parse_constant=refuse)
    assert loaded == {"hd95": None, "rows": [None, 0.5, 3], "nested": {"x": None}}


def test_a_validation_split_without_foreground_is_refused(tmp_path):
    """Every validation mask empty: an empty prediction scores Dice 1 on each, every epoch ties and epoch 1 would be
    kept in silence. Refused naming the videos and the fixes; selection_split=last needs no validation."""
    import numpy as np
    from PIL import Image

    from benchmark.data.base import DataError
    from benchmark.data.splits import make_splits
    from benchmark.data.synthetic import write_vmd
    from benchmark.data.vmd import open_vmd
    from benchmark.train import load_data

    root = write_vmd(tmp_path / "data" / "VMD", n_train=18, n_test=6)
    val = make_splits(open_vmd(root), 0, 0.1)[0]["val"]
    for ref in val:
        Image.fromarray(np.zeros(np.asarray(Image.open(ref.mask)).shape, np.uint8)).save(ref.mask)
    base = {"data.root": str(tmp_path / "data"), "data.dataset": "vmd", "data.size": 32,
            "run.runs_dir": str(tmp_path / "runs")}
    (tmp_path / "run").mkdir()
    videos = ", ".join(sorted({r.group for r in val}))
    with pytest.raises(DataError, match=rf"not one validation mask has a foreground pixel \({len(val)} images of "
                                        rf"\d videos? \({videos}\).*another --seed.*selection_split=last"):
        load_data(load_config("smoke", overrides=base), tmp_path / "run")
    _, splits = load_data(load_config("smoke", overrides={**base, "train.selection_split": "last"}), tmp_path / "run")
    assert len(splits["val"]) == 0


def test_a_labelled_test_image_gone_is_an_error_not_a_smaller_test_split(tmp_path):
    """A test mask whose image is missing: the test split is defined by its masks, so training (which scores the
    test split) refuses rather than score fewer images; a test file missing after a run finished is named as
    missing, not as replaced."""
    from benchmark.data.base import DataError
    from benchmark.data.synthetic import write_tn3k
    from benchmark.data.tn3k import open_tn3k
    from benchmark.train import load_data

    root = write_tn3k(tmp_path / "data" / "tn3k", n_train=10, n_test=4)
    source = open_tn3k(root)
    cfg = load_config("smoke", overrides={"data.root": str(tmp_path / "data"), "data.dataset": "tn3k",
                                          "data.size": 32, "train.epochs": 1, "train.device": "cpu",
                                          "run.runs_dir": str(tmp_path / "runs")})
    run_dir = train_run(cfg, progress=False)
    gone = source.splits["test"][1]
    gone.mask.unlink()
    with pytest.raises(RunConflict, match=rf"1 file of its official test split missing, e.g. the mask of "
                                          rf"{gone.image}\. Point --data-root"):
        train_run(cfg, progress=False)
    source.splits["test"][2].image.unlink()
    (tmp_path / "run").mkdir()
    with pytest.raises(DataError, match=r"tn3k: 1 test mask with no image, e.g. .*test-mask.*the test split is "
                                        r"defined by its masks"):
        load_data(cfg, tmp_path / "run")
    source.splits["train"][0].image.unlink()                 # a training image: no such error (not scored)
    assert run_dir.is_dir()


def test_ctrl_c_during_the_history_write_still_saves_the_epoch(tmp_path, smoke_overrides, monkeypatch,
                                                               ctrl_c_raises):
    """A Ctrl-C that lands after the epoch's checkpoint decision (while history.csv is written) used to stop the run
    at its last checkpoint, an epoch or a minute back, while saying the epoch was saved. The resumed run says it
    extracted its features (in the first attempt), and a finished run keeps no checkpoint, even one a kill left."""
    import os
    import signal

    import benchmark.records as R

    cfg = load_config("smoke", overrides={**smoke_overrides, "train.epochs": 3, "train.checkpoint_every_s": 3600,
                                          "run.runs_dir": str(tmp_path)})
    real_write, writes = R.write_csv, []

    def ctrl_c_while_writing_epoch_2(path, rows, *args, **kwargs):
        writes.append(len(rows))
        if path.name == "history.csv" and len(rows) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return real_write(path, rows, *args, **kwargs)
    with monkeypatch.context() as patch:
        patch.setattr(R, "write_csv", ctrl_c_while_writing_epoch_2)
        with pytest.raises(KeyboardInterrupt, match="stopped after epoch 2 of 3, which is saved") as stopped:
            train_run(cfg, progress=False)
    assert stopped.value.boundary
    run_dir = tmp_path / "kvasir" / "segdino__test__smoke__s0"
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["epoch"] == 2
    train_run(cfg, progress=False)
    env = json.loads((run_dir / "env.json").read_text())
    assert env["feature_cache"]["train"]["extracted"] is True   # by the first attempt
    assert not (run_dir / "checkpoint.pt").exists()
    (run_dir / "checkpoint.pt").write_bytes(b"left by a kill between DONE and its removal")
    train_run(cfg, progress=False)
    assert not (run_dir / "checkpoint.pt").exists()


def test_a_changed_subset_before_a_resume_is_named_as_a_setting(tmp_path, smoke_overrides):
    """The config is compared before the samples: a resume with another --subset names data.subset, not 'other
    files' with advice to point --data-root elsewhere."""
    cfg = load_config("smoke", overrides={**smoke_overrides, "train.epochs": 1, "run.runs_dir": str(tmp_path)})
    run_dir = train_run(cfg, progress=False)
    (run_dir / "DONE").unlink()                              # as if killed after its last checkpoint
    changed = load_config("smoke", overrides={**smoke_overrides, "train.epochs": 1, "data.subset": 6,
                                              "run.runs_dir": str(tmp_path)})
    with pytest.raises(RunConflict, match=r"different config \(data.subset: unset there, 6 now\)"):
        train_run(changed, progress=False)


def test_evaluate_waits_for_a_run_to_finish_and_for_its_trainer(tmp_path, smoke_overrides):
    """A run stopped while writing its final scores (metrics.json, no DONE) is unfinished: evaluate refuses it, as
    the resume would rewrite metrics.json and drop evaluate's profiles. A run a process is training is named as
    such by evaluate and predict (not 'train it again'). A damaged cache file is named with the fix."""
    from benchmark import records
    from benchmark.data.base import DataError
    from benchmark.evaluate import evaluate_run

    cfg = load_config("smoke", overrides={**smoke_overrides, "train.epochs": 1, "run.runs_dir": str(tmp_path)})
    run_dir = train_run(cfg, progress=False)
    (run_dir / "DONE").unlink()
    with pytest.raises(ValueError, match="has not finished \\(no DONE\\).*the `segbench train` command"):
        evaluate_run(run_dir, profiles=("mirror",))
    records.mark_done(run_dir)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from benchmark import records\n"
                               f"with records.run_lock({str(run_dir)!r}):\n    print('held', flush=True)\n"
                               "    sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(records.RunBusy, match=f"pid {holder.pid}"):
            evaluate_run(run_dir, profiles=("mirror",))
        (run_dir / "model.pt").rename(run_dir / "model.kept")
        with pytest.raises(FileNotFoundError, match=r"has no model.pt: the run has not finished \(it is being trained "
                                                    rf"now, by pid {holder.pid} "):
            records.load_run_model(run_dir)
        (run_dir / "model.kept").rename(run_dir / "model.pt")
    finally:
        holder.communicate("", timeout=60)
    assert "mirror" in evaluate_run(run_dir, profiles=("mirror",))["profiles"]
    taps = next((tmp_path / ".cache" / "features").glob("*/taps.npy"))
    taps.write_bytes(taps.read_bytes()[:1000])               # a partial copy of the runs folder
    fresh = load_config("smoke", overrides={**smoke_overrides, "train.epochs": 1, "train.seed": 1,
                                            "run.runs_dir": str(tmp_path)})
    with pytest.raises(DataError, match=rf"cache file {taps} is damaged \(.*\): remove its folder {taps.parent}, "
                                        "which the next run rebuilds"):
        train_run(fresh, progress=False)


def test_checkpoints_are_spaced_so_that_writing_them_takes_at_most_two_percent_of_the_time():
    from benchmark.train import CHECKPOINT_SHARE, checkpoint_due

    assert CHECKPOINT_SHARE == 0.02
    assert checkpoint_due(61, 60, 0.1) and not checkpoint_due(59, 60, 0.1)   # a cheap checkpoint: every minute
    assert not checkpoint_due(61, 60, 2.8) and checkpoint_due(141, 60, 2.8)  # DPT's 457 MB: every 140 s
    assert checkpoint_due(0.5, 0, 2.8)                                        # 0: every epoch, as asked
