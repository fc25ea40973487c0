"""reports.figures: every figure is written as PDF and PNG, and gaps in the records do not break a figure."""

import shutil

import numpy as np
import pytest
from PIL import Image

from reports import figures as F
from reports.load import by_data, load_runs
from reports.tables import Context
from tests.reports_fixtures import write_exact_run, write_fake_runs


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
    assert F.primary_metric(ctx.summary, "folder/mydata") == ("segdino", "dice")
    assert [m for _, m in F.table_metrics(ctx.summary, "msd")] == ["iou", "acc", "max_fbeta", "mae"]
    assert [m for _, m in F.table_metrics(ctx.summary, "folder/mydata")] == ["dice", "iou", "precision", "recall"]


def test_paper_star_only_under_the_paper_tables_profile():
    assert F._reported("kvasir", "segdino", "dice") is not None
    assert F._reported("kvasir", "medical-native", "dice") is None   # another grid: no comparison drawn
    assert F._reported("folder", "segdino", "dice") is None


@pytest.fixture
def drawn(monkeypatch):
    """The figures a call draws (matplotlib Figures, laid out), instead of files."""
    figures = []

    def keep(fig, folder, stem):
        fig.canvas.draw()   # constrained layout places the titles at draw time
        figures.append(fig)
        return []

    monkeypatch.setattr(F, "save", keep)
    return figures


def _medical(root, dataset, methods=("segdino", "unet", "unet-small")):
    metrics = {"dice": 0.8, "iou": 0.7, "hd95": 20.0, "hd95_monai": 21.0, "hd95_penalised": 25.0,
               "precision": 0.8, "recall": 0.8}
    for i, method in enumerate(methods):
        for seed in (0, 1):
            write_exact_run(root, dataset, method, seed, {"segdino": {k: v + 0.01 * (i + seed) for k, v in
                                                                      metrics.items()}})
    runs = load_runs(root)
    return runs, Context.from_runs(runs, "dinov3_vits16", "paper")


def test_bar_titles_never_run_into_each_other(tmp_path, drawn):
    # "HD95 (MONAI) (px) ↓  [profile segdino]" ran into the next panel's title; the profile is now said once
    runs, ctx = _medical(tmp_path, "polyps", methods=("segdino", "unet"))   # not in the paper: every metric shown
    F.dataset_bars(ctx.summary, runs.tidy, "polyps", tmp_path)
    (fig,) = drawn
    boxes = [ax.title.get_window_extent() for ax in fig.axes if ax.get_visible()]
    assert len(boxes) == 7
    assert not [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:] if a.overlaps(b)]
    assert fig.get_suptitle().startswith("polyps, profile segdino:")


def test_figures_name_a_folder_dataset_by_its_folder(tmp_path, drawn):
    runs, ctx = _medical(tmp_path, "folder")
    F.dataset_bars(ctx.summary, by_data(runs.tidy), "folder/mydata", tmp_path)
    F.training_curves(runs.root, ctx.wide, "folder/mydata", tmp_path)   # no history.csv: nothing drawn
    F.params_vs_accuracy(ctx.summary, ctx.wide, tmp_path)
    assert drawn[0].get_suptitle().startswith("folder (mydata), profile segdino:")
    assert [ax.get_title() for ax in drawn[1].axes if ax.get_visible()] == ["folder (mydata)"]


def test_bars_say_undefined_apart_from_not_measured(tmp_path, drawn):
    write_exact_run(tmp_path, "kvasir", "segdino", 0, {"segdino": {"dice": 0.5, "hd95": None}})
    write_exact_run(tmp_path, "kvasir", "unet", 0, {"segdino": {"dice": 0.6}})
    write_exact_run(tmp_path, "kvasir", "dpt", 0, {"segdino": {"dice": 0.7, "hd95": 12.0}})
    runs = load_runs(tmp_path)
    ctx = Context.from_runs(runs, "dinov3_vits16", "paper")
    F.dataset_bars(ctx.summary, runs.tidy, "kvasir", tmp_path)
    hd95 = next(ax for ax in drawn[0].axes if ax.get_title().startswith("HD95"))
    assert sorted(t.get_text() for t in hd95.texts) == ["not measured", "undefined"]
    assert hd95.get_xlim()[0] < -0.35 and hd95.get_xlim()[1] > 2.35   # every method's slot, with a bar or not


@pytest.mark.parametrize("dataset, star", [("kvasir", True), ("folder", False)])
def test_the_papers_star_is_in_the_legend_only_where_drawn(tmp_path, drawn, dataset, star):
    # the paper reports no user dataset: no star is drawn for one, so the legend must not offer it
    _, ctx = _medical(tmp_path, dataset)
    F.params_vs_accuracy(ctx.summary, ctx.wide, tmp_path)
    (fig,) = drawn
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert ("SegDINO (paper)" in labels) is star and "SegDINO" in labels
