"""Reports from segbench run records: tables (LaTeX, Markdown, CSV), figures and a standalone report.

Reads files only (docs/run_records.md); imports neither torch nor segdino/baselines/benchmark, so a report
renders on a laptop without them. Entry point: `reports.render.render_report(runs_dir, out_dir)`.
"""

from reports.load import load_runs, write_results_csv
from reports.render import render_report

__all__ = ["load_runs", "render_report", "write_results_csv"]
