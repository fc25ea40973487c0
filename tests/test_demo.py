"""The demo's promises: trained SegDINO clearly beats the untrained decoder, and the matrix reaches the report."""
import pytest

from benchmark.demo import run_demo


@pytest.mark.slow
def test_demo_headline_trains_segdino_well_above_chance(tmp_path):
    result = run_demo(tmp_path / "demo", matrix=False, progress=False)
    assert result.headline["untrained_dice"] <= 0.30
    assert result.headline["dice"] >= 0.70 and not result.headline["reused"]
    from typer.testing import CliRunner

    from benchmark.cli import app

    again = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--quick"])   # read, and said so
    assert again.exit_code == 0 and "the headline run had already finished under" in " ".join(again.output.split())


@pytest.mark.slow
def test_demo_matrix_goes_through_the_sweep_and_the_report(tmp_path, monkeypatch):
    import benchmark.demo as demo

    monkeypatch.setattr(demo, "run_headline", lambda out, progress: {"dice": None})
    result = run_demo(tmp_path / "demo", datasets=("msd", "visha"), methods=("segdino", "unet"), progress=False)
    assert {(r["dataset"], r["method"]) for r in result.matrix} == {
        ("msd", "segdino"), ("msd", "unet"), ("visha", "segdino"), ("visha", "unet")}
    assert {r["profile"] for r in result.matrix} == {"mirror", "shadow"}
    assert result.report["n_runs_used"] == 4 and result.report["n_runs_skipped"] == 0
    assert (tmp_path / "demo" / "report" / "report.tex").is_file()
