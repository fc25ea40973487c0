"""The demo's promise: trained SegDINO clearly beats the untrained decoder on the synthetic data."""
import pytest

from benchmark.demo import run_demo


@pytest.mark.slow
def test_demo_trains_segdino_well_above_chance(tmp_path):
    rows = run_demo(tmp_path / "demo", progress=False)
    seg = [r for r in rows if r["method"] == "segdino" and r["dataset"] == "kvasir"]
    assert seg, rows
    assert seg[0]["untrained_dice"] <= 0.30
    assert seg[0]["dice"] >= 0.70
