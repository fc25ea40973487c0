"""The table model (`Table`: column groups, row sections, cells holding mean/std/n) and its three renderings:
LaTeX (booktabs), Markdown and CSV, so the three versions never disagree.

The only place numbers are formatted and bolded. Missing cells are "--" (not measured), never 0, and "n/a" where
every seed measured the value but it is undefined (NaN or null in metrics.json); bold marks the best of *our*
rows per column (reported rows come from other protocols). The builders of the paper-shaped tables are in
`reports.tables`.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from reports.load import write_text_atomic

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
    "text" (literal). NaN means missing and renders as "--", or "n/a" when seeds measured it undefined."""

    kind: str = "stat"
    mean: float = math.nan
    std: float = math.nan
    n: int = 0
    decimals: int = 4
    text: str = ""
    bold: bool = False
    mark: str = ""  # note shown after the value, e.g. "n=1" (a cell over an unusual number of seeds)
    dagger: str = ""  # "†"/"‡" after a reported value
    undefined: int = 0  # seeds whose value is recorded but undefined (NaN/null), left out of n, mean and std

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


def _missing(cell: Cell) -> str:
    return "n/a" if cell.undefined else "--"


def cell_plain(cell: Cell, markdown: bool = False) -> str:
    if cell.kind == "text":
        return cell.text
    if cell.missing:
        return _missing(cell)
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
        return _missing(cell)
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
    each such cell is marked, and so is a cell over fewer seeds than its row's others (a seed whose value is
    undefined, say an HD95 with every image infinite), even where its count is the usual one.
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
            for cell in stats:   # and a cell short of its row's seeds (one undefined there), even at the usual n
                if cell.n != usual or cell.n < max(ns):
                    cell.mark = f"n={cell.n}"
    return usual, marked


# --------------------------------------------------------------------------------------------------------------
# Rendering.


def to_latex(table: Table) -> str:
    """A booktabs `table` float; needs \\usepackage{booktabs,graphicx}. Shrinks to the line width only if wider.

    Our rows take two lines: the mean (bold if best), then ±std and (n=k) if over an unusual number of seeds.
    """
    ncol = len(table.columns) + 1
    lines = [
        "% Generated by segbench reports; do not edit by hand. "
        "Needs \\usepackage{booktabs} and \\usepackage{graphicx}.",
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
    write_text_atomic(paths[0], to_latex(table))   # an interrupted render leaves the old file, never half of one
    write_text_atomic(paths[1], to_markdown(table))
    write_text_atomic(paths[2], to_frame(table).to_csv(index=False, float_format="%.10g", lineterminator="\n"))
    return paths
