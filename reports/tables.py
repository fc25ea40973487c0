"""Results tables laid out like the paper's, rendered as LaTeX (booktabs), Markdown and CSV.

The only place numbers are rounded and bolded. A table is first built as data (`Table`: column groups, row
sections, cells holding mean/std/n) and then rendered three ways, so the three versions never disagree.
Conventions, stated in every caption: mean ± sample standard deviation (ddof = 1) over seeds; bold marks the best
of *our* rows per column (reported rows come from other protocols); missing cells are "--", never 0.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from reports import paper
from reports.load import Runs, dataset_sort_key, method_sort_key, summarise

METHOD_NAMES = {"segdino": "SegDINO", "unet": "UNet", "upernet": "UPerNet", "dpt": "DPT"}
DATASET_NAMES = {
    "tn3k": "TN3K", "kvasir": "Kvasir-SEG", "isic2017": "ISIC 2017", "msd": "MSD", "vmd": "VMD-D", "visha": "ViSha",
}


@dataclass(frozen=True)
class Metric:
    plain: str  # label in Markdown/figures (Unicode allowed)
    latex: str  # label in LaTeX
    lower_better: bool
    unit: str  # "" for values in [0, 1]


METRICS: dict[str, Metric] = {
    "dice": Metric("DSC", "DSC", False, ""),
    "iou": Metric("IoU", "IoU", False, ""),
    "hd95": Metric("HD95", "HD95", True, "px"),
    "hd95_monai": Metric("HD95 (MONAI)", "HD95\\textsubscript{MONAI}", True, "px"),
    "hd95_penalised": Metric("HD95 (pen.)", "HD95\\textsubscript{pen}", True, "px"),
    "acc": Metric("Acc", "Acc", False, ""),
    "max_fbeta": Metric("max Fβ", "$F_\\beta^{\\max}$", False, ""),
    "mean_fbeta": Metric("mean Fβ", "$F_\\beta^{\\mathrm{mean}}$", False, ""),
    "mae": Metric("MAE", "MAE", True, ""),
    "ber": Metric("BER", "BER", True, "%"),
    "s_ber": Metric("S-BER", "S-BER", True, "%"),
    "n_ber": Metric("N-BER", "N-BER", True, "%"),
    "precision": Metric("Precision", "Precision", False, ""),
    "recall": Metric("Recall", "Recall", False, ""),
}
SALIENCY_PROFILES = ("mirror", "shadow")  # the mirror/shadow literature prints 3 decimals (paper Tables 2-4)


def display_method(key: str) -> str:
    """segdino -> SegDINO, unet-small -> UNet (small); unknown keys as they are."""
    base, small = (key[: -len("-small")], True) if key.endswith("-small") else (key, False)
    name = METHOD_NAMES.get(base, base)
    return f"{name} (small)" if small and base in METHOD_NAMES else (name if not small else key)


def display_dataset(key: str) -> str:
    return DATASET_NAMES.get(key, key)


def metric_info(name: str) -> Metric:
    """Known metrics by name; unknown ones are shown as-is, higher-is-better, no unit."""
    return METRICS.get(name, Metric(name, tex(name), False, ""))


def metric_order(name: str) -> tuple[int, str]:
    names = list(METRICS)
    return (names.index(name), "") if name in names else (len(names), name)


def decimals(metric: str, profile: str) -> int:
    if metric.startswith("hd95") or metric.endswith("ber"):
        return 2
    if metric == "mae":
        return 4
    return 3 if profile in SALIENCY_PROFILES else 4


def reported_decimals(metric: str, table: paper.ReportedTable) -> int:
    if metric.startswith("hd95") or metric.endswith("ber"):
        return 2
    return 4 if table.key == "table1" else 3


# --------------------------------------------------------------------------------------------------------------
# Text helpers: captions are written once in Unicode and converted for LaTeX.

_TEX_ESCAPES = {"\\": r"\textbackslash{}", "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}",
                "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_TEX_SYMBOLS = {"±": r"$\pm$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "×": r"$\times$", "−": r"$-$",
                "†": r"$^\dagger$", "‡": r"$^\ddagger$", "Δ": r"$\Delta$", "≥": r"$\geq$", "β": r"$\beta$",
                "²": r"\textsuperscript{2}", "–": "--", "—": "---", "≈": r"$\approx$"}


def tex(text: str) -> str:
    """Escape LaTeX specials and turn the few Unicode symbols captions use into LaTeX (plain pdflatex, OT1).

    Other non-ASCII characters (users' dataset names) are reduced to ASCII so the document always compiles.
    """
    out = []
    for ch in str(text):
        if ch in _TEX_ESCAPES:
            out.append(_TEX_ESCAPES[ch])
        elif ch in _TEX_SYMBOLS:
            out.append(_TEX_SYMBOLS[ch])
        elif ord(ch) > 127:
            out.append(unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode() or "?")
        else:
            out.append(ch)
    return "".join(out)


def _code(text: str) -> str:
    """Mark an identifier (key, profile name) as code: `x` in Markdown; converted to \\texttt for LaTeX."""
    return f"`{text}`"


def _caption_tex(text: str) -> str:
    parts = re.split(r"`([^`]*)`", text)
    return "".join(tex(p) if i % 2 == 0 else r"\texttt{" + tex(p) + "}" for i, p in enumerate(parts))


# --------------------------------------------------------------------------------------------------------------
# The table model.


@dataclass
class Cell:
    """One table cell. kind: "stat" (ours: mean ± std over n seeds), "value" (a reported number), "diff" (signed),
    "text" (literal). NaN means missing and renders as "--"."""

    kind: str = "stat"
    mean: float = math.nan
    std: float = math.nan
    n: int = 0
    decimals: int = 4
    text: str = ""
    bold: bool = False
    mark: str = ""  # note shown after the value, e.g. "n=1" (a cell over an unusual number of seeds)
    dagger: str = ""  # "†"/"‡" after a reported value

    @property
    def missing(self) -> bool:
        return self.kind != "text" and (self.mean is None or (isinstance(self.mean, float) and math.isnan(self.mean)))


@dataclass(frozen=True)
class Column:
    label: str  # plain
    label_tex: str
    dataset: str = ""
    profile: str = ""
    metric: str = ""
    lower_better: bool | None = None  # None: no "best" for this column


@dataclass
class Section:
    title: str  # "" for no heading row
    rows: list[tuple[str, list[Cell]]] = field(default_factory=list)  # (row label, one cell per column)
    kind: str = "ours"  # ours | reported | diff | plain
    note: str = ""  # e.g. "unverified"; a column of the CSV form


@dataclass
class Table:
    key: str  # file stem
    title: str
    caption: str  # Unicode, `code` spans allowed
    columns: list[Column]
    sections: list[Section]
    groups: list[tuple[str, int]] = field(default_factory=list)  # header groups over the columns: (label, span)
    row_header: str = "Method"

    def ours_cells(self):
        for section in self.sections:
            if section.kind == "ours":
                for _, cells in section.rows:
                    yield from cells


def _fmt(value: float, places: int, signed: bool = False) -> str:
    if value is None or math.isnan(value):
        return "--"
    if math.isinf(value):
        return ("+" if signed and value > 0 else "-" if value < 0 else "") + "inf"
    text = f"{value:+.{places}f}" if signed else f"{value:.{places}f}"
    return f"{0.0:.{places}f}" if float(text) == 0 else text  # never "-0.000" or "+0.000"


def cell_plain(cell: Cell, markdown: bool = False) -> str:
    if cell.kind == "text":
        return cell.text
    if cell.missing:
        return "--"
    if cell.kind == "diff":
        return _fmt(cell.mean, cell.decimals, signed=True)
    mean = _fmt(cell.mean, cell.decimals)
    if cell.bold and markdown:
        mean = f"**{mean}**"
    text = mean
    if cell.kind == "stat" and not math.isnan(cell.std):
        text += f" ± {_fmt(cell.std, cell.decimals)}"
    if cell.mark:
        text += f" ({cell.mark})"
    return text + cell.dagger


def _num_tex(text: str) -> str:
    return text.replace("-", "$-$").replace("inf", r"$\infty$")


def cell_tex(cell: Cell) -> str:
    """The cell's main line in LaTeX; the std of a "stat" cell goes on a second line (`std_tex`)."""
    if cell.kind == "text":
        return tex(cell.text)
    if cell.missing:
        return "--"
    if cell.kind == "diff":
        return _num_tex(_fmt(cell.mean, cell.decimals, signed=True))
    mean = _num_tex(_fmt(cell.mean, cell.decimals))
    text = r"\textbf{" + mean + "}" if cell.bold else mean
    return text + tex(cell.dagger)


def std_tex(cell: Cell) -> str:
    """`±std` (and `(n=k)` when marked) in small type for the line under a "stat" cell; "" when neither."""
    if cell.kind != "stat" or cell.missing:
        return ""
    parts = [] if math.isnan(cell.std) else [r"$\pm$" + _num_tex(_fmt(cell.std, cell.decimals))]
    if cell.mark:
        parts.append(f"({tex(cell.mark)})")
    return r"{\scriptsize " + " ".join(parts) + "}" if parts else ""


def mark_best(table: Table) -> None:
    """Bold the best of our rows per column (ties at the displayed precision all bold; needs two or more values)."""
    for j, column in enumerate(table.columns):
        if column.lower_better is None:
            continue
        cells = [cells[j] for s in table.sections if s.kind == "ours" for _, cells in s.rows]
        cells = [c for c in cells if c.kind in ("stat", "value") and not c.missing]
        if len(cells) < 2:
            continue
        shown = [float(_fmt(c.mean, c.decimals)) if math.isfinite(c.mean) else c.mean for c in cells]
        best = min(shown) if column.lower_better else max(shown)
        for cell, value in zip(cells, shown):
            cell.bold = value == best


def mark_seed_counts(table: Table) -> tuple[int, bool]:
    """Mark our values over an unusual number of seeds; returns (the table's usual count, whether any was marked).

    A row whose values all rest on the same unusual count is marked once, on its label ("UNet (n=2)"); otherwise
    each such cell is marked.
    """
    counts = Counter(c.n for c in table.ours_cells() if c.kind == "stat" and not c.missing)
    if not counts:
        return 0, False
    usual = max(counts.items(), key=lambda kv: (kv[1], kv[0]))[0]
    marked = False
    for section in (s for s in table.sections if s.kind == "ours"):
        for i, (label, cells) in enumerate(section.rows):
            stats = [c for c in cells if c.kind == "stat" and not c.missing]
            ns = {c.n for c in stats}
            if ns == {usual} or not ns:
                continue
            marked = True
            if len(ns) == 1:
                section.rows[i] = (f"{label} (n={ns.pop()})", cells)
                continue
            for cell in stats:
                if cell.n != usual:
                    cell.mark = f"n={cell.n}"
    return usual, marked


# --------------------------------------------------------------------------------------------------------------
# Building tables from the summary frame (reports.load.summarise).


@dataclass
class Context:
    """What a table needs besides the numbers: the recipe group and the recorded conventions/counts/profiles."""

    backbone: str
    preset: str
    summary: pd.DataFrame  # summarise() output for this backbone/preset
    conventions: pd.DataFrame  # load.Runs.conventions for this backbone/preset
    counts: pd.DataFrame  # load.Runs.counts for this backbone/preset
    wide: pd.DataFrame  # load.Runs.wide for this backbone/preset
    speed: pd.DataFrame | None = None  # rows of a `segbench profile` speed table (load.read_speed), optional

    @classmethod
    def from_runs(cls, runs: Runs, backbone: str, preset: str, speed: pd.DataFrame | None = None) -> Context:
        """The context for one backbone/preset group of a loaded runs directory."""
        def pick(frame: pd.DataFrame) -> pd.DataFrame:
            if frame.empty:
                return frame
            return frame[(frame.backbone == backbone) & (frame.preset == preset)].reset_index(drop=True)

        tidy = pick(runs.tidy)
        return cls(backbone, preset, summarise(tidy), pick(runs.conventions), pick(runs.counts), pick(runs.wide),
                   speed)

    @property
    def datasets(self) -> list[str]:
        return sorted(self.summary["dataset"].unique(), key=dataset_sort_key)

    def methods(self, datasets: list[str] | None = None) -> list[str]:
        frame = self.summary if datasets is None else self.summary[self.summary["dataset"].isin(datasets)]
        return sorted(frame["method"].unique(), key=method_sort_key)

    def stat(self, dataset: str, method: str, profile: str, metric: str, places: int) -> Cell:
        s = self.summary
        hit = s[(s.dataset == dataset) & (s.method == method) & (s.profile == profile) & (s.metric == metric)]
        if hit.empty or hit.iloc[0]["n"] == 0:
            return Cell("stat", decimals=places)
        row = hit.iloc[0]
        return Cell("stat", mean=float(row["mean"]), std=float(row["std"]), n=int(row["n"]), decimals=places)

    def convention_note(self, datasets: list[str], profile: str) -> str:
        """A short description of the scoring convention(s) recorded for these datasets under `profile`."""
        c = self.conventions
        found = c[c.dataset.isin(datasets) & (c.profile == profile)]["convention"].unique()
        if len(found) == 0:
            return f"scoring profile {_code(profile)}"
        parts = [_describe_convention(json.loads(text)) for text in found]
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
    ours = Section(f"Ours: backbone {ctx.backbone}, preset {ctx.preset}", kind="ours")
    for method in ctx.methods(datasets):
        ours.rows.append((display_method(method), [
            ctx.stat(c.dataset, method, c.profile, c.metric, decimals(c.metric, c.profile)) for c in columns]))
    flag = "" if table.verified else "‡"
    verified = "" if table.verified else "; unverified‡"
    reported = Section(f"Reported in the paper (Table {table.number}{verified})", kind="reported",
                       note="" if table.verified else "unverified")
    for method in table.rows:
        values = table.values(method)
        cells = [Cell("value", mean=math.nan if values[(c.dataset, c.metric)] is None else values[(c.dataset, c.metric)],
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
    seeds = mark_seed_counts(t)
    grid = f" ({ctx.input_sizes()} network input)" if "network" in ctx.convention_note(datasets, table.profile) else ""
    sentences = [
        (f"{names}: ours versus the paper's Table {table.number}. Ours scored with "
         f"{ctx.convention_note(datasets, table.profile)}."),
        _stat_caption(seeds),
        _units_caption(list(table.metrics), grid),
        "Bold: best of our rows per column.",
        "Reported rows are copied from the paper: its own models and protocols (e.g. its U-Net is a CNN trained from "
        "scratch, not a decoder on our frozen backbone)." if table.key == "table1" else
        "Reported rows are copied from the paper (their own models and protocols).",
        "Δ row: our SegDINO mean minus the paper's SegDINO (negative is better for ↓ columns).",
    ]
    if (ctx.backbone, ctx.preset) != (paper.EFFICIENCY["backbone"], "paper"):
        sentences.append(f"Note: our rows use backbone {_code(ctx.backbone)} and preset {_code(ctx.preset)}, not the "
                         "paper's recipe (dinov3_vits16, preset paper), so the Δ row is no reproduction check.")
    if not table.verified:
        sentences.append("‡ " + table.note)
    if table.key == "table1":
        sentences.append(_hd95_inf_note(ctx, datasets, table.profile))
    t.caption = " ".join(s for s in sentences if s)
    return t


def _hd95_inf_note(ctx: Context, datasets: list[str], profile: str) -> str:
    """How the HD95 column treats images with one empty mask (infinite distance), and how many there were."""
    c = ctx.counts
    hit = c[c.dataset.isin(datasets) & (c.profile == profile) & (c["count"] == "hd95_inf")]
    if hit.empty or hit["value"].sum() == 0:
        return ""
    v = ctx.conventions
    rules = {json.loads(t).get("hd95_inf", "drop")
             for t in v[v.dataset.isin(datasets) & (v.profile == profile)]["convention"]}
    what = {"drop": "leaves them out of the mean, as the public code does",
            "penalise": "scores them at the penalty value",
            "keep": "keeps them, so a mean with one is infinite"}
    how = what.get(rules.pop(), "treats them as recorded") if len(rules) == 1 else "mixes rules across runs"
    return (f"Images with an empty prediction or ground truth have an infinite HD95; this column {how}: "
            f"{int(hit['value'].sum())} such images over {hit['run'].nunique()} runs (per run in the per-dataset "
            "tables, with HD95 (pen.) scoring them at a penalty).")


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
    seeds = mark_seed_counts(t)
    t.caption = " ".join([
        (f"{display_dataset(dataset)}: every metric recorded under {ctx.convention_note([dataset], profile)}; "
         f"backbone {ctx.backbone}, preset {ctx.preset}."),
        _stat_caption(seeds),
        _units_caption(metrics, ""),
        "Bold: best per column." + (f" {' and '.join(c.label for c in columns[len(metrics):])}: mean per run."
                                    if len(columns) > len(metrics) else ""),
    ])
    return t


COUNT_LABELS = {"n_images": "Images", "hd95_inf": "HD95 inf/run"}


def _main_profile(dataset: str) -> str:
    table = paper.table_for(dataset)
    return table.profile if table else "segdino"


def file_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)


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
    ours = Section(f"Ours: backbone {ctx.backbone}, preset {ctx.preset}", kind="ours")
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
        "Parameters in millions; only the decoder trains.",
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


def _with_speed(w: pd.DataFrame, speed: pd.DataFrame, backbone: str) -> tuple[pd.DataFrame, str]:
    """Replace per-run latency with one variant of a `segbench profile` table: the (device, dtype, compile, size)
    measured for the most of our methods (ties: the fastest), so every method is timed the same way."""
    s = speed[(speed["backbone"] == backbone) & speed["method"].isin(w["method"])].copy()
    s = s[pd.to_numeric(s["batch1_ms"], errors="coerce").notna()]
    if s.empty:
        return w, ""
    keys = [k for k in ("device_name", "device", "dtype", "compile", "size") if k in s.columns]
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


def coverage_table(runs_wide: pd.DataFrame, skipped: list, backbone: str, preset: str) -> Table:
    """Seeds used per dataset x method (and how many were skipped), so a reader sees what each mean rests on."""
    datasets = sorted(runs_wide["dataset"].unique(), key=dataset_sort_key)
    methods = sorted(runs_wide["method"].unique(), key=method_sort_key)
    skipped_count = Counter()
    for s in skipped:
        parts = s.run.split("/", 1)
        if len(parts) == 2 and f"__{backbone}__{preset}__s" in parts[1]:
            skipped_count[(parts[0], parts[1].split("__", 1)[0])] += 1
    columns = [Column(display_dataset(d), tex(display_dataset(d)), dataset=d) for d in datasets]
    section = Section("", kind="plain")
    for m in methods:
        cells = []
        for d in datasets:
            seeds = sorted(runs_wide[(runs_wide.dataset == d) & (runs_wide.method == m)]["seed"])
            text = ("s" + ",".join(map(str, seeds))) if seeds else "--"
            if skipped_count[(d, m)]:
                text += f" (+{skipped_count[(d, m)]} skipped)"
            cells.append(Cell("text", text=text))
        section.rows.append((display_method(m), cells))
    return Table(key="coverage", title="Runs used", columns=columns, sections=[section], caption=(
        f"Seeds used per dataset and method (backbone {backbone}, preset {preset}); skipped runs are listed with "
        "their reasons in summary.md and runs_used.txt."))


def build_tables(ctx: Context) -> list[Table]:
    """Paper-style tables for the datasets the paper covers, then efficiency, then one generic table per dataset."""
    tables = [t for t in (paper_table(ctx, rt) for rt in paper.TABLES.values()) if t is not None]
    eff = efficiency_table(ctx)
    if eff is not None:
        tables.append(eff)
    tables += [t for d in ctx.datasets for t in dataset_tables(ctx, d)]
    return tables


# --------------------------------------------------------------------------------------------------------------
# Rendering.


def to_latex(table: Table) -> str:
    """A booktabs `table` float; needs \\usepackage{booktabs,graphicx}. Shrinks to the line width only if wider.

    Our rows take two lines: the mean (bold if best), then ±std and (n=k) if over an unusual number of seeds.
    """
    ncol = len(table.columns) + 1
    lines = [
        "% Generated by segbench reports; do not edit by hand. Needs \\usepackage{booktabs} and \\usepackage{graphicx}.",
        "\\begin{table}[htbp]",
        "\\centering",
        f"\\caption{{{_caption_tex(table.caption)}}}",
        f"\\label{{tab:segbench-{table.key}}}",
        "\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}{%",
        f"\\begin{{tabular}}{{l{'c' * len(table.columns)}}}",
        "\\toprule",
    ]
    if table.groups:
        heads, rules, start = [""], [], 2
        for label, span in table.groups:
            heads.append(f"\\multicolumn{{{span}}}{{c}}{{{tex(label)}}}")
            rules.append(f"\\cmidrule(lr){{{start}-{start + span - 1}}}")
            start += span
        lines.append(" & ".join(heads) + " \\\\")
        lines.append(" ".join(rules))
    lines.append(" & ".join([tex(table.row_header)] + [c.label_tex for c in table.columns]) + " \\\\")
    for section in table.sections:
        lines.append("\\midrule")
        if section.title:
            lines.append(f"\\multicolumn{{{ncol}}}{{l}}{{\\textit{{{tex(section.title)}}}}} \\\\")
        for label, cells in section.rows:
            lines.append(" & ".join([tex(label)] + [cell_tex(c) for c in cells]) + " \\\\")
            stds = [std_tex(c) for c in cells]
            if any(stds):  # std under the mean keeps wide tables (Table 1) at their natural size
                lines.append(" & ".join([""] + stds) + " \\\\[1pt]")
    lines += ["\\bottomrule", "\\end{tabular}}", "\\end{table}", ""]
    return "\n".join(lines)


def to_markdown(table: Table) -> str:
    """A GitHub Markdown table with its caption above it (the caption names the table); section headings become
    italic rows."""
    group_of = []
    for label, span in table.groups:
        group_of += [label] * span
    headers = [table.row_header] + [f"{group_of[i]} {c.label}" if group_of else c.label
                                    for i, c in enumerate(table.columns)]
    lines = [table.caption, "", "| " + " | ".join(headers) + " |",
             "|" + "|".join([":---"] + ["---:"] * len(table.columns)) + "|"]
    for section in table.sections:
        if section.title:
            lines.append(f"| *{section.title}* |" + " |" * len(table.columns))
        for label, cells in section.rows:
            lines.append("| " + " | ".join([label] + [cell_plain(c, markdown=True) for c in cells]) + " |")
    return "\n".join(lines) + "\n"


def to_frame(table: Table) -> pd.DataFrame:
    """Long CSV form: one row per cell with the unrounded numbers and the displayed text."""
    rows = []
    for section in table.sections:
        for label, cells in section.rows:
            for column, cell in zip(table.columns, cells):
                rows.append({
                    "table": table.key, "section": section.kind, "note": section.note, "row": label,
                    "column": column.label,
                    "dataset": column.dataset, "profile": column.profile, "metric": column.metric,
                    "mean": None if cell.kind == "text" else cell.mean,
                    "std": cell.std if cell.kind == "stat" else None,
                    "n": cell.n if cell.kind == "stat" else None,
                    "bold": cell.bold, "text": cell_plain(cell),
                })
    return pd.DataFrame(rows)


def write_table(table: Table, folder: str | Path) -> list[Path]:
    """Write <key>.tex, <key>.md and <key>.csv into `folder`; returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{table.key}.{ext}" for ext in ("tex", "md", "csv")]
    paths[0].write_text(to_latex(table), encoding="utf-8")
    paths[1].write_text(to_markdown(table), encoding="utf-8")
    to_frame(table).to_csv(paths[2], index=False, float_format="%.10g")
    return paths
