"""`render_report(runs_dir, out_dir)`: run records -> tables, figures, report.tex and summary.md.

Output layout (for the main group; any other group gets the same under `<backbone>__<preset>/`, or
`<backbone>__<preset>__<recipe>/` where the runs of a backbone and preset were trained with different settings):

```
OUT/report.tex          standalone LaTeX document (\\input's the tables, includes the PDF figures)
OUT/summary.md          the same content in Markdown, with the runs used and skipped
OUT/runs_used.txt       one line per run: USED / SKIPPED (with the reason) / NOTE / EXCLUDED (--backbone, --preset)
OUT/results.csv         one row per used run (the RUNS_DIR/results.csv format)
OUT/results_tidy.csv    one row per run x profile x metric, raw values
OUT/tables/*.tex|md|csv
OUT/figures/*.pdf|png
```

Nothing is written outside `out_dir` unless `update_results_csv=True`, which also regenerates RUNS_DIR/results.csv.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from reports import figures as figs
from reports import tables as tbl
from reports.labels import plural
from reports.load import (
    Runs,
    Skipped,
    by_data,
    load_runs,
    read_speed,
    write_csv_atomic,
    write_results_csv,
    write_text_atomic,
)

MAIN_GROUP = ("dinov3_vits16", "paper")


@dataclass
class Group:
    backbone: str
    preset: str
    recipe: str  # the settings that set its runs apart from the others of this backbone/preset (load.py), or ""
    prefix: str  # "" for the main group, else "<backbone>__<preset>" (and "__<recipe>")
    ctx: tbl.Context
    tables: list[tbl.Table]
    table_paths: list[Path]
    figure_paths: list[Path]


GENERATED = {"tables": ("table[1-4]_*.*", "efficiency.*", "coverage.*", "dataset_*.*"),
             "figures": ("params_vs_accuracy.*", "bars_*.*", "curves_*.*", "samples_*.*")}


def _previous(out: Path) -> set[Path]:
    """The tables and figures an earlier render wrote (only our own file names): those this one does not write again
    are removed once it has written its own, so none can go stale and an interrupted render leaves the old set."""
    found = set()
    for folder, patterns in GENERATED.items():
        base = out / folder
        if not base.is_dir():
            continue
        for directory in [base, *(p for p in base.iterdir() if p.is_dir())]:
            for pattern in patterns:
                found.update(path for path in directory.glob(pattern)
                             if path.is_file() and path.suffix in (".tex", ".md", ".csv", ".pdf", ".png"))
    return found


def groups_of(wide: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(backbone, preset, recipe) groups present: runs are averaged and compared only within one. The paper's
    backbone and preset first if present, then the group with most runs."""
    if wide.empty:
        return []
    sizes = wide.groupby(["backbone", "preset", "recipe"]).size()
    groups = sorted(sizes.index, key=lambda g: (g[:2] != MAIN_GROUP, -int(sizes[g]), g))
    return [tuple(g) for g in groups]


def select_runs(runs: Runs, backbone: str | None, preset: str | None) -> tuple[Runs, list[Skipped]]:
    """The runs of this backbone and/or preset, and the others as (run, "not selected (--backbone B)"): with a
    filter, every count, CSV and list of the report is of the selected runs, and the others are named as left out,
    neither used nor broken. Skipped runs stay listed: their records were not read, so their backbone is unknown.

    ValueError, naming what the folder holds, when runs were read but none matches (else an empty report)."""
    wide = runs.wide
    if (backbone is None and preset is None) or wide.empty:
        return runs, []
    filters = [(column, value) for column, value in (("backbone", backbone), ("preset", preset)) if value is not None]
    keep = pd.Series(True, index=wide.index)
    for column, value in filters:
        keep &= wide[column] == value
    if not keep.any():
        present = ", ".join(sorted({f"--backbone {b} --preset {p}" for b, p in zip(wide.backbone, wide.preset)}))
        raise ValueError(f"no finished runs under {runs.root} match --backbone {backbone or 'any'} --preset "
                         f"{preset or 'any'}; present: {present}")
    excluded = [Skipped(row["run"], "not selected (" + " ".join(f"--{c} {v}" for c, v in filters if row[c] != v)
                        + ")") for _, row in wide[~keep].iterrows()]
    kept = set(wide.loc[keep, "run"])

    def pick(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame["run"].isin(kept)].reset_index(drop=True)

    return replace(runs, wide=pick(wide), tidy=pick(runs.tidy), counts=pick(runs.counts),
                   conventions=pick(runs.conventions), notes=[n for n in runs.notes if n.run in kept],
                   settings={r: s for r, s in runs.settings.items() if r in kept}), excluded


def render_report(runs_dir: str | os.PathLike, out_dir: str | os.PathLike, *, backbone: str | None = None,
                  preset: str | None = None, figures: bool = True, update_results_csv: bool = False,
                  speed: str | os.PathLike | None = None) -> dict:
    """Render everything for the runs under `runs_dir` into `out_dir`; returns a JSON-friendly summary.

    backbone/preset: restrict to one backbone or preset (default: every group present, the paper's recipe first;
    runs of one backbone and preset trained with different settings form one group per recipe); the other runs are
    listed as excluded and count nowhere else (`select_runs`; ValueError when none matches).
    figures: False skips matplotlib (tables and documents only). update_results_csv: also regenerate
    RUNS_DIR/results.csv. speed: a `segbench profile` CSV/JSON whose latency and throughput fill the efficiency
    table (training records no latency). Returned keys: out_dir, report_tex, summary_md, runs_used_txt, results_csv,
    results_tidy_csv, tables, figures (lists of paths: three files per table, two per figure), n_tables, n_figures,
    written ("4 tables (tex, md, csv), 3 figures (pdf, png)", for messages), warnings, n_runs_used, n_runs_skipped,
    skipped (run, reason), n_runs_excluded, excluded (run, reason: not selected by backbone/preset), groups (each
    with its recipe and the backbone weights its runs used).
    """
    out = Path(out_dir)
    everything = load_runs(runs_dir)
    runs, excluded = select_runs(everything, backbone, preset)   # before anything is written: a bad filter is an error
    out.mkdir(parents=True, exist_ok=True)
    speed_rows = read_speed(speed) if speed is not None else None
    previous = _previous(out)
    if update_results_csv:   # the runs directory's own table: every run, whatever this report selects
        write_results_csv(runs_dir, everything)
    wide, tidy = runs.wide, runs.tidy
    chosen = groups_of(wide)
    groups = []
    for i, (bb, pr, recipe) in enumerate(chosen):
        prefix = "" if i == 0 else tbl.file_safe("__".join([bb, pr] + ([recipe] if recipe else [])))
        groups.append(_render_group(runs, bb, pr, recipe, prefix, out, figures, speed_rows))

    warnings = [f"--speed {speed} has no latency for backbone {g.backbone} and methods "
                f"{', '.join(sorted(g.ctx.wide['method'].unique()))} (it holds {tbl.speed_contents(speed_rows)}); "
                f"the efficiency table of {g.ctx.title} shows only what the runs recorded" for g in groups
                if speed_rows is not None and tbl.timed_rows(speed_rows, g.backbone, g.ctx.wide["method"]).empty]
    write_csv_atomic(wide, out / "results.csv")
    write_csv_atomic(tidy, out / "results_tidy.csv")
    write_text_atomic(out / "runs_used.txt", _runs_used_text(runs, excluded))
    write_text_atomic(out / "summary.md", _summary_md(runs, groups, out, excluded))
    write_text_atomic(out / "report.tex", _report_tex(runs, groups, out, excluded))
    written = {Path(p) for g in groups for p in [*g.table_paths, *g.figure_paths]}
    for path in previous - written:   # stale: a dataset or figure this render no longer has
        path.unlink(missing_ok=True)
    n_tables = sum(len(g.tables) for g in groups)
    n_figures = sum(p.suffix == ".pdf" for g in groups for p in g.figure_paths)
    return {
        "out_dir": str(out),
        "report_tex": str(out / "report.tex"),
        "summary_md": str(out / "summary.md"),
        "runs_used_txt": str(out / "runs_used.txt"),
        "results_csv": str(out / "results.csv"),
        "results_tidy_csv": str(out / "results_tidy.csv"),
        "tables": [str(p) for g in groups for p in g.table_paths],
        "figures": [str(p) for g in groups for p in g.figure_paths],
        "n_tables": n_tables,
        "n_figures": n_figures,
        "written": written_text(n_tables, n_figures),
        "warnings": warnings,
        "n_runs_used": len(wide),
        "n_runs_skipped": len(runs.skipped),
        "skipped": [{"run": s.run, "reason": s.reason} for s in runs.skipped],
        "n_runs_excluded": len(excluded),
        "excluded": [{"run": s.run, "reason": s.reason} for s in excluded],
        "groups": [{"backbone": g.backbone, "preset": g.preset, "recipe": g.recipe, "folder": g.prefix or ".",
                    "n_runs": len(g.ctx.wide), "weights": weights_used(g.ctx.wide)}
                   for g in groups],
    }


def written_text(n_tables: int, n_figures: int) -> str:
    """"4 tables (tex, md, csv), 3 figures (pdf, png)": what a report holds, counting tables and figures, not files."""
    return (f"{plural(n_tables, 'table')} (tex, md, csv), "
            + (f"{plural(n_figures, 'figure')} (pdf, png)" if n_figures else "no figures"))


def _render_group(runs: Runs, backbone: str, preset: str, recipe: str, prefix: str, out: Path, figures: bool,
                  speed: pd.DataFrame | None) -> Group:
    ctx = tbl.Context.from_runs(runs, backbone, preset, speed, recipe)
    wide = ctx.wide
    tidy = by_data(runs.tidy[runs.tidy["run"].isin(wide["run"])])   # datasets as the tables have them
    tables = tbl.build_tables(ctx) + [tbl.coverage_table(wide, runs.skipped, backbone, preset, recipe)]
    table_dir = out / "tables" / prefix if prefix else out / "tables"
    table_paths = [p for t in tables for p in tbl.write_table(t, table_dir)]
    figure_paths = []
    if figures:
        figure_dir = out / "figures" / prefix if prefix else out / "figures"
        title = f"Accuracy vs trainable parameters, {ctx.title} (marker area ∝ total GFLOPs)"
        figure_paths = figs.make_figures(runs.root, ctx.summary, tidy, wide, figure_dir, title)
    return Group(backbone, preset, recipe, prefix, ctx, tables, table_paths, figure_paths)


def recipe_lines(group: Group) -> list[str]:
    """Why a group's heading names settings: its backbone and preset hold runs trained with other settings, which
    never share its means, standard deviations or bold."""
    if not group.recipe:
        return []
    return [f"Settings: {group.recipe}. The runs of backbone {group.backbone}, preset {group.preset} were trained "
            "with different settings (their config.yaml), so each set of settings has its own section; no mean, "
            "standard deviation or best value mixes them."]


def weights_used(wide: pd.DataFrame) -> list[dict]:
    """The backbone weights a group's runs used, one entry per identity (SHA-256, else the recorded name): weights
    (a path, hub:NAME, "random" or "unknown"), sha256 (or None) and runs (how many); [] when nothing is recorded."""
    if "weights" not in wide or wide["weights"].isna().all():
        return []
    used: dict[str, dict] = {}
    for name, sha in zip(wide["weights"].fillna("unknown"), wide["weights_sha256"]):
        sha = sha if isinstance(sha, str) and sha else None
        entry = used.setdefault(sha or name, {"weights": name, "sha256": sha, "runs": 0})
        entry["runs"] += 1
    return list(used.values())


def weights_lines(wide: pd.DataFrame) -> list[str]:
    """Which backbone weights a group's runs used (file name or Hub name, SHA-256 prefix, run count), with a
    warning when they are random (numbers that test the pipeline, not the methods) or differ between runs."""
    used = weights_used(wide)
    if not used:
        return ["Backbone weights: not recorded."]
    labels = []
    for entry in used:
        name, sha, n = entry["weights"], entry["sha256"], entry["runs"]
        label = ("random initialisation (one fixed draw)" if name == "random"
                 else name if name.startswith("hub:") or name == "unknown" else Path(name).name)
        labels.append(label + (f", SHA-256 {sha[:12]}" if sha else "") + f" ({n} run{'' if n == 1 else 's'})")
    lines = ["Backbone weights: " + "; ".join(labels) + "."]
    if (wide["weights"] == "random").any():
        lines.append("Warning: random backbone weights. These numbers test the pipeline; they say nothing about how "
                     "the methods do on DINOv3 and must not be compared with the paper's rows.")
    if len(used) > 1:
        lines.append("Warning: the runs of this group used different backbone weights, and its tables pool them.")
    return lines


def _by_reason(items: list) -> list[tuple[str, list[str]]]:
    grouped: dict[str, list[str]] = {}
    for item in items:
        grouped.setdefault(item.reason, []).append(item.run)
    return list(grouped.items())


def _runs_used_text(runs: Runs, excluded: list[Skipped]) -> str:
    counts = f"# used: {len(runs.wide)}, skipped: {len(runs.skipped)}" + (
        f", excluded: {len(excluded)}" if excluded else "")
    lines = [f"# runs directory: {runs.root}", counts]
    lines += [f"USED     {run}" for run in runs.wide.get("run", [])]
    lines += [f"SKIPPED  {s.run}: {s.reason}" for s in runs.skipped]
    lines += [f"NOTE     {s.run}: {s.reason}" for s in runs.notes]
    lines += [f"EXCLUDED {s.run}: {s.reason}" for s in excluded]
    return "\n".join(lines) + "\n"


def _excluded_text(excluded: list[Skipped]) -> str:
    """", 3 runs not selected (--backbone B)": how many runs a filter left out, by filter, for the opening line."""
    return "".join(f", {plural(len(rs), 'run')} {reason}" for reason, rs in _by_reason(excluded))


# --------------------------------------------------------------------------------------------------------------
# Figures: which ones a group has, with captions shared by report.tex and summary.md.


def _figure_items(group: Group, out: Path) -> list[tuple[Path, str]]:
    """(PDF path relative to out, caption) for each figure of the group, in reading order."""
    pdfs = [p for p in group.figure_paths if p.suffix == ".pdf"]
    names = {tbl.file_safe(d): tbl.display_dataset(d) for d in group.ctx.datasets}
    star = any(figs.paper_point(group.ctx.summary, d) is not None for d in group.ctx.datasets)   # drawn for one?
    items = []
    for p in pdfs:
        stem = p.stem
        kind, _, dataset = stem.partition("_")
        name = names.get(dataset, dataset)
        caption = {
            "params": "Primary metric of each dataset versus trainable parameters (log scale); marker area "
                      "proportional to total GFLOPs per image; error bars: sample std over seeds"
                      + ("; hollow star: the paper's reported SegDINO (2.21M parameters)." if star else "."),
            "bars": f"{name}: mean over seeds (bars), sample std (error bars, ddof = 1) and each seed (dots). "
                    "The y-axes are cropped to the data and do not start at zero.",
            "curves": f"{name}: training loss and validation metrics per epoch from history.csv (line: mean over "
                      "seeds; band: min to max over seeds).",
            "samples": f"{name}: test images, ground truth and each method's predicted probability (lowest seed, "
                       "at the network input size); green outline: ground truth; numbers: per-image score.",
        }.get(kind, stem)
        items.append((p.relative_to(out), caption))
    return items


# --------------------------------------------------------------------------------------------------------------
# summary.md


def _summary_md(runs: Runs, groups: list[Group], out: Path, excluded: list[Skipped]) -> str:
    md = ["# segbench report", "",
          (f"Runs directory `{runs.root}`: {plural(len(runs.wide), 'run')} used, {len(runs.skipped)} skipped "
           f"(listed below with the reason){_excluded_text(excluded)}. Numbers are read from the run records "
           "(schema 1) and rounded only here."),
          ""]
    if not groups:
        md += ["No complete runs were found, so there are no tables or figures.", ""]
    for g in groups:
        md += [f"## {g.ctx.heading}", ""]   # "Frozen backbone dinov3_vits16, preset paper"
        md += [" ".join(recipe_lines(g) + weights_lines(g.ctx.wide)), ""]
        for t in g.tables:
            md += [f"### {t.title}", "", tbl.to_markdown(t), ""]
        items = _figure_items(g, out)
        if items:
            md += ["### Figures", ""]
            for pdf, caption in items:
                md += [f"![{pdf.stem}]({pdf.with_suffix('.png').as_posix()})", "", caption, ""]
    md += ["## Runs used and skipped", ""]
    if runs.skipped:
        md += ["Skipped runs (never used in any number above):", ""]
        md += [f"- `{s.run}`: {s.reason}" for s in runs.skipped]
        md.append("")
    else:
        md += ["No run was skipped.", ""]
    if runs.notes:
        md += ["Used with a remark:", ""]
        md += [f"- {reason}: " + ", ".join(f"`{r}`" for r in rs) for reason, rs in _by_reason(runs.notes)] + [""]
    if excluded:
        md += ["Excluded (another backbone or preset; in no number or file of this report):", ""]
        md += [f"- {reason}: " + ", ".join(f"`{r}`" for r in rs) for reason, rs in _by_reason(excluded)] + [""]
    md += ["The full list of runs used is in `runs_used.txt`.", "", "## Scoring conventions", ""]
    conv = runs.conventions
    for profile in sorted(conv["profile"].unique()) if len(conv) else []:
        texts = conv[conv.profile == profile]["convention"].unique()
        for text in texts:
            n = int((conv[(conv.profile == profile) & (conv.convention == text)]).shape[0])
            md += [f"- `{profile}` ({plural(n, 'run')}): `{json.dumps(json.loads(text), sort_keys=True)}`"]
    return "\n".join(md) + "\n"


# --------------------------------------------------------------------------------------------------------------
# report.tex


PREAMBLE = r"""\documentclass[10pt]{article}
\usepackage[utf8]{inputenc}
\usepackage[a4paper,margin=2cm]{geometry}
\usepackage{booktabs}
\usepackage{graphicx}
\usepackage[font=small,labelfont=bf]{caption}
\setlength{\tabcolsep}{4pt}
\renewcommand{\topfraction}{0.95}
\renewcommand{\bottomfraction}{0.95}
\renewcommand{\textfraction}{0.05}
\renewcommand{\floatpagefraction}{0.6}
\setcounter{topnumber}{3}
\setcounter{totalnumber}{4}
% \fitfigure{file}{f}: natural size, shrunk (never enlarged) to the line width and to f x the text height
\newcommand{\fitfigure}[2]{\resizebox{!}{\ifdim\height>#2\textheight #2\textheight\else\height\fi}{%
  \resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{\includegraphics{#1}}}}
\title{segbench report}
\author{generated by \texttt{segbench report} from run records}
\date{}
"""


def _report_tex(runs: Runs, groups: list[Group], out: Path, excluded: list[Skipped]) -> str:
    tex = tbl.tex

    def option(text: str) -> str:   # "--backbone" as typed, not an en dash
        return tex(text).replace("--", "-{}-")

    lines = [PREAMBLE, r"\begin{document}", r"\maketitle", "",
             (f"Runs directory \\texttt{{{tex(runs.root.name or str(runs.root))}}}: "
              f"{plural(len(runs.wide), 'run')} used, {len(runs.skipped)} skipped (Section~\\ref{{sec:runs}})"
              f"{option(_excluded_text(excluded))}. "
              "Our rows are means over seeds with the sample standard deviation (ddof = 1); reported rows are "
              "copied from the SegDINO paper (arXiv 2509.00833 v1) and come from its own models and protocols."), ""]
    if not groups:
        lines += [r"No complete runs were found, so there are no tables or figures.", ""]
    for g in groups:
        folder = f"tables/{g.prefix}/" if g.prefix else "tables/"
        main = [t for t in g.tables if not t.key.startswith("dataset_") and t.key != "coverage"]
        lines += [f"\\section{{Results: {tex(g.ctx.heading)}}}", ""]
        lines += [" ".join(tex(line) for line in recipe_lines(g) + weights_lines(g.ctx.wide)), ""]
        lines += [f"\\input{{{folder}{t.key}}}" for t in main] + [r"\clearpage", ""]
        items = _figure_items(g, out)
        if items:  # float pages only (no heading: it would sit alone on a page before them)
            blocks: dict[str, list[tuple[Path, str]]] = {}
            for pdf, caption in items:  # one float per dataset: its figures stay on one page, in order
                blocks.setdefault(pdf.stem.partition("_")[2], []).append((pdf, caption))
            for block in blocks.values():
                heights = {"bars": "0.25", "curves": "0.2", "samples": "0.33"}
                lines += [r"\begin{figure}[p]", r"\centering"]
                for i, (pdf, caption) in enumerate(block):
                    lines += [r"\vspace{10pt}" if i else "",
                              (f"\\fitfigure{{{pdf.with_suffix('').as_posix()}}}"
                               f"{{{heights.get(pdf.stem.partition('_')[0], '0.6')}}}"),
                              f"\\caption{{{tex(caption)}}}"]
                lines += [r"\end{figure}", r"\clearpage"]
            lines += [r"\clearpage", ""]
    lines += [r"\section{Runs used and skipped}\label{sec:runs}", ""]
    for g in groups:
        folder = f"tables/{g.prefix}/" if g.prefix else "tables/"
        lines.append(f"\\input{{{folder}coverage}}")
    if runs.skipped:
        lines += ["Skipped runs (never used in any number of this report):", r"\begin{itemize}\small\raggedright"]
        lines += [f"\\item \\texttt{{{tex(s.run)}}}: {tex(s.reason)}" for s in runs.skipped]
        lines += [r"\end{itemize}"]
    else:
        lines.append("No run was skipped.")
    if runs.notes:
        lines += ["", "Used with a remark:", r"\begin{itemize}\small\raggedright"]
        for reason, rs in _by_reason(runs.notes):
            lines.append(f"\\item {tex(reason)} ({plural(len(rs), 'run')}): "
                         + ", ".join(f"\\texttt{{{tex(r)}}}" for r in rs))
        lines += [r"\end{itemize}"]
    if excluded:
        lines += ["", "Excluded (another backbone or preset; in no number of this report):",
                  r"\begin{itemize}\small\raggedright"]
        lines += [f"\\item {option(reason)} ({plural(len(rs), 'run')}): "
                  + ", ".join(f"\\texttt{{{tex(r)}}}" for r in rs) for reason, rs in _by_reason(excluded)]
        lines += [r"\end{itemize}"]
    lines += ["", "The full list of runs used is in \\texttt{runs\\_used.txt}.", ""]
    appendix = [(g, t) for g in groups for t in g.tables if t.key.startswith("dataset_")]
    if appendix:
        lines += [r"\clearpage", r"\appendix", r"\section{All recorded metrics per dataset}", ""]
        for g, t in appendix:
            folder = f"tables/{g.prefix}/" if g.prefix else "tables/"
            lines.append(f"\\input{{{folder}{t.key}}}")
    lines += ["", r"\end{document}", ""]
    return "\n".join(lines)


def compile_pdf(report_tex: str | os.PathLike, timeout: float = 120, keep_log: bool = False) -> Path:
    """Compile report.tex with pdflatex (twice, for references) in its own folder; returns the PDF path. The
    .aux/.log/.out files are removed after a successful compile unless `keep_log`.

    Raises RuntimeError with the end of the LaTeX log when compilation fails, FileNotFoundError without pdflatex.
    """
    exe = shutil.which("pdflatex")
    if exe is None:
        raise FileNotFoundError("pdflatex not found; install TeX Live (texlive-latex-extra) or compile elsewhere")
    tex_path = Path(report_tex)
    for _ in range(2):
        proc = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", tex_path.name],
                              cwd=tex_path.parent, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"pdflatex failed on {tex_path}:\n{proc.stdout[-3000:]}")
    for leftover in (".aux", ".out") + (() if keep_log else (".log",)):   # a failed compile keeps them all
        tex_path.with_suffix(leftover).unlink(missing_ok=True)
    return tex_path.with_suffix(".pdf")
