"""Figures from run records: accuracy vs trainable parameters (like the paper's Fig. 2), per-dataset bars with
error bars, training curves from history.csv, and a qualitative grid from samples/.

Uses matplotlib's object API (`matplotlib.figure.Figure`, rendered by Agg for PNG and by the PDF backend), never
pyplot, so nothing global changes and no display is needed. Every figure is saved as PDF and PNG.
"""

from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter
from PIL import Image

from reports import paper
from reports.load import (
    dataset_sort_key,
    method_sort_key,
    read_history,
    read_per_image,
    safe_key,
    sample_files,
)
from reports.tables import (
    display_dataset,
    display_method,
    file_safe,
    metric_info,
    metric_order,
)

STYLE = {"font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "legend.fontsize": 8,
         "xtick.labelsize": 8, "ytick.labelsize": 8, "axes.spines.top": False, "axes.spines.right": False}
COLORS = {"segdino": "#d62728", "unet": "#1f77b4", "upernet": "#2ca02c", "dpt": "#ff7f0e"}
EXTRA_COLORS = ["#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
PNG_DPI = 150


def method_color(method: str, methods: list[str]) -> str:
    base = method.removesuffix("-small")
    if base in COLORS:
        return COLORS[base]
    others = [m for m in methods if m.removesuffix("-small") not in COLORS]
    return EXTRA_COLORS[others.index(method) % len(EXTRA_COLORS)] if method in others else "#333333"


def method_marker(method: str) -> str:
    return "s" if method.endswith("-small") else "o"


def save(fig: Figure, folder: Path, stem: str) -> list[Path]:
    """Write <stem>.pdf and <stem>.png; the PDF carries no creation date so reruns give the same bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext, options in (("pdf", {"metadata": {"CreationDate": None}}), ("png", {"dpi": PNG_DPI})):
        path = folder / f"{stem}.{ext}"
        tmp = folder / f".{stem}.{os.getpid()}.tmp.{ext}"   # renamed into place: never half a file
        fig.savefig(tmp, **options)
        os.replace(tmp, path)
        paths.append(path)
    return paths


def _suptitle(fig: Figure, text: str) -> None:
    """A figure title wrapped to the figure's width, so it is never clipped."""
    chars = max(30, int(fig.get_figwidth() * 12))
    fig.suptitle(textwrap.fill(text, chars), fontsize=10)


def primary_metric(summary: pd.DataFrame, dataset: str) -> tuple[str, str] | None:
    """(profile, metric) a dataset is ranked by: DSC for the medical table, IoU for mirror/shadow, else the first."""
    s = summary[summary.dataset == dataset]
    table = paper.table_for(dataset)
    for profile, metric in ([(table.profile, table.metrics[0])] if table else []) + [("segdino", "dice")]:
        if ((s.profile == profile) & (s.metric == metric)).any():
            return profile, metric
    return (s.iloc[0]["profile"], s.iloc[0]["metric"]) if len(s) else None


def table_metrics(summary: pd.DataFrame, dataset: str) -> list[tuple[str, str]]:
    """The (profile, metric) pairs shown for a dataset: its paper table's, else those of its primary profile."""
    s = summary[summary.dataset == dataset]
    table = paper.table_for(dataset)
    present = set(zip(s.profile, s.metric))
    if table:
        pairs = [(table.profile, m) for m in table.metrics if (table.profile, m) in present]
        if pairs:
            return pairs
    primary = primary_metric(summary, dataset)
    if primary is None:
        return []
    return sorted({(p, m) for p, m in present if p == primary[0]}, key=lambda pm: metric_order(pm[1]))


def _stat(summary: pd.DataFrame, dataset: str, method: str, profile: str, metric: str) -> tuple[float, float, int]:
    s = summary
    hit = s[(s.dataset == dataset) & (s.method == method) & (s.profile == profile) & (s.metric == metric)]
    if hit.empty:
        return math.nan, math.nan, 0
    row = hit.iloc[0]
    return float(row["mean"]), float(row["std"]), int(row["n"])


def _label(metric: str) -> str:
    info = metric_info(metric)
    unit = {"px": " (px)", "%": " (%)"}.get(info.unit, "")
    return f"{info.plain}{unit} {'↓' if info.lower_better else '↑'}"


def params_vs_accuracy(summary: pd.DataFrame, wide: pd.DataFrame, folder: Path, title: str = "") -> list[Path]:
    """One panel per dataset: primary metric vs trainable parameters (log x), marker area ~ total GFLOPs.

    Error bars are the sample std over seeds. The paper's SegDINO (2.21M, its reported value) is a hollow star, in
    the legend only where one is drawn (the paper reports no user dataset).
    """
    datasets = [d for d in dict.fromkeys(summary["dataset"]) if primary_metric(summary, d)]
    params = wide.groupby("method")[["trainable_params", "total_gflops"]].mean()
    params = params.dropna(subset=["trainable_params"])
    if not datasets or params.empty:
        return []
    methods = sorted(params.index, key=method_sort_key)
    gmax = float(params["total_gflops"].max()) if params["total_gflops"].notna().any() else 1.0

    def area(g: float) -> float:
        return 30.0 if math.isnan(g) else 20.0 + 280.0 * g / gmax

    ncols = min(3, len(datasets))
    nrows = math.ceil(len(datasets) / ncols)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(2.45 * ncols + 1.7, 2.3 * nrows + 0.6), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False)
        stars = 0
        for ax, dataset in zip(axes.flat, datasets):
            profile, metric = primary_metric(summary, dataset)
            for method in methods:
                mean, std, _ = _stat(summary, dataset, method, profile, metric)
                if math.isnan(mean):
                    continue
                x = params.loc[method, "trainable_params"] / 1e6
                color = method_color(method, methods)
                if not math.isnan(std):  # drawn above the marker so large (high-GFLOP) markers cannot hide it
                    ax.errorbar(x, mean, yerr=std, fmt="none", ecolor="black", capsize=2.5, lw=0.9, zorder=4)
                ax.scatter(x, mean, s=area(params.loc[method, "total_gflops"]), color=color, alpha=0.75,
                           marker=method_marker(method), edgecolors="black", linewidths=0.5, zorder=3)
            reported = paper_point(summary, dataset)
            if reported is not None:
                ax.scatter(paper.EFFICIENCY["trainable_params"] / 1e6, reported, s=90, marker="*",
                           facecolors="none", edgecolors=COLORS["segdino"], linewidths=1.2, zorder=4)
                stars += 1
            _log_params_axis(ax, params["trainable_params"] / 1e6)
            ax.set_title(display_dataset(dataset))
            ax.set_ylabel(_label(metric))
            ax.grid(alpha=0.3, which="both", lw=0.5)
            ax.margins(y=0.2)
        for ax in list(axes.flat)[len(datasets):]:
            ax.set_visible(False)
        fig.supxlabel("trainable parameters (millions, log scale)", fontsize=9)
        handles = [Line2D([], [], ls="", marker=method_marker(m), color=method_color(m, methods), markersize=7,
                          markeredgecolor="black", markeredgewidth=0.5, label=display_method(m)) for m in methods]
        if stars:
            handles.append(Line2D([], [], ls="", marker="*", markersize=9, markerfacecolor="none",
                                  markeredgecolor=COLORS["segdino"], label="SegDINO (paper)"))
        for g in _nice_sizes(params["total_gflops"]):
            handles.append(Line2D([], [], ls="", marker="o", color="#bbbbbb", markeredgecolor="black",
                                  markeredgewidth=0.5, markersize=math.sqrt(area(g)), label=f"{g:g} GFLOPs"))
        fig.legend(handles=handles, loc="outside right center", frameon=False, labelspacing=1.1,
                   title="method / total GFLOPs", title_fontsize=8)
        _suptitle(fig, title or "Accuracy vs trainable parameters (marker area ∝ GFLOPs; error bars: sample std)")
        return save(fig, folder, "params_vs_accuracy")


def _log_params_axis(ax, millions: pd.Series) -> None:
    """Log x-axis with plain tick labels (1, 2, 5, 10, ...) and no minor labels, so ticks never collide."""
    ax.set_xscale("log")
    lo = min(float(millions.min()), paper.EFFICIENCY["trainable_params"] / 1e6)
    hi = float(millions.max())
    mantissas = (1, 2, 5) if hi / lo > 8 else (1, 1.5, 2, 3, 5, 7)  # more ticks when the range is narrow
    ticks = [m * 10**e for e in range(-3, 5) for m in mantissas if lo / 1.6 <= m * 10**e <= hi * 1.6]
    ax.xaxis.set_major_locator(FixedLocator(ticks or [lo, hi]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(lo / 1.6, hi * 1.6)


def paper_point(summary: pd.DataFrame, dataset: str) -> float | None:
    """The paper's SegDINO value drawn beside ours in `params_vs_accuracy` (its hollow star), or None: none for a
    dataset the paper does not report, or whose primary metric is not under the paper table's profile."""
    primary = primary_metric(summary, dataset)
    return _reported(dataset, *primary) if primary else None


def _reported(dataset: str, profile: str, metric: str) -> float | None:
    """The paper's SegDINO value, only where ours is scored under that table's profile (a `medical-native` Dice
    is not on the paper's 256 grid)."""
    table = paper.table_for(dataset)
    if table is None or profile != table.profile or metric not in table.metrics:
        return None
    return table.values(paper.SEGDINO).get((dataset, metric))


def _nice_sizes(gflops: pd.Series) -> list[float]:
    g = gflops.dropna()
    if g.empty:
        return []
    lo, hi = float(g.min()), float(g.max())
    picks = [lo, (lo + hi) / 2, hi] if hi > lo * 1.5 else [hi]
    return [float(f"{p:.2g}") for p in picks]


def dataset_bars(summary: pd.DataFrame, tidy: pd.DataFrame, dataset: str, folder: Path) -> list[Path]:
    """Bars of the mean per method for each shown metric, error bars = sample std, dots = individual seeds.

    The metrics shown are all of one profile (`table_metrics`), named once in the title, and each panel's title is
    wrapped to the panel's width, so neighbouring titles never run into each other."""
    pairs = table_metrics(summary, dataset)
    methods = sorted(summary[summary.dataset == dataset]["method"].unique(), key=method_sort_key)
    if not pairs or not methods:
        return []
    ncols = 2 if len(pairs) == 4 else min(3, len(pairs))
    nrows = math.ceil(len(pairs) / ncols)
    width = max(2.3, 0.36 * len(methods) + 0.7)
    sub = summary[summary.dataset == dataset]
    single = bool(len(sub)) and int(sub["n"].max()) <= 1
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(width * ncols, 2.4 * nrows + 0.7), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for ax, (profile, metric) in zip(axes.flat, pairs):
            lows, highs = [], []
            for i, method in enumerate(methods):
                mean, std, _ = _stat(summary, dataset, method, profile, metric)
                color = method_color(method, methods)
                recorded = tidy[(tidy.dataset == dataset) & (tidy.method == method) & (tidy.profile == profile)
                                & (tidy.metric == metric)]["value"]
                if math.isnan(mean):   # as in the tables: recorded as NaN/null (undefined) is not unmeasured
                    ax.text(i, 0.5, "undefined" if len(recorded) else "not measured", rotation=90,
                            transform=ax.get_xaxis_transform(), ha="center", va="center", color="#777777")
                    continue
                err = 0.0 if math.isnan(std) else std
                ax.bar(i, mean, color=color, alpha=0.8, width=0.7, edgecolor="black", linewidth=0.5,
                       hatch="///" if method.endswith("-small") else None)
                if err:
                    ax.errorbar(i, mean, yerr=err, fmt="none", ecolor="black", capsize=3, lw=1)
                t = recorded.dropna()
                jitter = np.linspace(-0.15, 0.15, len(t)) if len(t) > 1 else np.zeros(len(t))
                ax.scatter(i + jitter, t, s=9, color="black", zorder=3, linewidths=0)
                lows += [mean - err, *t]
                highs += [mean + err, *t]
            if lows:
                lo, hi = min(lows), max(highs)
                pad = max(hi - lo, abs(hi) * 0.01, 1e-6) * 0.35
                ax.set_ylim(lo - pad, hi + pad)
            ax.set_xticks(range(len(methods)), [display_method(m) for m in methods], rotation=30, ha="right")
            ax.set_xlim(-0.6, len(methods) - 0.4)   # every method's slot, also one without a bar
            ax.set_title(textwrap.fill(_label(metric), max(12, int(width * 11))))
            ax.grid(axis="y", alpha=0.3, lw=0.5)
        for ax in list(axes.flat)[len(pairs):]:
            ax.set_visible(False)
        how = ("one seed per method (no error bars)" if single else
               "bars = mean over seeds, error bars = sample std (ddof=1), dots = individual seeds")
        profiles = ", ".join(dict.fromkeys(p for p, _ in pairs))
        _suptitle(fig, f"{display_dataset(dataset)}, profile {profiles}: {how}; y-axes do not start at 0")
        return save(fig, folder, f"bars_{file_safe(dataset)}")


def training_curves(root: Path, wide: pd.DataFrame, dataset: str, folder: Path) -> list[Path]:
    """train_loss and each val_* column of history.csv vs epoch: mean over seeds, band = min..max over seeds."""
    runs = wide[wide.dataset == dataset]
    histories: dict[str, list[pd.DataFrame]] = {}
    for method, run in zip(runs["method"], runs["run"]):
        h = read_history(root / run)
        if h is not None:
            histories.setdefault(method, []).append(h)
    if not histories:
        return []
    columns = [c for c in ("train_loss", "val_dice", "val_iou") if any(c in h for hs in histories.values()
                                                                        for h in hs)]
    columns += sorted({c for hs in histories.values() for h in hs for c in h.columns
                       if c.startswith("val_") and c not in columns})
    methods = sorted(histories, key=method_sort_key)
    labels = {"train_loss": "training loss ↓", "val_dice": "validation DSC ↑", "val_iou": "validation IoU ↑"}
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(2.1 * len(columns) + 1.3, 2.5), layout="constrained")
        axes = fig.subplots(1, len(columns), squeeze=False)[0]
        for ax, column in zip(axes, columns):
            for method in methods:
                frames = [h[["epoch", column]] for h in histories[method] if column in h]
                if not frames:
                    continue
                table = pd.concat(frames).groupby("epoch")[column].agg(["mean", "min", "max"])
                color = method_color(method, methods)
                label = f"{display_method(method)} ({len(frames)} seed{'s' if len(frames) > 1 else ''})"
                ax.plot(table.index, table["mean"], color=color, lw=1.4, label=label,
                        ls="--" if method.endswith("-small") else "-")
                if len(frames) > 1:
                    ax.fill_between(table.index, table["min"], table["max"], color=color, alpha=0.18, lw=0)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel(labels.get(column, column))
            ax.grid(alpha=0.3, lw=0.5)
        fig.legend(handles=axes[0].get_legend_handles_labels()[0], loc="outside right center", frameon=False)
        _suptitle(fig, f"{display_dataset(dataset)}: training curves (line = mean over seeds, band = min–max)")
        return save(fig, folder, f"curves_{file_safe(dataset)}")


def qualitative_grid(root: Path, wide: pd.DataFrame, dataset: str, folder: Path, n_images: int = 3,
                     profile_metric: tuple[str, str] | None = None) -> list[Path]:
    """Rows: test images; columns: image | ground truth | each method's predicted probability (lowest seed).

    The ground-truth outline is drawn on every panel; each prediction is labelled with its per-image score when
    per_image.csv has one.
    """
    runs = wide[wide.dataset == dataset].sort_values("seed")
    chosen: dict[str, tuple[str, dict]] = {}
    for method, run in zip(runs["method"], runs["run"]):
        if method not in chosen:
            files = sample_files(root / run)
            if files:
                chosen[method] = (run, files)
    if not chosen:
        return []
    methods = sorted(chosen, key=method_sort_key)
    seeds = sorted({int(runs[runs.run == run]["seed"].iloc[0]) for run, _ in chosen.values()})
    keys = sorted(set.intersection(*(set(files) for _, files in chosen.values())))[:n_images]
    if not keys:
        keys = sorted(next(iter(chosen.values()))[1])[:n_images]
    scores, names = {}, {}
    for m in methods:
        scores[m], found = _per_image_scores(root / chosen[m][0], profile_metric)
        names.update(found)
    ncols = 2 + len(methods)
    with matplotlib.rc_context(STYLE):
        fig = Figure(figsize=(1.05 * ncols + 0.3, 1.12 * len(keys) + 0.75), layout="constrained")
        axes = fig.subplots(len(keys), ncols, squeeze=False)
        for r, key in enumerate(keys):
            reference = next(files[key] for _, files in chosen.values() if key in files)
            gt = np.asarray(Image.open(reference["gt"]).convert("L")) > 127
            panels = [("Image", np.asarray(Image.open(reference["image"]).convert("RGB")), None),
                      ("Ground truth", gt.astype(float), None)]
            for m in methods:
                files = chosen[m][1].get(key)
                pred = None if files is None else np.asarray(Image.open(files["pred"]).convert("L")) / 255.0
                panels.append((display_method(m), pred, scores[m].get(key)))
            for c, (title, data, score) in enumerate(panels):
                ax = axes[r, c]
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_visible(False)
                if data is None:
                    ax.text(0.5, 0.5, "no sample", ha="center", va="center", transform=ax.transAxes)
                else:
                    ax.imshow(data, cmap=None if data.ndim == 3 else "gray", vmin=0, vmax=1, interpolation="nearest")
                    if c != 1 and gt.shape == data.shape[:2]:
                        ax.contour(gt, levels=[0.5], colors=["#00e676"], linewidths=0.7)
                if r == 0:
                    ax.set_title(title)
                if c == 0:
                    ax.set_ylabel(_short(names.get(key, key)), fontsize=6)
                if score is not None:
                    ax.set_xlabel(score, fontsize=7)
        what = f"; per-image {metric_info(profile_metric[1]).plain} below" if profile_metric else ""
        seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else "seeds " + ", ".join(map(str, seeds))
        _suptitle(fig, f"{display_dataset(dataset)}, {seed_text}: predicted probability (white = 1); "
                       f"green: ground truth{what}")
        return save(fig, folder, f"samples_{file_safe(dataset)}")


def _short(key: str, width: int = 16) -> str:
    return key if len(key) <= width else "…" + key[-(width - 1):]


def _per_image_scores(run_dir: Path, profile_metric: tuple[str, str] | None) -> tuple[dict, dict]:
    """({safe_key: "DSC 0.912"}, {safe_key: original key}) from per_image.csv for the given profile and metric."""
    frame = read_per_image(run_dir)
    if frame is None or "key" not in frame.columns:
        return {}, {}
    names = {safe_key(str(k)): str(k) for k in frame["key"]}
    if profile_metric is None or profile_metric[1] not in frame.columns:
        return {}, names
    profile, metric = profile_metric
    if "profile" in frame.columns:
        frame = frame[frame["profile"] == profile]
    label = metric_info(metric).plain
    scores = {safe_key(str(k)): f"{label} {v:.3f}" for k, v in zip(frame["key"], frame[metric]) if pd.notna(v)}
    return scores, names


def make_figures(root: Path, summary: pd.DataFrame, tidy: pd.DataFrame, wide: pd.DataFrame, folder: Path,
                 title: str = "") -> list[Path]:
    """Every figure for one backbone/preset group; returns the written paths (PDF and PNG)."""
    paths = params_vs_accuracy(summary, wide, folder, title)
    for dataset in sorted(summary["dataset"].unique(), key=dataset_sort_key):
        paths += dataset_bars(summary, tidy, dataset, folder)
        paths += training_curves(root, wide, dataset, folder)
        paths += qualitative_grid(root, wide, dataset, folder, profile_metric=primary_metric(summary, dataset))
    return paths
