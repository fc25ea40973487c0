"""`segbench demo`: the whole pipeline on built-in miniature data, on a CPU, in minutes.

1. Headline: SegDINO on a miniature Kvasir-SEG at 256 x 256 with the tiny random DINOv3-architecture backbone
   (`smoke` preset), against the untrained decoder as the chance level.
2. Matrix: every registered method on miniature replicas of all six datasets, written in their native layouts and
   read by the real loaders, through the same sweep as `segbench run` (smaller images and fewer epochs, so it
   fits in minutes on two CPU cores).
3. Report: `segbench report` on the matrix's run records (LaTeX tables, Markdown, CSV, figures).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from benchmark import records
from benchmark.config import load_config
from benchmark.data import synthetic
from benchmark.data.image_cache import load_resized
from benchmark.data.splits import make_splits
from benchmark.evaluate import dice_iou, predict_split
from benchmark.registry import DECODERS, build_model, open_data
from benchmark.train import cache_dir, seed_everything, train_run

DEMO_DATASETS = ("tn3k", "kvasir", "isic2017", "msd", "vmd", "visha")
# Small enough for 6 datasets x 7 methods in a few minutes on 2 CPU cores: a pipeline check, not a comparison
# (96 px is a 6 x 6 token grid for the stride-16 SegDINO head, while the baselines decode at stride 1).
MATRIX = {"data.size": 96, "train.epochs": 4, "train.batch_size": 4, "optim.lr": 1e-3}
MATRIX_SAMPLES = (16, 8)                           # train (incl. validation) and test images per dataset


@dataclass
class DemoResult:
    headline: dict
    matrix: list[dict] = field(default_factory=list)
    report: dict | None = None
    seconds: float = 0.0


def write_demo_data(root: Path, datasets=DEMO_DATASETS, n_train: int = MATRIX_SAMPLES[0],
                    n_test: int = MATRIX_SAMPLES[1]) -> dict[str, Path]:
    """Each dataset under its usual unzipped folder name, each from its own seed (reused if already written)."""
    paths = {}
    for i, key in enumerate(datasets):
        target = Path(root) / synthetic.FOLDER_NAMES[key]
        if not target.is_dir():
            synthetic.WRITERS[key](target, n_train, n_test, 100 + i)
        paths[key] = target
    return paths


def untrained_dice(cfg) -> float:
    """Test Dice of the freshly initialised decoder (same seed as training): the chance level to beat."""
    seed_everything(cfg.train.seed)
    source = open_data(cfg.data)
    refs, _ = make_splits(source, cfg.train.seed, cfg.data.val_fraction)
    test = load_resized(source, refs["test"], cfg.data.size, cache_dir(cfg))
    model = build_model(cfg, source.num_classes)
    probs = predict_split(model, test, torch.device("cpu"))
    return dice_iou(probs, np.asarray(test.masks))[0]


def run_headline(out: Path, progress: bool = True) -> dict:
    root = Path(out) / "data" / "headline"
    if not (root / "Kvasir-SEG").is_dir():
        synthetic.write_kvasir(root / "Kvasir-SEG", n_train=64, n_test=32, seed=0)
    cfg = load_config("smoke", overrides={"data.dataset": "kvasir", "data.root": str(root), "train.device": "cpu",
                                          "run.runs_dir": str(Path(out) / "headline")})
    start = time.perf_counter()
    reused = records.is_done(records.run_dir_for(cfg))   # a demo run again on its --out: read, not trained
    chance = untrained_dice(cfg)
    run_dir = train_run(cfg, progress=progress)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    seg = metrics["profiles"]["segdino"]["metrics"]
    return {"dataset": "kvasir", "method": "segdino", "size": cfg.data.size, "untrained_dice": chance,
            "dice": seg["dice"], "iou": seg["iou"], "hd95": seg["hd95"], "selected_epoch": metrics["selected_epoch"],
            "seconds": time.perf_counter() - start, "run_dir": str(run_dir), "reused": reused}


def run_matrix(out: Path, datasets=DEMO_DATASETS, methods=None, progress: bool = True) -> list[dict]:
    from benchmark.sweep import SweepSpec, run_sweep

    write_demo_data(Path(out) / "data" / "mini", datasets)
    spec = SweepSpec(tuple(datasets), tuple(methods or DECODERS), (0,), "smoke", None,
                     {**MATRIX, "data.root": str(Path(out) / "data" / "mini"), "run.runs_dir": str(Path(out) / "runs"),
                      "train.device": "cpu"})
    return run_sweep(spec, progress=progress)


def run_demo(out: Path, datasets=DEMO_DATASETS, methods=None, matrix: bool = True, report: bool = True,
             progress: bool = True) -> DemoResult:
    start = time.perf_counter()
    result = DemoResult(run_headline(out, progress))
    if matrix:
        result.matrix = run_matrix(out, datasets, methods, progress)
        if report:
            from reports.render import render_report
            result.report = render_report(Path(out) / "runs", Path(out) / "report")
    result.seconds = time.perf_counter() - start
    return result
