"""`segbench demo`: the whole pipeline on built-in miniature data, on a CPU, in minutes.

Writes miniature datasets in their native layouts, scores the untrained decoder as a chance baseline, trains with
the tiny random DINOv3-architecture backbone (`smoke` preset), evaluates, and prints a results table.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from benchmark.config import load_config
from benchmark.data import synthetic
from benchmark.data.image_cache import load_resized
from benchmark.data.splits import make_splits
from benchmark.evaluate import dice_iou, predict_split
from benchmark.registry import build_model, open_dataset
from benchmark.train import cache_dir, seed_everything, train_run

DEMO_DATA = {"kvasir": ("Kvasir-SEG", synthetic.write_kvasir)}


def write_demo_data(root: Path, n_train: int = 64, n_test: int = 32, seed: int = 0) -> dict[str, Path]:
    """Each demo dataset under its usual unzipped folder name (written once; reused if present)."""
    paths = {}
    for key, (folder, writer) in DEMO_DATA.items():
        target = Path(root) / folder
        if not target.is_dir():
            writer(target, n_train=n_train, n_test=n_test, seed=seed)
        paths[key] = target
    return paths


def untrained_dice(cfg) -> float:
    """Test Dice of the freshly initialised decoder (same seed as training): the chance level to beat."""
    seed_everything(cfg.train.seed)
    source = open_dataset(cfg.data.dataset, cfg.data.root)
    refs, _ = make_splits(source, cfg.train.seed, cfg.data.val_fraction)
    test = load_resized(source, refs["test"], cfg.data.size, cache_dir(cfg))
    model = build_model(cfg, source.num_classes)
    probs = predict_split(model, test, torch.device("cpu"))
    return dice_iou(probs, np.asarray(test.masks))[0]


def run_demo(out: Path, methods: tuple[str, ...] = ("segdino",), seeds: tuple[int, ...] = (0,),
             progress: bool = True) -> list[dict]:
    out = Path(out)
    data = write_demo_data(out / "data")
    rows = []
    for key in data:
        for method in methods:
            for seed in seeds:
                cfg = load_config("smoke", overrides={
                    "data.dataset": key, "data.root": str(out / "data"), "decoder.name": method,
                    "train.seed": seed, "train.device": "cpu", "run.runs_dir": str(out / "runs")})
                start = time.perf_counter()
                chance = untrained_dice(cfg)
                run_dir = train_run(cfg, progress=progress)
                rows.append(_row(run_dir, cfg, chance, time.perf_counter() - start))
    return rows


def _row(run_dir: Path, cfg, chance: float, seconds: float) -> dict:
    import json

    metrics = json.loads((run_dir / "metrics.json").read_text())
    first = next(iter(metrics["profiles"].values()))["metrics"]
    return {"dataset": cfg.data.dataset, "method": cfg.decoder.name, "seed": cfg.train.seed,
            "untrained_dice": chance, **{k: first[k] for k in ("dice", "iou") if k in first},
            "selected_epoch": metrics["selected_epoch"], "seconds": seconds, "run_dir": str(run_dir)}

