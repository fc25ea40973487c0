"""Results tables laid out like the paper's: Table 1 (medical), MSD, VMD-D, ViSha, efficiency, one table per
dataset and the seeds used, built as `Table` data from the summary frame.

Conventions, stated in every caption: mean ± sample standard deviation (ddof = 1) over seeds; bold marks the best
of *our* rows per column (reported rows come from other protocols); missing cells are "--", never 0 ("n/a" where
measured but undefined). Each folder dataset is a dataset of its own (reports.load.data_key). The table
model and its LaTeX/Markdown/CSV renderers are in `reports.table_render`, labels and decimals in `reports.labels`;
both are re-exported here.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass

import pandas as pd

from reports import paper
from reports.labels import (
    DATASET_NAMES,
    METHOD_NAMES,
    METRICS,
    SALIENCY_PROFILES,
    Metric,
    decimals,
    display_dataset,
    display_method,
    file_safe,
    metric_info,
    metric_order,
    plural,
    reported_decimals,
)
from reports.load import Runs, by_data, dataset_sort_key, method_sort_key, setting_text, summarise
from reports.table_render import (
    Cell,
    Column,
    Section,
    Table,
    _code,
    _fmt,  # noqa: F401  (re-exported: tests check the rounding helper directly)
    cell_plain,
    cell_tex,
    mark_best,
    mark_seed_counts,
    std_tex,
    tex,
    to_frame,
    to_latex,
    to_markdown,
    write_table,
)

# Public names, those defined here and those re-exported from reports.labels and reports.table_render (so
# `from reports.tables import X` keeps working for everything this module used to define).
__all__ = [
    "COUNT_LABELS", "DATASET_NAMES", "METHOD_NAMES", "METRICS", "SALIENCY_PROFILES",
    "Cell", "Column", "Context", "Metric", "Section", "Table",
    "build_tables", "cell_plain", "cell_tex", "coverage_table", "dataset_table", "dataset_tables", "decimals",
    "display_dataset", "display_method", "efficiency_table", "file_safe", "mark_best", "mark_seed_counts",
    "metric_info", "metric_order", "paper_table", "reported_decimals", "std_tex", "tex", "to_frame", "to_latex",
    "to_markdown", "write_table",
]

# --------------------------------------------------------------------------------------------------------------
# Building tables from the summary frame (reports.load.summarise).


@dataclass
class Context:
    """What a table needs besides the numbers: the recipe group and the recorded conventions/counts/profiles.

    The frames' `dataset` is `reports.load.data_key` ("folder/mydata" for a folder dataset): a table's dataset.
    """

    backbone: str
    preset: str
    summary: pd.DataFrame  # summarise() output for this backbone/preset/recipe
    conventions: pd.DataFrame  # load.Runs.conventions for this backbone/preset/recipe
    counts: pd.DataFrame  # load.Runs.counts for this backbone/preset/recipe
    wide: pd.DataFrame  # load.Runs.wide for this backbone/preset/recipe
    speed: pd.DataFrame | None = None  # rows of a `segbench profile` speed table (load.read_speed), optional
    recipe: str = ""  # the settings that set these runs apart from the others of this backbone/preset (load.py)
    settings: dict | None = None  # the settings these runs share (load.run_settings); None: not recorded

    @classmethod
    def from_runs(cls, runs: Runs, backbone: str, preset: str, speed: pd.DataFrame | None = None,
                  recipe: str | None = None) -> Context:
        """The context for one backbone/preset/recipe group of a loaded runs directory. recipe None: the only
        recipe of this backbone and preset (ValueError when its runs were trained with different settings)."""
        if recipe is None:
            w = runs.wide
            recipes = sorted(set(w[(w.backbone == backbone) & (w.preset == preset)]["recipe"])) if len(w) else []
            if len(recipes) > 1:
                raise ValueError(f"the runs of backbone {backbone}, preset {preset} differ in their settings; "
                                 f"pass one recipe of {recipes}")
            recipe = recipes[0] if recipes else ""

        def pick(frame: pd.DataFrame) -> pd.DataFrame:
            if frame.empty:
                return frame
            keep = (frame.backbone == backbone) & (frame.preset == preset) & (frame.recipe == recipe)
            return by_data(frame[keep].reset_index(drop=True))   # two folders' runs: two datasets, never one mean

        wide = pick(runs.wide)
        settings = runs.settings.get(wide["run"].iloc[0]) if len(wide) else None  # the same for all (load.py)
        if settings is not None:   # but a method's own options (load.METHOD_SETTINGS): SegDINO's, for the Δ note
            options = {setting_text((runs.settings.get(r) or {}).get("decoder.options") or {})
                       for r in wide.loc[wide.method == "segdino", "run"]}
            settings = {**settings, "decoder.options": " / ".join(sorted(options)) if options else "{}"}
        return cls(backbone, preset, summarise(pick(runs.tidy)), pick(runs.conventions), pick(runs.counts), wide,
                   speed, recipe, settings)

    @property
    def title(self) -> str:
        """"backbone B, preset P", and the recipe's settings when the runs of B and P differ in theirs."""
        return f"backbone {self.backbone}, preset {self.preset}" + (f", {self.recipe}" if self.recipe else "")

    @property
    def frozen(self) -> bool:
        """Whether these runs kept the backbone frozen (train.freeze_backbone; the `public-code` preset trains it).
        Without recorded settings, as the preset does."""
        if self.settings is not None and "train.freeze_backbone" in self.settings:
            return bool(self.settings["train.freeze_backbone"])
        return self.preset != "public-code"

    @property
    def heading(self) -> str:
        """A recipe's section heading: "Frozen backbone B, preset P", or "Trained backbone ..." when it trained."""
        return f"{'Frozen' if self.frozen else 'Trained'} {self.title}"

    @property
    def datasets(self) -> list[str]:
        return sorted(self.summary["dataset"].unique(), key=dataset_sort_key)

    def methods(self, datasets: list[str] | None = None) -> list[str]:
        frame = self.summary if datasets is None else self.summary[self.summary["dataset"].isin(datasets)]
        return sorted(frame["method"].unique(), key=method_sort_key)

    def stat(self, dataset: str, method: str, profile: str, metric: str, places: int) -> Cell:
        s = self.summary
        hit = s[(s.dataset == dataset) & (s.method == method) & (s.profile == profile) & (s.metric == metric)]
        if hit.empty:
            return Cell("stat", decimals=places)
        row = hit.iloc[0]
        undefined = int(row.get("undefined", 0))
        if row["n"] == 0:
            return Cell("stat", decimals=places, undefined=undefined)
        return Cell("stat", mean=float(row["mean"]), std=float(row["std"]), n=int(row["n"]), decimals=places,
                    undefined=undefined)

    def convention_note(self, datasets: list[str], profile: str) -> str:
        """A short description of the scoring convention(s) recorded for these datasets under `profile`."""
        c = self.conventions
        found = c[c.dataset.isin(datasets) & (c.profile == profile)]["convention"].unique()
        if len(found) == 0:
            return f"scoring profile {_code(profile)}"
        # runs differ in convention only when a rule differs: a profile that gained a metric is the same convention
        rules: dict[str, dict] = {}
        for text in found:
            conv = json.loads(text)
            rules.setdefault(json.dumps({k: v for k, v in conv.items() if k not in ("metrics", "description")},
                                        sort_keys=True), conv)
        parts = [_describe_convention(conv) for conv in rules.values()]
        if len(parts) == 1:
            return f"scoring profile {_code(profile)} ({parts[0]})"
        return f"scoring profile {_code(profile)}; WARNING: runs record {len(parts)} different conventions under it"

    def input_sizes(self) -> str:
        sizes = sorted({s for s in self.wide.get("input_size", pd.Series(dtype=object)).dropna()})
        return ", ".join(str(s).replace("x", "×") for s in sizes)

    def mean_count(self, dataset: str, method: str, profile: str, count: str) -> float:
        c = self.counts
        hit = c[(c.dataset == dataset) & (c.method == method) & (c.profile == profile) & (c["count"] == count)]
        return float(hit["value"].mean()) if len(hit) else math.nan


def _describe_convention(conv: dict) -> str:
    """The fields of a scoring convention that change this table's numbers, in a few words (all of them are in
    summary.md)."""
    metrics = set(conv.get("metrics") or [])
    parts = [f"{k} {conv[k]}" for k in ("resolution", "threshold") if k in conv]
    if "hd95" in conv and metrics & {"hd95", "hd95_monai", "hd95_penalised"}:
        parts.append(f"HD95 {conv['hd95']}, infinite cases: {conv.get('hd95_inf', '?')}")
    if "fbeta_beta2" in conv and metrics & {"max_fbeta", "mean_fbeta"}:
        parts.append(f"Fβ with β² = {conv['fbeta_beta2']} ({conv.get('fbeta_curve', '?')})")
    if "ber_reduction" in conv and metrics & {"ber", "s_ber", "n_ber"}:
        parts.append(f"BER {conv['ber_reduction']}")
    return ", ".join(parts) if parts else "no fields recorded"


def _metric_column(dataset: str, profile: str, metric: str) -> Column:
    info = metric_info(metric)
    arrow = "↓" if info.lower_better else "↑"
    return Column(info.plain + arrow, info.latex + tex(arrow), dataset, profile, metric, info.lower_better)


def _stat_caption(seeds: tuple[int, bool]) -> str:
    usual, marked = seeds
    text = (f"Our rows: mean ± sample standard deviation (ddof = 1) over n = {usual} seeds." if usual > 1 else
            "Our rows: one seed (n = 1), so no standard deviation.")
    if marked:
        text += " (n=k) marks values over a different number of seeds (n=1: no std)."
    return text


def _units_caption(metrics: list[str], grid: str) -> str:
    parts = []
    fractions = [metric_info(m).plain for m in metrics if metric_info(m).unit == "" and m in METRICS]
    if fractions:
        parts.append(f"{', '.join(fractions)} in [0, 1]")
    if any(m.startswith("hd95") for m in metrics):
        parts.append(f"HD95 in pixels of the scored grid{grid}")
    if any(m.endswith("ber") for m in metrics):
        parts.append("BER-type values in percent")
    text = "; ".join(parts)
    return (text[0].upper() + text[1:] + ". " if text else "") + "↑ higher is better, ↓ lower is better."


def paper_table(ctx: Context, table: paper.ReportedTable) -> Table | None:
    """Our rows beside the paper's reported rows for one of its tables, plus a Δ row (ours − reported SegDINO).

    Only datasets we have runs for get columns; None when we have none of the table's datasets.
    """
    datasets = [d for d in table.datasets if d in ctx.datasets]
    if not datasets:
        return None
    columns = [_metric_column(d, table.profile, m) for d in datasets for m in table.metrics]
    ours = Section(f"Ours: {ctx.title}", kind="ours")
    for method in ctx.methods(datasets):
        ours.rows.append((display_method(method), [
            ctx.stat(c.dataset, method, c.profile, c.metric, decimals(c.metric, c.profile)) for c in columns]))
    flag = "" if table.verified else "‡"
    verified = "" if table.verified else "; unverified‡"
    reported = Section(f"Reported in the paper (Table {table.number}{verified})", kind="reported",
                       note="" if table.verified else "unverified")
    for method in table.rows:
        values = table.values(method)
        cells = [Cell("value",
                      mean=math.nan if values[(c.dataset, c.metric)] is None else values[(c.dataset, c.metric)],
                      decimals=reported_decimals(c.metric, table)) for c in columns]
        label = method + flag if any(not c.missing for c in cells) else f"{method} (row missing)"
        reported.rows.append((label, cells))
    diff = Section("", kind="diff")
    ref = table.values(paper.SEGDINO)
    diff_cells = []
    for c in columns:
        mine = ctx.stat(c.dataset, "segdino", c.profile, c.metric, decimals(c.metric, c.profile))
        theirs = ref[(c.dataset, c.metric)]
        value = mine.mean - theirs if theirs is not None and not mine.missing else math.nan
        diff_cells.append(Cell("diff", mean=value, decimals=decimals(c.metric, c.profile)))
    diff.rows.append(("Δ SegDINO (ours − reported)", diff_cells))
    if table.alt_profile:   # the same comparison under the other reduction the literature uses (paper.TABLE4)
        alt_cells = []
        for c in columns:
            mine = ctx.stat(c.dataset, "segdino", table.alt_profile, c.metric, decimals(c.metric, table.alt_profile))
            theirs = ref[(c.dataset, c.metric)]
            known = c.metric in table.alt_metrics and theirs is not None and not mine.missing
            alt_cells.append(Cell("diff", mean=mine.mean - theirs if known else math.nan,
                                  decimals=decimals(c.metric, c.profile)))
        if any(not math.isnan(cell.mean) for cell in alt_cells):
            diff.rows.append((f"Δ SegDINO, {table.alt_profile}", alt_cells))

    names = ", ".join(display_dataset(d) for d in datasets)
    t = Table(
        key=f"{table.key}_{'medical' if table.key == 'table1' else datasets[0]}",
        title=f"{names} (paper Table {table.number})",
        caption="",
        columns=columns,
        sections=[ours, reported, diff],
        groups=[(display_dataset(d), len(table.metrics)) for d in datasets] if len(datasets) > 1 else [],
    )
    mark_best(t)
    uneven = unbold_uneven_hd95(ctx, t, ctx.methods(datasets))
    seeds = mark_seed_counts(t)
    grid = f" ({ctx.input_sizes()} network input)" if "network" in ctx.convention_note(datasets, table.profile) else ""
    sentences = [
        (f"{names}: ours versus the paper's Table {table.number}. Ours scored with "
         f"{ctx.convention_note(datasets, table.profile)}."),
        _stat_caption(seeds),
        _units_caption(list(table.metrics), grid),
        *_metric_notes(ctx, datasets, table.profile, list(table.metrics)),
        "Bold: best of our rows per column.",
        "Reported rows are copied from the paper: its own models and protocols (e.g. its U-Net is a CNN trained from "
        f"scratch, not a decoder on our {'frozen' if ctx.frozen else 'pretrained'} backbone)." if table.key == "table1"
        else
        "Reported rows are copied from the paper (their own models and protocols).",
        "Δ row: our SegDINO mean minus the paper's SegDINO (negative is better for ↓ columns)."
        + (f" Second Δ row: {', '.join(metric_info(m).plain for m in table.alt_metrics)} under profile "
           f"{_code(table.alt_profile)} instead (the other columns are the same under both)."
           if table.alt_profile and len(diff.rows) > 1 else ""),
        _selection_note(ctx, datasets),
        _reproduction_note(ctx),
    ]
    if table.note:
        sentences.append(table.note if table.verified else "‡ " + table.note)
    if table.key == "table1":
        sentences.append(_hd95_inf_note(ctx, datasets, table.profile))
    sentences.append(uneven)
    sentences.append(_undefined_note(t))
    t.caption = " ".join(s for s in sentences if s)
    return t


def _reproduction_note(ctx: Context) -> str:
    """"" when our rows follow the paper's recipe (every setting of segbench's `paper` preset, paper.RECIPE, as the
    runs' config.yaml records it, apart from those runs may differ in), else why the Δ row is no reproduction
    check, naming each setting that differs: a `paper` run at another size or for fewer epochs is no reproduction."""
    named = {"backbone.name": ctx.backbone, "run.preset": ctx.preset}   # the run directory's name says these
    known = {**(ctx.settings or {}), **named}
    # the SegDINO rows' head options (Context.from_runs): the paper's head has none
    recipe = {**paper.RECIPE, "decoder.options": {}}
    checked = recipe if ctx.settings is not None else {k: paper.RECIPE[k] for k in named}
    differ = [f"{key}={setting_text(known.get(key))} (paper: {setting_text(value)})"
              for key, value in checked.items() if setting_text(known.get(key)) != setting_text(value)]
    if "weights" in ctx.wide and (ctx.wide["weights"] == "random").any():
        differ.append("random backbone weights")
    if ctx.settings is None:
        differ.append("the other settings not recorded (no config.yaml)")
    if not differ:
        return ""
    return (f"Note: our rows do not follow the paper's recipe (preset {_code('paper')}): {'; '.join(differ)}; so the "
            "Δ row is no reproduction check.")


def _selection_note(ctx: Context, datasets: list[str], paper_table: bool = True) -> str:
    """Which images selected our models' epoch, per dataset, from the runs' split.json (load.py: val_rule,
    val_share): what was held out of training is a convention that moves a number, as the paper's public code
    trains on every training image and selects on the test split. Without split.json, the config's
    train.selection_split; "" when neither is recorded. paper_table False: one dataset's table, which needs neither
    the paper's code nor the dataset's name."""
    w = ctx.wide
    if "val_rule" not in w or w[w.dataset.isin(datasets)]["val_rule"].isna().all():
        return _selection_setting(ctx)
    kinds = (("selection on the test split", "the test split, the whole training split training (the public "
              "code's choice)"),
             ("official validation split", "its official validation split"),
             ("dataset fold file", "{share} of the training images, one fold of its fold file (seed mod {folds})"),
             ("seeded split", "{share} of the training images, held out per seed"),
             ("no selection", "none, the whole training split training"))
    parts = []
    for dataset in datasets:
        rows = w[w.dataset == dataset].dropna(subset=["val_rule"])
        if rows.empty:
            continue
        rules = rows["val_rule"].astype(str)
        share = f"{100 * rows['val_share'].astype(float).mean():.0f}%"
        folds = rules.str.extract(r"mod (\d+)\)")[0].dropna()
        text = next((template.format(share=share, folds=folds.iloc[0] if len(folds) else "?")
                     for prefix, template in kinds if rules.str.startswith(prefix).all()),
                    "; ".join(sorted(set(rules))))
        if dataset.startswith("folder/"):   # a folder dataset's validation split is its own val.txt
            text = text.replace("its official validation split", "its val.txt list")
        if dataset in ("vmd", "visha"):   # carved by video (benchmark.data.splits): no video in both
            text = text.replace("of the training images, held out per seed",
                                "of the training frames, as whole videos held out per seed")
        parts.append(f"{display_dataset(dataset)}: {text}" if paper_table else text)
    public = "" if any("the test split" in part for part in parts) or not paper_table else (
        f" (the paper's code trains on every training image and selects on the test split: preset "
        f"{_code('public-code')})")
    rules = w[w.dataset.isin(datasets)]["val_rule"].dropna().astype(str)
    last = rules.str.startswith("no selection")
    if last.all():
        return (f"Our models are the last training epoch, with no model selection and no images held out of "
                f"training{public}.")
    lead = "the epoch of best validation Dice" + (" or, with no validation split, the last epoch" if last.any() else "")
    return f"Our models are {lead}{public}; validation: {'; '.join(parts)}."


def _selection_setting(ctx: Context) -> str:
    """What selected the epoch by the runs' config.yaml alone (runs without split.json)."""
    return {"val": "Our models are the epoch of best validation Dice (how the validation split was made is not "
                   "recorded: no split.json).",
            "test": "Our models are the epoch of best Dice on the test split (the public code's choice).",
            "last": "Our models are the last training epoch, with no model selection.",
            }.get((ctx.settings or {}).get("train.selection_split"), "")


def _settings_note(ctx: Context) -> str:
    """The input size, and the settings in which these runs differ from their own preset (paper.preset_recipe), for
    the per-dataset tables (a paper table names those that differ from the paper's recipe: `_reproduction_note`)."""
    s = ctx.settings
    if s is None:
        return "Training settings not recorded (no config.yaml)."
    size = setting_text(s.get("data.size")) if s.get("data.size") is not None else None
    preset = paper.preset_recipe(ctx.preset) or {}
    named = ("backbone.name", "run.preset", "data.size")   # the caption's title says the first two
    differ = [f"{k}={setting_text(s.get(k))}" for k, v in preset.items()
              if k not in named and k in s and setting_text(s.get(k)) != setting_text(v)]
    text = "Trained" + (f" at {size}×{size}" if size else "")
    if differ:
        text += f" with preset {_code(ctx.preset)}'s settings except {', '.join(differ)}"
    return text + "." if size or differ else ""


def _undefined_note(table: Table) -> str:
    """"n/a" next to "--": a value every seed measured but found undefined (NaN or null in metrics.json) is not a
    value nobody measured, and an HD95 is undefined for a reason worth a line."""
    whole, partial = set(), set()
    for section in (s for s in table.sections if s.kind == "ours"):
        for _, cells in section.rows:
            for column, cell in zip(table.columns, cells):
                if cell.undefined:
                    (whole if cell.missing else partial).add(column.metric)
    notes = []
    if whole:
        names = ", ".join(metric_info(m).plain for m in sorted(whole, key=metric_order))
        why = ("infinite distances from empty predictions or ground truths left no finite mean"
               if all(m.startswith("hd95") for m in whole) else "no test image where it is defined, or no finite mean")
        notes.append(f"n/a: measured but undefined, null or NaN in metrics.json ({names}: {why}); -- not measured.")
    if partial:
        notes.append("A mean leaves out the seeds whose value is undefined (n=k marks it).")
    return " ".join(notes)


def _metric_notes(ctx: Context, datasets: list[str], profile: str, metrics: list[str]) -> list[str]:
    """What a column's name does not say: which accuracy Acc is, and why Precision can be best for a model that
    predicts nothing (an empty prediction has precision 1 under the eps and one rules, docs/conventions.md)."""
    notes = []
    if "acc" in metrics:
        notes.append("Acc is pixel accuracy, (TP + TN) / all pixels, not MirrorNet's TP / Np accuracy, which the "
                     f"{_code('mirror')} profile records as {_code('acc_mirror')}"
                     + (" (Acc (TP/Np) here)." if "acc_mirror" in metrics else "."))
    c = ctx.conventions
    rules = {json.loads(text).get("empty_rule", "eps")
             for text in c[c.dataset.isin(datasets) & (c.profile == profile)]["convention"]}
    if "precision" in metrics and rules - {"zero"}:
        notes.append("Precision: an empty prediction scores 1 (the profile's rule for 0/0, its empty_rule), so a "
                     "model that predicts almost nothing can be best in it; read it with Recall.")
    overlap = [m for m in ("dice", "iou") if m in metrics]
    n = ctx.counts
    both = n[n.dataset.isin(datasets) & (n.profile == profile) & (n["count"] == "both_empty")]
    if overlap and len(rules) == 1 and both["value"].sum() > 0:   # a correct empty prediction of an empty mask
        score = {"zero": "0", "one": "1", "eps": "1 (by the eps rule)"}.get(next(iter(rules)))
        if score:
            names = " and ".join(metric_info(m).plain for m in overlap)
            notes.append(f"{names}: an image whose ground truth and prediction are both empty scores {score} "
                         f"(the profile's empty_rule): {int(both['value'].sum())} such scores in all, summed over "
                         f"{plural(both['run'].nunique(), 'run')}.")
    empty = _empty_ground_truths(n, datasets, profile)
    if overlap and empty:   # a share of the test split where any predicted pixel scores 0 (some eval code skips them)
        notes.append("Test images with an empty ground truth: " + "; ".join(empty) + ".")
    return notes


def _empty_ground_truths(counts, datasets: list[str], profile: str) -> list[str]:
    """Per dataset, how many of its test images have an empty ground truth ("VMD-D: 12 of 80"), from the runs'
    gt_empty and n_images counts (one test split per dataset: the largest count of its runs); none where none."""
    out = []
    for dataset in datasets:
        rows = counts[(counts.dataset == dataset) & (counts.profile == profile)]
        empty, total = (rows[rows["count"] == name]["value"] for name in ("gt_empty", "n_images"))
        if len(empty) and empty.max() > 0:
            out.append(f"{display_dataset(dataset)}: {int(empty.max())}"
                       + (f" of {int(total.max())}" if len(total) else ""))
    return out


def _hd95_rules(ctx: Context, datasets: list[str], profile: str) -> set[str]:
    """The infinite-HD95 rules (drop, penalise, keep) the runs of these datasets recorded under `profile`."""
    v = ctx.conventions
    recorded = v[v.dataset.isin(datasets) & (v.profile == profile)]["convention"]
    return {json.loads(t).get("hd95_inf", "drop") for t in recorded}


def unbold_uneven_hd95(ctx: Context, table: Table, methods: list[str]) -> str:
    """Under the drop rule an HD95 mean leaves out the images with an infinite distance (an empty prediction), so a
    row that left out more of them rests on fewer images, often the easy ones: a model that predicts nothing on the
    hard images can look best. No bold in an HD95 column whose rows left out different numbers of images; returns
    the caption sentence that says so, with the numbers per run ("" when every row left out as many)."""
    notes = []
    for j, column in enumerate(table.columns):
        if column.metric not in ("hd95", "hd95_monai") or "drop" not in _hd95_rules(ctx, [column.dataset],
                                                                                    column.profile):
            continue
        dropped = [ctx.mean_count(column.dataset, m, column.profile, "hd95_inf") for m in methods]
        known = [d for d in dropped if not math.isnan(d)]
        if len({round(d, 2) for d in known}) < 2:
            continue
        for _, cells in (row for s in table.sections if s.kind == "ours" for row in s.rows):
            cells[j].bold = False
        counts = ", ".join(f"{display_method(m)} {d:g}" for m, d in zip(methods, dropped) if not math.isnan(d))
        where = display_dataset(column.dataset)
        if where not in {n[0] for n in notes}:
            notes.append((where, counts))
    if not notes:
        return ""
    return ("No bold for HD95 where the rows left out different numbers of images with an infinite HD95 (an empty "
            "prediction; the mean is over the others, so fewer images can look better); left out per run: "
            + "; ".join(f"{where}: {counts}" for where, counts in notes) + ".")


def _hd95_inf_note(ctx: Context, datasets: list[str], profile: str) -> str:
    """How the HD95 column treats images with one empty mask (infinite distance), and how many there were."""
    c = ctx.counts
    hit = c[c.dataset.isin(datasets) & (c.profile == profile) & (c["count"] == "hd95_inf")]
    if hit.empty or hit["value"].sum() == 0:
        return ""
    rules = _hd95_rules(ctx, datasets, profile)
    what = {"drop": "leaves them out of the mean, as the public code does",
            "penalise": "scores them at the penalty value",
            "keep": "keeps them, so a mean with one is infinite"}
    how = what.get(rules.pop(), "treats them as recorded") if len(rules) == 1 else "mixes rules across runs"
    return (f"Images with an empty prediction or ground truth have an infinite HD95; this column {how}: "
            f"{plural(int(hit['value'].sum()), 'such image')} over {plural(hit['run'].nunique(), 'run')} (per run "
            "in the per-dataset tables, with HD95 (pen.) scoring them at a penalty).")


def dataset_tables(ctx: Context, dataset: str) -> list[Table]:
    """Every metric recorded for one dataset, one table per scoring profile (the dataset's paper profile first).

    The generic tables: an appendix for the paper's datasets, the main result for users' own datasets.
    """
    s = ctx.summary[ctx.summary.dataset == dataset]
    profiles = sorted(s["profile"].unique(), key=lambda p: (p != _main_profile(dataset), p))
    return [dataset_table(ctx, dataset, profile) for profile in profiles]


def dataset_table(ctx: Context, dataset: str, profile: str) -> Table:
    """Every metric of one scoring profile for one dataset, plus the test-image and infinite-HD95 counts."""
    s = ctx.summary[(ctx.summary.dataset == dataset) & (ctx.summary.profile == profile)]
    metrics = sorted(s["metric"].unique(), key=metric_order)
    columns = [_metric_column(dataset, profile, m) for m in metrics]
    methods = ctx.methods([dataset])
    ours = Section("", kind="ours")
    for method in methods:
        ours.rows.append((display_method(method), [
            ctx.stat(dataset, method, profile, c.metric, decimals(c.metric, profile)) for c in columns]))
    counts = ctx.counts[(ctx.counts.dataset == dataset) & (ctx.counts.profile == profile)]
    for name in [c for c in COUNT_LABELS if c in set(counts["count"])]:  # every count is in results.csv
        label = COUNT_LABELS[name]
        columns.append(Column(label, tex(label), dataset, profile, f"count.{name}", None))
        for method, (_, cells) in zip(methods, ours.rows):
            v = ctx.mean_count(dataset, method, profile, name)
            cells.append(Cell("value", mean=v, decimals=0 if float(v).is_integer() else 1))
    t = Table(key=f"dataset_{file_safe(dataset)}__{file_safe(profile)}",
              title=f"{display_dataset(dataset)}, profile {profile}: all recorded metrics",
              caption="", columns=columns, sections=[ours])
    mark_best(t)
    uneven = unbold_uneven_hd95(ctx, t, methods)
    seeds = mark_seed_counts(t)
    t.caption = " ".join(s for s in [
        (f"{display_dataset(dataset)}: every metric recorded under {ctx.convention_note([dataset], profile)}; "
         f"{ctx.title}."),
        _settings_note(ctx),
        _selection_note(ctx, [dataset], paper_table=False),
        _stat_caption(seeds),
        _units_caption(metrics, ""),
        *_metric_notes(ctx, [dataset], profile, metrics),
        "Bold: best per column." + (f" {' and '.join(c.label for c in columns[len(metrics):])}: mean per run."
                                    if len(columns) > len(metrics) else ""),
        uneven,
        _undefined_note(t),
    ] if s)
    return t


COUNT_LABELS = {"n_images": "Images", "hd95_inf": "HD95 inf/run"}


def _main_profile(dataset: str) -> str:
    table = paper.table_for(dataset)
    return table.profile if table else "segdino"


def efficiency_table(ctx: Context) -> Table | None:
    """Trainable/frozen parameters, GFLOPs and latency per method (profile.json), beside the paper's 2.21M / 53 FPS."""
    w = ctx.wide
    if w.empty or w["trainable_params"].isna().all():
        return None
    spec = [  # (column of the wide frame, header, scale, decimals, lower is better / None: no best)
        ("trainable_params", "Trainable↓", 1e-6, 2, True),
        ("frozen_params", "Frozen", 1e-6, 2, None),
        ("decoder_gflops", "Decoder↓", 1, 2, True),
        ("total_gflops", "Total↓", 1, 2, True),
        ("batch1_ms", "Latency (ms)↓", 1, 2, True),
        ("fps", "FPS↑", 1, 1, False),
        ("throughput_img_s", "img/s↑", 1, 0, False),
    ]
    groups = [("Parameters (M)", 2), ("GFLOPs per image", 2), ("Batch 1", 2), ("Batched", 1)]
    speed_note = ""
    if ctx.speed is not None:
        w, speed_note = _with_speed(w, ctx.speed, ctx.backbone)
    w = w.assign(fps=1000.0 / w["batch1_ms"].astype(float))
    columns = [Column(label, tex(label), metric=key, lower_better=lb) for key, label, _, _, lb in spec]
    ours = Section(f"Ours: {ctx.title}", kind="ours")
    notes = []
    for method in sorted(w["method"].unique(), key=method_sort_key):
        rows = w[w.method == method]
        cells = []
        for key, _, scale, places, _ in spec:
            values = rows[key].dropna().astype(float)
            if values.empty:
                cells.append(Cell("value", decimals=places))
                continue
            if values.nunique() > 1 and key in ("trainable_params", "frozen_params"):
                notes.append(f"{display_method(method)} {key.replace('_', ' ')} vary across runs "
                             f"({values.min():.0f}–{values.max():.0f}; mean shown)")
            mean = float(values.mean()) * scale
            cells.append(Cell("value", mean=mean, decimals=places if abs(mean) >= 100 or places else 1))
        ours.rows.append((display_method(method), cells))
    reported = Section("Reported in the paper", kind="reported")
    eff = paper.EFFICIENCY
    cells = [Cell("value", decimals=places) for *_, places, _ in spec]
    cells[0] = Cell("value", mean=eff["trainable_params"] * 1e-6, decimals=2)
    cells[5] = Cell("value", mean=eff["fps"], decimals=0, dagger="†")
    reported.rows.append((eff["method"], cells))
    t = Table(key="efficiency", title="Efficiency", caption="", columns=columns, sections=[ours, reported],
              groups=groups)
    mark_best(t)
    tool = sorted(w["flops_tool"].dropna().unique())
    devices = sorted({f"{d} ({t_})" for d, t_ in zip(w["latency_device"], w["latency_dtype"]) if isinstance(d, str)})
    batches = sorted({int(b) for b in w["throughput_batch"].dropna()})
    sentences = [
        f"Efficiency of our decoders on backbone {ctx.backbone} (mean over runs of profile.json).",
        "Parameters in millions; only the decoder trains." if ctx.frozen else
        "Parameters in millions; the backbone trains too (train.freeze_backbone=false), so Trainable counts it.",
        f"GFLOPs per image at {ctx.input_sizes() or 'the recorded input size'}, FLOPs = 2 × MACs"
        + (f", counted with {_code(tool[0])}" if len(tool) == 1 else "") + ".",
        speed_note or
        (f"Latency at batch 1 and throughput at batch {', '.join(map(str, batches)) or '?'} on "
         f"{'; '.join(devices)}; FPS = 1000 / latency at batch 1." if devices else "No latency was measured."),
        "† The paper reports 53 FPS on a GPU without batch size or resolution, and no FLOPs; not comparable to ours.",
        "Bold: best of our rows; -- not measured.",
    ]
    if notes:
        sentences.append("Note: " + "; ".join(notes) + ".")
    t.caption = " ".join(sentences)
    return t


def speed_contents(speed: pd.DataFrame) -> str:
    """What a speed table times, for messages: its backbones and methods."""
    def names(column: str) -> str:
        return ", ".join(sorted(speed[column].dropna().astype(str).unique())) or "none"
    return f"backbones {names('backbone')}; methods {names('method')}"


def timed_rows(speed: pd.DataFrame, backbone: str, methods) -> pd.DataFrame:
    """The rows of a speed table that time one of `methods` on `backbone`."""
    s = speed[(speed["backbone"] == backbone) & speed["method"].isin(list(methods))].copy()
    return s[pd.to_numeric(s["batch1_ms"], errors="coerce").notna()]


def _with_speed(w: pd.DataFrame, speed: pd.DataFrame, backbone: str) -> tuple[pd.DataFrame, str]:
    """Replace per-run latency with one variant of a `segbench profile` table: the (device, dtype, compile, size)
    measured for the most of our methods (ties: the fastest), so every method is timed the same way."""
    s = timed_rows(speed, backbone, w["method"])
    if s.empty:
        return w, (f"The speed table given has no latency for backbone {backbone} and these methods (it holds "
                   f"{speed_contents(speed)}); latency here comes from the runs' own profile.json, where measured.")
    keys = [k for k in ("device_name", "device", "dtype", "compile", "size") if k in s.columns]
    if not keys:   # a hand-made table without variant columns: one variant
        s["device"], keys = "?", ["device"]
    s[keys] = s[keys].fillna("?").astype(str)
    ranked = s.groupby(keys).agg(n=("method", "nunique"), ms=("batch1_ms", "mean")).reset_index()
    best = ranked.sort_values(["n", "ms"], ascending=[False, True]).iloc[0]
    chosen = s[(s[keys] == best[keys]).all(axis=1)].groupby("method").first()
    w = w.drop(columns=["batch1_ms", "throughput_img_s", "throughput_batch"], errors="ignore")
    w = w.join(chosen[[c for c in ("batch1_ms", "throughput_img_s", "throughput_batch") if c in chosen]],
               on="method")
    for column in ("batch1_ms", "throughput_img_s", "throughput_batch"):
        if column not in w:
            w[column] = math.nan
    where = ", ".join(f"{k} {best[k]}" for k in keys)
    batches = sorted({str(int(b)) for b in w["throughput_batch"].dropna()})
    return w, (f"Latency at batch 1 and throughput at batch {', '.join(batches) or '?'} from the speed table "
               f"(`segbench profile`), {where}; FPS = 1000 / latency at batch 1.")


def coverage_table(runs_wide: pd.DataFrame, skipped: list, backbone: str, preset: str, recipe: str = "") -> Table:
    """Seeds used per dataset x method (and how many were skipped), so a reader sees what each mean rests on.

    A skipped run has no settings read, so it counts in every recipe of its backbone and preset, and a skipped
    folder run under every folder dataset (its folder's name is in the config.yaml that was not read)."""
    datasets = sorted(runs_wide["dataset"].unique(), key=dataset_sort_key)
    methods = sorted(runs_wide["method"].unique(), key=method_sort_key)
    skipped_count = Counter()
    for s in skipped:
        parts = s.run.split("/", 1)
        # a moved-aside corrupt folder is not a missing seed: its run was redone under the usual name
        if len(parts) == 2 and f"__{backbone}__{preset}__s" in parts[1] and ".corrupt-" not in parts[1]:
            skipped_count[(parts[0], parts[1].split("__", 1)[0])] += 1
    columns = [Column(display_dataset(d), tex(display_dataset(d)), dataset=d) for d in datasets]
    section = Section("", kind="plain")
    for m in methods:
        cells = []
        for d in datasets:
            seeds = sorted(runs_wide[(runs_wide.dataset == d) & (runs_wide.method == m)]["seed"])
            text = ("s" + ",".join(map(str, seeds))) if seeds else "--"
            if skipped := skipped_count[(d.partition("/")[0], m)]:   # "folder/mydata": the runs dir's "folder"
                text += f" (+{skipped} skipped)"
            cells.append(Cell("text", text=text))
        section.rows.append((display_method(m), cells))
    return Table(key="coverage", title="Runs used", columns=columns, sections=[section], caption=(
        f"Seeds used per dataset and method (backbone {backbone}, preset {preset}{', ' + recipe if recipe else ''}); "
        "skipped runs are listed with their reasons in summary.md and runs_used.txt"
        + ("; a skipped run's settings are not read, so it counts in every section of this backbone and preset."
           if recipe else ".")))


def build_tables(ctx: Context) -> list[Table]:
    """Paper-style tables for the datasets the paper covers, then efficiency, then one generic table per dataset."""
    tables = [t for t in (paper_table(ctx, rt) for rt in paper.TABLES.values()) if t is not None]
    eff = efficiency_table(ctx)
    if eff is not None:
        tables.append(eff)
    tables += [t for d in ctx.datasets for t in dataset_tables(ctx, d)]
    return tables
