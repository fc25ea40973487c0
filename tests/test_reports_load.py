"""reports.load: which runs are used, which are skipped and why, raw numbers, results.csv, seed statistics."""

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reports.load import (
    RESULT_COLUMNS,
    load_runs,
    read_history,
    sample_files,
    summarise,
    write_results_csv,
)
from tests.reports_fixtures import write_exact_run, write_fake_runs


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    return write_fake_runs(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def runs(fake):
    return load_runs(fake.root)


def test_uses_complete_runs_and_lists_the_others_with_reasons(fake, runs):
    assert set(runs.wide["run"]) == fake.used
    reasons = {s.run: s.reason for s in runs.skipped}
    assert set(reasons) == set(fake.skipped)
    for run, expected in fake.skipped.items():
        assert expected in reasons[run]


def test_failed_seed_and_missing_method_are_absent_not_zero(runs):
    w = runs.wide
    assert sorted(w[(w.dataset == "kvasir") & (w.method == "unet")]["seed"]) == [0, 1]
    assert w[(w.dataset == "visha") & (w.method == "dpt")].empty
    assert not (runs.tidy["value"] == 0).any()


def test_tidy_values_are_the_raw_unrounded_record_values(fake, runs):
    run = "tn3k/segdino__dinov3_vits16__paper__s1"
    recorded = json.loads((fake.root / run / "metrics.json").read_text())["profiles"]["segdino"]["metrics"]
    t = runs.tidy[(runs.tidy.run == run) & (runs.tidy.profile == "segdino")]
    assert dict(zip(t["metric"], t["value"])) == recorded


def test_runs_without_profile_json_are_used_with_a_note(runs):
    noted = {n.run for n in runs.notes}
    assert "folder/segdino__dinov3_vits16__paper__s0" in noted
    row = runs.wide[runs.wide.run == "folder/segdino__dinov3_vits16__paper__s0"].iloc[0]
    assert math.isnan(row["trainable_params"])


def test_results_csv_has_the_documented_columns_and_is_regenerated(tmp_path):
    fake = write_fake_runs(tmp_path / "runs")
    path = write_results_csv(fake.root)
    table = pd.read_csv(path)
    assert list(table.columns[: len(RESULT_COLUMNS)]) == RESULT_COLUMNS
    assert {"segdino/dice", "mirror/max_fbeta", "shadow/ber"} <= set(table.columns)
    assert len(table) == len(fake.used)
    (fake.root / "tn3k" / "segdino__dinov3_vits16__paper__s0" / "DONE").unlink()
    assert len(pd.read_csv(write_results_csv(fake.root))) == len(fake.used) - 1


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda run: (run / "profile.json").write_text("{not json"), "profile.json is unreadable"),
        (lambda run: (run / "env.json").write_text("[1, 2"), "env.json is unreadable"),
        (lambda run: (run / "metrics.json").unlink(), "metrics.json missing"),
        (lambda run: _edit(run, schema=2), "schema 2"),
        (lambda run: _edit(run, seed=7), "seed=7"),
        (lambda run: _edit(run, profiles={}), "no profiles"),
        (lambda run: _edit(run, profiles={"mirror": {"metrics": {"iou": "high"}}}), "not a number"),
        (lambda run: (run / "config.yaml").write_text((run / "config.yaml").read_text().split("\ndata:")[0]),
         "config.yaml is missing its data, optim, train, eval, run sections"),
    ],
)
def test_damaged_runs_are_skipped_with_the_reason(tmp_path, damage, reason):
    run = write_exact_run(tmp_path, "msd", "segdino", 0, {"mirror": {"iou": 0.9}})
    (run / "env.json").write_text("{}")
    write_exact_run(tmp_path, "msd", "unet", 0, {"mirror": {"iou": 0.8}})
    damage(run)
    runs = load_runs(tmp_path)
    assert list(runs.wide["method"]) == ["unet"]
    assert len(runs.skipped) == 1 and reason in runs.skipped[0].reason


def _edit(run, **changes):
    data = json.loads((run / "metrics.json").read_text())
    data.update(changes)
    (run / "metrics.json").write_text(json.dumps(data))


def test_folders_that_are_not_runs_are_ignored_and_badly_named_runs_skipped(tmp_path):
    write_exact_run(tmp_path, "msd", "segdino", 0, {"mirror": {"iou": 0.9}})
    (tmp_path / ".cache" / "x").mkdir(parents=True)
    (tmp_path / "msd" / "notes").mkdir()
    bad = tmp_path / "msd" / "segdino-s0"
    bad.mkdir()
    (bad / "DONE").write_text("")
    runs = load_runs(tmp_path)
    assert len(runs.wide) == 1
    assert [s.run for s in runs.skipped] == ["msd/segdino-s0"]


def test_moved_aside_and_imported_runs_are_skipped_saying_what_they_are(tmp_path):
    run = write_exact_run(tmp_path, "msd", "segdino", 0, {"mirror": {"iou": 0.9}})
    shutil.copytree(run, run.with_name(run.name + ".corrupt-20261125-101500"))
    imported = tmp_path / "imported" / "public_kvasir"
    imported.mkdir(parents=True)
    (imported / "metrics.json").write_text(json.dumps({"schema": 1, "selected_epoch": -1, "profiles": {}}))
    (imported / "env.json").write_text(json.dumps({"imported_from": "best_model.pth"}))
    runs = load_runs(tmp_path)
    assert len(runs.wide) == 1
    reasons = {s.run: s.reason for s in runs.skipped}
    assert "moved aside and redid" in reasons[f"msd/{run.name}.corrupt-20261125-101500"]
    assert "imported checkpoint" in reasons["imported/public_kvasir"]


def test_missing_runs_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_runs(tmp_path / "nope")


def test_summarise_uses_sample_std_and_counts_seeds(runs):
    s = summarise(runs.tidy)
    cell = s[(s.dataset == "tn3k") & (s.method == "segdino") & (s.profile == "segdino") & (s.metric == "dice")]
    values = runs.tidy[(runs.tidy.dataset == "tn3k") & (runs.tidy.method == "segdino")
                       & (runs.tidy.profile == "segdino") & (runs.tidy.metric == "dice")]["value"]
    assert cell.iloc[0]["n"] == 3
    assert cell.iloc[0]["std"] == pytest.approx(np.std(values, ddof=1))
    assert cell.iloc[0]["mean"] == pytest.approx(np.mean(values))
    single = s[(s.dataset == "msd") & (s.method == "segdino")]
    assert (single["n"] == 1).all() and single["std"].isna().all()


def test_summarise_never_mixes_presets(tmp_path):
    write_exact_run(tmp_path, "msd", "segdino", 0, {"mirror": {"iou": 0.9}})
    write_exact_run(tmp_path, "msd", "segdino", 0, {"mirror": {"iou": 0.5}}, preset="public-code")
    s = summarise(load_runs(tmp_path).tidy)
    assert sorted(s["mean"]) == [0.5, 0.9]


def test_history_and_samples(fake):
    run = fake.root / "vmd" / "segdino__dinov3_vits16__paper__s0"
    history = read_history(run)
    assert list(history.columns) == ["epoch", "step", "train_loss", "val_dice", "val_iou", "lr", "seconds"]
    samples = sample_files(run)
    assert "video1__00000" in samples and set(samples["video1__00000"]) == {"image", "gt", "pred"}
    shutil.rmtree(run / "samples")
    assert sample_files(run) == {}
    assert read_history(fake.root / "vmd") is None


def test_reports_imports_neither_torch_nor_the_model_packages():
    code = ("import sys, reports, reports.render, reports.figures, reports.tables, reports.paper; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'segdino', 'baselines', 'benchmark') or m == 'matplotlib.pyplot'); print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"


def test_seeds_trained_with_different_settings_are_never_averaged(tmp_path):
    # a run directory's name holds no size or epochs: seed 2 at 96 px for 4 epochs must not join the 64 px mean
    small = {"data.size": 64, "train.epochs": 2}
    write_exact_run(tmp_path, "msd", "segdino", 0, {"mirror": {"iou": 0.80}}, settings=small)
    write_exact_run(tmp_path, "msd", "segdino", 1, {"mirror": {"iou": 0.82}}, settings=small)
    write_exact_run(tmp_path, "msd", "segdino", 2, {"mirror": {"iou": 0.95}},
                    settings={"data.size": 96, "train.epochs": 4})
    runs = load_runs(tmp_path)
    assert list(runs.wide["recipe"]) == ["data.size=64, train.epochs=2"] * 2 + ["data.size=96, train.epochs=4"]
    s = summarise(runs.tidy)
    assert sorted(zip(s["recipe"], s["n"], s["mean"].round(2))) == [
        ("data.size=64, train.epochs=2", 2, 0.81), ("data.size=96, train.epochs=4", 1, 0.95)]
    table = pd.read_csv(write_results_csv(tmp_path))
    assert list(table.columns[: len(RESULT_COLUMNS)]) == RESULT_COLUMNS
    assert table["recipe"].nunique() == 2


def test_runs_that_differ_only_in_where_and_how_they_ran_share_one_recipe(tmp_path):
    # seed, device, workers, compile, paths, a weights file reached by another path: one recipe, one mean
    execution = [{}, {"train.device": "cuda:1", "train.num_workers": 4, "train.compile": "reduce-overhead",
                      "train.features_on_device": "yes", "train.checkpoint_every_s": 5.0, "eval.n_samples": 8},
                 {"data.root": "/elsewhere", "data.cache_dir": "/scratch/cache", "data.skip_bad": True,
                  "eval.profiles": "mirror"}]
    for seed, settings in enumerate(execution):
        run = write_exact_run(tmp_path / "runs", "msd", "segdino", seed, {"mirror": {"iou": 0.9 + seed / 100}},
                              settings={**settings, "backbone.weights": f"/copy{seed}/dinov3_vits16.pth"})
        (run / "env.json").write_text(json.dumps({"weights": f"/copy{seed}/dinov3_vits16.pth",
                                                  "weights_sha256": "a" * 64}))
    runs = load_runs(tmp_path / "runs")
    assert set(runs.wide["recipe"]) == {""} and not runs.notes
    assert list(summarise(runs.tidy)["n"]) == [3]
    (run / "env.json").write_text(json.dumps({"weights": "/w/other.pth", "weights_sha256": "b" * 64}))
    assert set(load_runs(tmp_path / "runs").wide["recipe"]) == {"backbone.weights=sha256:aaaaaaaaaaaa",
                                                                "backbone.weights=sha256:bbbbbbbbbbbb"}


def test_decoder_options_separate_the_runs_of_one_method_only(tmp_path):
    # methods differ in their options by design (dpt readout); one method's seeds with other widths must not be pooled
    write_exact_run(tmp_path, "msd", "segdino", 0, {"mirror": {"iou": 0.9}})
    write_exact_run(tmp_path, "msd", "dpt", 0, {"mirror": {"iou": 0.8}},
                    settings={"decoder.options": {"readout": "add"}})
    write_exact_run(tmp_path, "msd", "unet", 0, {"mirror": {"iou": 0.7}}, settings={"decoder.options": {"width": 64}})
    write_exact_run(tmp_path, "msd", "unet", 1, {"mirror": {"iou": 0.6}}, settings={"decoder.options": {"width": 96}})
    write_exact_run(tmp_path, "msd", "segdino", 1, {"mirror": {"iou": 0.9}})
    write_exact_run(tmp_path, "msd", "segdino", 2, {"mirror": {"iou": 0.5}},
                    settings={"decoder.options": {"features": 64}})
    recipes = dict(zip(load_runs(tmp_path).wide["run"], load_runs(tmp_path).wide["recipe"]))
    # SegDINO at its defaults stays with the other methods; only the seed with other options is set apart
    assert recipes["msd/segdino__dinov3_vits16__paper__s0"] == recipes["msd/segdino__dinov3_vits16__paper__s1"] == ""
    assert recipes["msd/dpt__dinov3_vits16__paper__s0"] == ""
    assert recipes["msd/segdino__dinov3_vits16__paper__s2"] == 'decoder.options={"features":64}'
    assert {recipes[f"msd/unet__dinov3_vits16__paper__s{s}"] for s in (0, 1)} == {
        'decoder.options={"width":64}', 'decoder.options={"width":96}'}


def test_a_setting_an_older_config_yaml_lacks_does_not_split_runs(tmp_path):
    import yaml

    write_exact_run(tmp_path, "msd", "segdino", 0, {"mirror": {"iou": 0.9}})
    old = write_exact_run(tmp_path, "msd", "segdino", 1, {"mirror": {"iou": 0.8}},
                          settings={"train.amp_dtype": "float32"})
    config = yaml.safe_load((old / "config.yaml").read_text())
    del config["train"]["feature_cache"], config["data"]["val_fraction"]   # written before segbench had them
    (old / "config.yaml").write_text(yaml.safe_dump(config))
    assert set(load_runs(tmp_path).wide["recipe"]) == {""}   # and amp_dtype float32 is no autocast, like none


def test_a_run_without_config_yaml_is_kept_apart_with_a_note(tmp_path):
    write_exact_run(tmp_path, "msd", "segdino", 0, {"mirror": {"iou": 0.9}})
    (write_exact_run(tmp_path, "msd", "segdino", 1, {"mirror": {"iou": 0.5}}) / "config.yaml").unlink()
    runs = load_runs(tmp_path)
    assert list(runs.wide["recipe"]) == ["", "settings not recorded"]
    assert [n.run for n in runs.notes if "no config.yaml" in n.reason] == ["msd/segdino__dinov3_vits16__paper__s1"]


def _imported_run(folder):
    """What `segbench import-checkpoint` leaves (before `segbench evaluate` adds metrics.json)."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("run:\n  preset: public-code\n")
    (folder / "model.pt").write_bytes(b"weights")
    (folder / "env.json").write_text(json.dumps({"imported_from": "best_model.pth"}))
    return folder


@pytest.mark.parametrize("where", ["imported/public_kvasir", "public_kvasir", "."])
def test_imported_runs_are_listed_as_not_reported_wherever_they_are(tmp_path, where):
    run = _imported_run(tmp_path / "runs" / where if where != "." else tmp_path / "runs")
    for _ in range(2):   # as imported, then after `segbench evaluate`
        runs = load_runs(run if where == "." else tmp_path / "runs")
        assert runs.wide.empty and len(runs.skipped) == 1
        assert "imported runs are not reported" in runs.skipped[0].reason
        (run / "metrics.json").write_text(json.dumps({"schema": 1, "selected_epoch": -1, "profiles": {}}))


def test_the_sections_a_config_yaml_must_have_are_those_segbench_writes():
    from benchmark import records
    from benchmark.config import Config
    from reports.load import CONFIG_SECTIONS

    assert CONFIG_SECTIONS == records.CONFIG_SECTIONS and set(CONFIG_SECTIONS) <= set(Config().to_dict())


def test_a_folder_datasets_name_is_read_from_its_data_root(tmp_path):
    """Every folder dataset's runs are `folder/<run>`: data_name (results.csv, right after dataset) names the folder,
    from config.yaml's data.root; the named datasets leave it empty (their key names them)."""
    fake = write_fake_runs(tmp_path)
    runs = load_runs(fake.root)
    names = dict(zip(runs.wide["dataset"], runs.wide["data_name"]))
    assert names["folder"] == "mydata" and names["kvasir"] == ""
    assert set(runs.tidy[runs.tidy.dataset == "folder"]["data_name"]) == {"mydata"}
    table = pd.read_csv(write_results_csv(fake.root), keep_default_na=False)
    assert list(table.columns[:3]) == ["dataset", "data_name", "method"]
    assert set(table[table.dataset == "folder"]["data_name"]) == {"mydata"}
    assert set(table[table.dataset != "folder"]["data_name"]) == {""}
