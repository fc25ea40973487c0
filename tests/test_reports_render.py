"""reports.render.render_report: the files it writes, the runs it lists, and that report.tex compiles."""

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from reports.render import compile_pdf, render_report
from tests.reports_fixtures import write_exact_run, write_fake_runs


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    fake = write_fake_runs(tmp_path_factory.mktemp("runs"))
    out = tmp_path_factory.mktemp("report")
    return fake, out, render_report(fake.root, out)


def test_returns_a_json_friendly_summary(rendered):
    fake, _, result = rendered
    json.dumps(result)
    assert result["n_runs_used"] == len(fake.used)
    assert result["n_runs_skipped"] == len(fake.skipped)
    assert {s["run"] for s in result["skipped"]} == set(fake.skipped)
    assert [{k: v for k, v in g.items() if k != "weights"} for g in result["groups"]] == [
        {"backbone": "dinov3_vits16", "preset": "paper", "recipe": "", "folder": ".", "n_runs": len(fake.used)}]
    for key in ("report_tex", "summary_md", "runs_used_txt", "results_csv", "results_tidy_csv"):
        assert Path(result[key]).is_file(), key
    assert all(Path(p).is_file() for p in result["tables"] + result["figures"])


def test_writes_tables_in_three_formats_and_figures_in_two(rendered):
    _, out, _ = rendered
    for stem in ("table1_medical", "table2_msd", "table3_vmd", "table4_visha", "efficiency", "coverage",
                 "dataset_folder-mydata__segdino", "dataset_tn3k__medical-native"):
        for ext in ("tex", "md", "csv"):
            assert (out / "tables" / f"{stem}.{ext}").is_file()
    for stem in ("params_vs_accuracy", "bars_tn3k", "curves_vmd", "samples_visha"):
        for ext in ("pdf", "png"):
            assert (out / "figures" / f"{stem}.{ext}").is_file()


def test_report_tex_inputs_existing_files(rendered):
    _, out, _ = rendered
    tex = (out / "report.tex").read_text()
    assert tex.startswith("\\documentclass") and tex.rstrip().endswith("\\end{document}")
    for name in re.findall(r"\\input\{([^}]*)\}", tex):
        assert (out / f"{name}.tex").is_file(), name
    for name in re.findall(r"\\includegraphics\[[^]]*\]\{([^}]*)\}", tex):
        assert (out / f"{name}.pdf").is_file(), name


def test_runs_used_and_skipped_are_listed_with_reasons(rendered):
    fake, out, _ = rendered
    text = (out / "runs_used.txt").read_text()
    assert sum(line.startswith("USED") for line in text.splitlines()) == len(fake.used)
    summary = (out / "summary.md").read_text()
    for run, reason in fake.skipped.items():
        assert re.search(rf"SKIPPED\s+{re.escape(run)}: .*{re.escape(reason)}", text)
        assert run in summary and reason in summary
    assert "no profile.json" in summary


def test_tidy_and_wide_results(rendered):
    fake, out, _ = rendered
    tidy = pd.read_csv(out / "results_tidy.csv")
    assert list(tidy.columns) == ["dataset", "data_name", "method", "backbone", "preset", "seed", "profile", "metric",
                                  "value", "run", "recipe"]
    assert set(tidy["run"]) == fake.used
    assert len(pd.read_csv(out / "results.csv")) == len(fake.used)
    assert not (fake.root / "results.csv").exists()  # nothing written into the runs directory by default


def test_update_results_csv_tables_only_and_a_speed_table(tmp_path):
    fake = write_fake_runs(tmp_path / "runs")
    speed = tmp_path / "speed.json"
    speed.write_text(json.dumps({"rows": [{"method": "upernet", "backbone": "dinov3_vits16", "dtype": "float32",
                                           "batch1_ms": 9.5, "throughput_img_s": 400.0, "throughput_batch": 64}]}))
    result = render_report(fake.root, tmp_path / "out", figures=False, update_results_csv=True, speed=speed)
    assert (fake.root / "results.csv").is_file()
    assert result["figures"] == [] and not (tmp_path / "out" / "figures").exists()
    efficiency = (tmp_path / "out" / "tables" / "efficiency.md").read_text()
    assert "| UPerNet | 24.51 | 21.59 | 58.20 | 70.70 | 9.50 | 105.3 | 400 |" in efficiency
    assert result["warnings"] == []


def test_a_speed_table_for_another_backbone_is_said_not_silently_ignored(tmp_path):
    fake = write_fake_runs(tmp_path / "runs")
    speed = tmp_path / "speed.json"
    speed.write_text(json.dumps({"rows": [{"method": "upernet", "backbone": "dinov3_vitb16", "dtype": "float32",
                                           "batch1_ms": 9.5, "throughput_img_s": 400.0, "throughput_batch": 64}]}))
    result = render_report(fake.root, tmp_path / "out", figures=False, speed=speed)
    assert len(result["warnings"]) == 1 and "no latency for backbone dinov3_vits16" in result["warnings"][0]
    caption = (tmp_path / "out" / "tables" / "efficiency.md").read_text()
    assert "has no latency for backbone dinov3_vits16" in caption and "backbones dinov3_vitb16" in caption
    assert "(it holds backbones dinov3_vitb16; methods upernet)" in result["warnings"][0]
    folder = tmp_path / "profiles"   # the folder `segbench profile --out` writes is accepted as it is
    folder.mkdir()
    (folder / "profile_cpu.csv").write_text("method,backbone,batch1_ms\nupernet,dinov3_vits16,9.5\n")
    assert render_report(fake.root, tmp_path / "out2", figures=False, speed=folder)["warnings"] == []


def test_each_recipe_gets_its_own_tables(tmp_path):
    runs = tmp_path / "runs"
    for seed, iou in enumerate((0.90, 0.92)):
        write_exact_run(runs, "msd", "segdino", seed, {"mirror": {"iou": iou}})
        write_exact_run(runs, "msd", "segdino", seed, {"mirror": {"iou": iou - 0.3}}, preset="public-code")
    result = render_report(runs, tmp_path / "out", figures=False)
    assert [(g["preset"], g["folder"]) for g in result["groups"]] == [
        ("paper", "."), ("public-code", "dinov3_vits16__public-code")]
    main = (tmp_path / "out" / "tables" / "table2_msd.md").read_text()
    other = (tmp_path / "out" / "tables" / "dinov3_vits16__public-code" / "table2_msd.md").read_text()
    assert "0.910 ± 0.014" in main and "0.610 ± 0.014" in other


def test_a_second_render_leaves_no_stale_tables_or_figures(tmp_path):
    runs = tmp_path / "runs"
    write_exact_run(runs, "msd", "segdino", 0, {"mirror": {"iou": 0.9}})
    write_exact_run(runs, "visha", "segdino", 0, {"shadow": {"iou": 0.6}})
    render_report(runs, tmp_path / "out", figures=False)
    assert (tmp_path / "out" / "tables" / "table4_visha.tex").is_file()
    (tmp_path / "out" / "tables" / "mine.tex").write_text("keep me")
    shutil.rmtree(runs / "visha")
    render_report(runs, tmp_path / "out", figures=False)
    assert not (tmp_path / "out" / "tables" / "table4_visha.tex").exists()
    assert (tmp_path / "out" / "tables" / "mine.tex").read_text() == "keep me"


def test_an_interrupted_render_leaves_the_previous_report_whole(tmp_path, monkeypatch):
    """Killed part-way, a render used to have deleted the previous tables and figures first and left half-written
    files: now each file is renamed into place and stale ones go only after every new one is written."""
    import reports.render as render

    runs = tmp_path / "runs"
    write_exact_run(runs, "msd", "segdino", 0, {"mirror": {"iou": 0.9}})
    write_exact_run(runs, "visha", "segdino", 0, {"shadow": {"iou": 0.6}})
    render_report(runs, tmp_path / "out")
    before = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert any(p.suffix == ".png" for p in before) and all(before.values())
    real, calls = render.tbl.write_table, []

    def interrupted(table, folder):
        calls.append(table.key)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(table, folder)

    monkeypatch.setattr(render.tbl, "write_table", interrupted)
    write_exact_run(runs, "msd", "segdino", 1, {"mirror": {"iou": 0.7}})
    with pytest.raises(KeyboardInterrupt):
        render_report(runs, tmp_path / "out")
    after = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert set(after) == set(before) and all(after.values())   # nothing lost, nothing empty, no temporary files
    assert after[tmp_path / "out" / "report.tex"] == before[tmp_path / "out" / "report.tex"]


def test_empty_runs_dir_renders_an_explanation(tmp_path):
    (tmp_path / "runs").mkdir()
    result = render_report(tmp_path / "runs", tmp_path / "out")
    assert result["n_runs_used"] == 0 and result["tables"] == []
    assert "No complete runs" in (tmp_path / "out" / "summary.md").read_text()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_report_compiles_with_pdflatex(rendered, tmp_path):
    _, out, _ = rendered
    copy = tmp_path / "report"
    shutil.copytree(out, copy)
    pdf = compile_pdf(copy / "report.tex", keep_log=True)
    assert pdf.read_bytes().startswith(b"%PDF")
    log = (copy / "report.log").read_text(errors="replace")
    assert "Overfull \\hbox" not in log


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_empty_report_compiles(tmp_path):
    (tmp_path / "runs").mkdir()
    result = render_report(tmp_path / "runs", tmp_path / "out")
    assert compile_pdf(result["report_tex"]).is_file()
    assert not any((tmp_path / "out").glob("report.aux")) and not any((tmp_path / "out").glob("report.log"))


def test_the_backbone_weights_are_stated_and_random_or_mixed_weights_warned(rendered):
    from reports.render import weights_lines

    fake, out, result = rendered
    n = len(fake.used)
    line = f"Backbone weights: dinov3_vits16.pth, SHA-256 {'a' * 12} ({n} runs)."
    assert [g["weights"] for g in result["groups"]] == [[{"weights": "dinov3_vits16.pth",
                                                          "sha256": "a" * 64, "runs": n}]]
    assert line in (out / "summary.md").read_text()
    assert "dinov3\\_vits16.pth" in (out / "report.tex").read_text()
    assert "Warning" not in (out / "summary.md").read_text()
    wide = pd.DataFrame({"weights": ["random", "random"], "weights_sha256": [None, None]})
    lines = weights_lines(wide)
    assert lines[0] == "Backbone weights: random initialisation (one fixed draw) (2 runs)."
    assert "must not be compared with the paper" in lines[1] and len(lines) == 2
    wide = pd.DataFrame({"weights": ["/w/a.pth", "/other/a.pth", "hub:facebook/dinov3-vits16-pretrain-lvd1689m"],
                         "weights_sha256": ["b" * 64, "b" * 64, "c" * 64]})
    lines = weights_lines(wide)   # one file reached by two paths is one set of weights; the Hub copy is another
    assert lines[0] == (f"Backbone weights: a.pth, SHA-256 {'b' * 12} (2 runs); "
                        f"hub:facebook/dinov3-vits16-pretrain-lvd1689m, SHA-256 {'c' * 12} (1 run).")
    assert "different backbone weights" in lines[1]


def test_coverage_counts_unfinished_seeds_but_not_moved_aside_corrupt_folders(tmp_path):
    runs = tmp_path / "runs"
    for seed in (0, 1):
        write_exact_run(runs, "msd", "segdino", seed, {"mirror": {"iou": 0.9}})
    done = runs / "msd" / "segdino__dinov3_vits16__paper__s0"
    shutil.copytree(done, done.with_name(done.name + ".corrupt-20261125-101500"))   # redone since
    unfinished = runs / "msd" / "segdino__dinov3_vits16__paper__s2"
    shutil.copytree(done, unfinished)
    (unfinished / "DONE").unlink()
    render_report(runs, tmp_path / "out", figures=False)
    coverage = (tmp_path / "out" / "tables" / "coverage.md").read_text()
    assert "| SegDINO | s0,1 (+1 skipped) |" in coverage


def test_runs_trained_with_different_settings_get_separate_sections(tmp_path):
    # DPT at 96 px is never bolded against UNet at 64 px, and SegDINO's two sizes are never one mean
    runs = tmp_path / "runs"
    for seed in (0, 1):
        write_exact_run(runs, "msd", "unet", seed, {"mirror": {"iou": 0.80}}, settings={"data.size": 64})
        write_exact_run(runs, "msd", "dpt", seed, {"mirror": {"iou": 0.95}}, settings={"data.size": 96})
    write_exact_run(runs, "msd", "segdino", 0, {"mirror": {"iou": 0.85}}, settings={"data.size": 64})
    write_exact_run(runs, "msd", "segdino", 1, {"mirror": {"iou": 0.97}}, settings={"data.size": 96})
    result = render_report(runs, tmp_path / "out", figures=False)
    assert [(g["recipe"], g["folder"], g["n_runs"]) for g in result["groups"]] == [
        ("data.size=64", ".", 3), ("data.size=96", "dinov3_vits16__paper__data.size-96", 3)]
    small = (tmp_path / "out" / "tables" / "table2_msd.md").read_text()
    large = (tmp_path / "out" / "tables" / "dinov3_vits16__paper__data.size-96" / "table2_msd.md").read_text()
    assert "*Ours: backbone dinov3_vits16, preset paper, data.size=64*" in small
    assert "| UNet | 0.800 ± 0.000 |" in small and "| SegDINO (n=1) | **0.850** |" in small and "DPT" not in small
    assert "| DPT | 0.950 ± 0.000 |" in large and "| SegDINO (n=1) | **0.970** |" in large and "UNet" not in large
    assert "data.size=64 (paper: 256)" in small and "no reproduction check" in small
    tex = (tmp_path / "out" / "report.tex").read_text()
    assert "\\section{Results: Frozen backbone dinov3\\_vits16, preset paper, data.size=96}" in tex
    assert "Settings: data.size=96. The runs of backbone dinov3_vits16, preset paper were trained with" in (
        tmp_path / "out" / "summary.md").read_text()
    recipes = pd.read_csv(tmp_path / "out" / "results.csv")["recipe"]
    assert sorted(recipes) == ["data.size=64"] * 3 + ["data.size=96"] * 3
    coverage = (tmp_path / "out" / "tables" / "coverage.md").read_text()
    assert "counts in every section of this backbone and preset" in " ".join(coverage.split())


def test_one_run_is_one_run_not_one_runs(tmp_path):
    runs = tmp_path / "runs"
    write_exact_run(runs, "kvasir", "segdino", 0, {"segdino": {"dice": 0.8, "iou": 0.7, "hd95": 20.0}},
                    counts={"n_images": 10, "hd95_inf": 1})
    render_report(runs, tmp_path / "out", figures=False)
    tex = (tmp_path / "out" / "report.tex").read_text()
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "1 run used" in tex and "1 run used" in summary
    assert "1 such image over 1 run (" in (tmp_path / "out" / "tables" / "table1_medical.md").read_text()
    assert not re.search(r"\b1 runs\b", tex + summary)


def test_report_of_only_imported_runs_says_they_are_not_reported(tmp_path):
    from benchmark.cli import app
    from typer.testing import CliRunner

    run = tmp_path / "runs" / "imported" / "public_kvasir"
    run.mkdir(parents=True)
    (run / "model.pt").write_bytes(b"weights")
    (run / "env.json").write_text(json.dumps({"imported_from": "best_model.pth"}))
    result = CliRunner().invoke(app, ["report", str(tmp_path / "runs"), "--out", str(tmp_path / "out")])
    message = " ".join(result.output.split())
    assert result.exit_code == 2 and "no finished runs under" in message, message
    assert "imported/public_kvasir: an imported checkpoint" in message
    assert "imported runs are not reported" in message


def test_report_of_a_folder_above_the_runs_names_the_runs_folder(tmp_path):
    """`segbench report segbench_demo` (the demo's --out, not its runs folder) points at segbench_demo/runs."""
    from benchmark.cli import app
    from typer.testing import CliRunner

    run = tmp_path / "demo" / "runs" / "kvasir" / "segdino__test__smoke__s0"
    run.mkdir(parents=True)
    (run / "DONE").write_text("")
    (tmp_path / "demo" / "data" / "mini" / "kvasir").mkdir(parents=True)
    result = CliRunner().invoke(app, ["report", str(tmp_path / "demo"), "--out", str(tmp_path / "out")])
    message = " ".join(result.output.split())
    assert result.exit_code == 2 and "no finished runs directly under" in message, message
    assert f"(e.g. `segbench report {tmp_path / 'demo' / 'runs'}`)" in message, message
    result = CliRunner().invoke(app, ["report", str(tmp_path / "demo" / "data"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "directly" not in result.output, result.output   # nothing below: no hint


def _mixed_runs(root: Path) -> Path:
    """3 runs of backbone dinov3_vitb16, preset paper, and 3 others: 2 of another backbone, 1 of another preset."""
    for seed in (0, 1, 2):
        write_exact_run(root, "msd", "segdino", seed, {"mirror": {"iou": 0.9}}, backbone="dinov3_vitb16")
    for seed in (0, 1):
        write_exact_run(root, "msd", "segdino", seed, {"mirror": {"iou": 0.5}})
    write_exact_run(root, "msd", "segdino", 0, {"mirror": {"iou": 0.4}}, backbone="dinov3_vitb16", preset="public-code")
    return root


def test_backbone_and_preset_select_the_runs_every_file_counts(tmp_path):
    # --backbone/--preset used to filter only the tables: counts, CSVs, runs_used.txt and summary.md had all 6 runs
    runs, out = _mixed_runs(tmp_path / "runs"), tmp_path / "out"
    result = render_report(runs, out, backbone="dinov3_vitb16", preset="paper", figures=False)
    chosen = {f"msd/segdino__dinov3_vitb16__paper__s{s}" for s in (0, 1, 2)}
    other_backbone = [f"msd/segdino__dinov3_vits16__paper__s{s}" for s in (0, 1)]
    other_preset = "msd/segdino__dinov3_vitb16__public-code__s0"
    assert (result["n_runs_used"], result["n_runs_skipped"], result["n_runs_excluded"]) == (3, 0, 3)
    assert [(g["backbone"], g["preset"], g["n_runs"]) for g in result["groups"]] == [("dinov3_vitb16", "paper", 3)]
    assert {e["run"]: e["reason"] for e in result["excluded"]} == {
        **{r: "not selected (--backbone dinov3_vitb16)" for r in other_backbone},
        other_preset: "not selected (--preset paper)"}
    assert set(pd.read_csv(out / "results.csv")["run"]) == chosen
    tidy = pd.read_csv(out / "results_tidy.csv")
    assert set(tidy["run"]) == chosen and set(tidy["value"]) == {0.9}
    lines = (out / "runs_used.txt").read_text().splitlines()
    assert lines[1] == "# used: 3, skipped: 0, excluded: 3"
    assert {line.split()[1] for line in lines if line.startswith("USED")} == chosen
    assert not any(line.startswith("SKIPPED") for line in lines)
    assert sorted(line for line in lines if line.startswith("EXCLUDED")) == sorted([
        f"EXCLUDED {r}: not selected (--backbone dinov3_vitb16)" for r in other_backbone] + [
        f"EXCLUDED {other_preset}: not selected (--preset paper)"])
    assert all(line.split()[1].rstrip(":") in chosen for line in lines if line.startswith("NOTE"))  # no env.json
    summary = (out / "summary.md").read_text()
    assert ("3 runs used, 0 skipped (listed below with the reason), 1 run not selected (--preset paper), "
            "2 runs not selected (--backbone dinov3_vitb16).") in summary
    assert "6 runs" not in summary and "(6 runs)" not in summary
    assert "- not selected (--preset paper): `msd/segdino__dinov3_vitb16__public-code__s0`" in summary
    assert "`mirror` (3 runs)" in summary   # scoring conventions of the selected runs only
    tex = (out / "report.tex").read_text()
    assert "3 runs used, 0 skipped" in tex and "-{}-backbone dinov3\\_vitb16" in tex
    if shutil.which("pdflatex"):
        assert compile_pdf(result["report_tex"]).is_file()


def test_one_filter_keeps_every_group_it_matches_and_no_filter_keeps_all(tmp_path):
    runs = _mixed_runs(tmp_path / "runs")
    result = render_report(runs, tmp_path / "b16", backbone="dinov3_vitb16", figures=False)
    assert (result["n_runs_used"], result["n_runs_excluded"]) == (4, 2)
    assert [(g["preset"], g["n_runs"]) for g in result["groups"]] == [("paper", 3), ("public-code", 1)]
    result = render_report(runs, tmp_path / "all", figures=False, update_results_csv=True)
    assert (result["n_runs_used"], result["n_runs_excluded"], result["excluded"]) == (6, 0, [])
    assert "EXCLUDED" not in (tmp_path / "all" / "runs_used.txt").read_text()
    assert "# used: 6, skipped: 0\n" in (tmp_path / "all" / "runs_used.txt").read_text()
    assert "not selected" not in (tmp_path / "all" / "summary.md").read_text()
    render_report(runs, tmp_path / "b16", backbone="dinov3_vitb16", figures=False, update_results_csv=True)
    assert len(pd.read_csv(runs / "results.csv")) == 6   # the runs directory's own table keeps every run


def test_a_filter_that_matches_nothing_names_what_the_folder_holds(tmp_path):
    from benchmark.cli import app
    from typer.testing import CliRunner

    runs = _mixed_runs(tmp_path / "runs")
    with pytest.raises(ValueError, match="match --backbone dinov3_vitl16 --preset any; present: --backbone "
                                         "dinov3_vitb16 --preset paper, --backbone dinov3_vitb16 --preset public-code, "
                                         "--backbone dinov3_vits16 --preset paper"):
        render_report(runs, tmp_path / "out", backbone="dinov3_vitl16")
    assert not (tmp_path / "out").exists()   # nothing written for a mistyped filter
    result = CliRunner().invoke(app, ["report", str(runs), "--out", str(tmp_path / "out"), "--preset", "nope"])
    message = " ".join(result.output.split())
    assert result.exit_code == 2 and "present: --backbone dinov3_vitb16 --preset paper" in message, message
    result = CliRunner().invoke(app, ["report", str(runs), "--out", str(tmp_path / "out"), "--backbone",
                                      "dinov3_vitb16", "--preset", "paper", "--no-figures"])
    flat = " ".join(result.output.split())
    assert result.exit_code == 0 and "report of 3 runs (0 skipped, 3 not selected)" in flat, result.output


def test_a_folder_dataset_is_named_by_its_folder_everywhere(tmp_path):
    """Runs of `--dataset folder --data-root data/mydata` appeared as `folder` in every heading, caption and figure;
    two folders in one runs directory get a section, a figure and a coverage column each."""
    runs = tmp_path / "runs"
    for seed, (name, dice) in enumerate((("mydata", 0.9), ("scans", 0.5))):
        write_exact_run(runs, "folder", "segdino", seed, {"segdino": {"dice": dice, "iou": dice - 0.1}},
                        settings={"data.root": f"/home/me/data/{name}"})
    result = render_report(runs, tmp_path / "out")
    out = tmp_path / "out"
    summary = (out / "summary.md").read_text()
    assert "### folder (mydata), profile segdino: all recorded metrics" in summary
    assert "### folder (scans), profile segdino: all recorded metrics" in summary
    assert "| SegDINO | 0.9000 | 0.8000 |" in summary and "| SegDINO | 0.5000 | 0.4000 |" in summary
    tex = (out / "tables" / "dataset_folder-scans__segdino.tex").read_text()
    assert "\\caption{folder (scans): every metric" in tex
    assert "| Method | folder (mydata) | folder (scans) |" in (out / "tables" / "coverage.md").read_text()
    assert {Path(p).name for p in result["figures"]} >= {"bars_folder-mydata.png", "bars_folder-scans.pdf"}
    assert "![bars_folder-scans](figures/bars_folder-scans.png)\n\nfolder (scans): mean over seeds" in summary
    table = pd.read_csv(out / "results.csv")
    assert list(zip(table["dataset"], table["data_name"])) == [("folder", "mydata"), ("folder", "scans")]
    assert "hollow star" not in summary   # the paper reports no user dataset: no star drawn, none captioned


def test_the_papers_star_is_captioned_where_drawn(rendered):
    assert "hollow star: the paper's reported SegDINO" in (rendered[1] / "summary.md").read_text()


def test_the_report_counts_tables_and_figures_not_files(rendered, tmp_path):
    _, out, result = rendered
    stems = {Path(p).stem for p in result["tables"]}
    figures = {Path(p).stem for p in result["figures"]}
    assert (result["n_tables"], result["n_figures"]) == (len(stems), len(figures))
    assert len(result["tables"]) == 3 * len(stems) and len(result["figures"]) == 2 * len(figures)
    assert result["written"] == f"{len(stems)} tables (tex, md, csv), {len(figures)} figures (pdf, png)"
    runs = tmp_path / "runs"
    write_exact_run(runs, "msd", "segdino", 0, {"mirror": {"iou": 0.9}})
    # Table 2, efficiency, MSD's own table and the coverage table
    assert render_report(runs, tmp_path / "out", figures=False)["written"] == "4 tables (tex, md, csv), no figures"
