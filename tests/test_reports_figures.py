"""reports.figures: every figure is written as PDF and PNG, and gaps in the records do not break a figure."""

import shutil

import numpy as np
import pytest
from PIL import Image

from reports import figures as F
from reports.load import load_runs
from reports.tables import Context
from tests.reports_fixtures import write_fake_runs


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    fake = write_fake_runs(tmp_path_factory.mktemp("runs"))
    runs = load_runs(fake.root)
    return runs, Context.from_runs(runs, "dinov3_vits16", "paper")


def _check(paths, stem):
    assert [p.name for p in paths] == [f"{stem}.pdf", f"{stem}.png"]
    assert paths[0].read_bytes().startswith(b"%PDF")
    image = np.asarray(Image.open(paths[1]).convert("L"))
    assert image.shape[0] > 200 and image.shape[1] > 300
    assert image.std() > 5  # something was drawn


def test_params_vs_accuracy(loaded, tmp_path):
    _, ctx = loaded
    _check(F.params_vs_accuracy(ctx.summary, ctx.wide, tmp_path), "params_vs_accuracy")


def test_params_vs_accuracy_needs_profiles(loaded, tmp_path):
    _, ctx = loaded
    wide = ctx.wide.assign(trainable_params=np.nan)
    assert F.params_vs_accuracy(ctx.summary, wide, tmp_path) == []


@pytest.mark.parametrize("dataset", ["visha", "msd"])  # a missing method; a single seed
def test_dataset_bars(loaded, tmp_path, dataset):
    runs, ctx = loaded
    _check(F.dataset_bars(ctx.summary, runs.tidy, dataset, tmp_path), f"bars_{dataset}")


def test_training_curves(loaded, tmp_path):
    runs, ctx = loaded
    _check(F.training_curves(runs.root, ctx.wide, "kvasir", tmp_path), "curves_kvasir")


def test_training_curves_without_history_draw_nothing(loaded, tmp_path):
    _, ctx = loaded
    assert F.training_curves(tmp_path, ctx.wide, "kvasir", tmp_path / "out") == []


def test_qualitative_grid_survives_a_method_without_samples(tmp_path):
    fake = write_fake_runs(tmp_path / "runs")
    for seed in (0, 1, 2):
        shutil.rmtree(fake.root / "vmd" / f"dpt__dinov3_vits16__paper__s{seed}" / "samples")
    runs = load_runs(fake.root)
    ctx = Context.from_runs(runs, "dinov3_vits16", "paper")
    paths = F.qualitative_grid(runs.root, ctx.wide, "vmd", tmp_path / "fig", profile_metric=("mirror", "iou"))
    _check(paths, "samples_vmd")


def test_primary_metric_and_table_metrics(loaded):
    _, ctx = loaded
    assert F.primary_metric(ctx.summary, "tn3k") == ("segdino", "dice")
    assert F.primary_metric(ctx.summary, "visha") == ("shadow", "iou")
    assert F.primary_metric(ctx.summary, "folder") == ("segdino", "dice")
    assert [m for _, m in F.table_metrics(ctx.summary, "msd")] == ["iou", "acc", "max_fbeta", "mae"]
    assert [m for _, m in F.table_metrics(ctx.summary, "folder")] == ["dice", "iou", "precision", "recall"]


def test_paper_star_only_under_the_paper_tables_profile():
    assert F._reported("kvasir", "segdino", "dice") is not None
    assert F._reported("kvasir", "medical-native", "dice") is None   # another grid: no comparison drawn
    assert F._reported("folder", "segdino", "dice") is None
