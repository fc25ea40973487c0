"""Time the metrics: score N synthetic 512x512 prediction/mask pairs under the `segdino` and `mirror` profiles.

Prints the figure and saves it, with the environment, to reports/bench_metrics.json (or --out). Only the
scoring calls are timed; generating the pairs is reported separately. Target: 1,000 pairs in <= 20 s on a
2-core CPU.

    python scripts/bench_metrics.py [--n 1000] [--size 512] [--seed 0] [--out reports/bench_metrics.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import scipy

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmark.metrics import Scorer
from benchmark.records import machine

PROFILES = ("segdino", "mirror")


def _ellipses(rng: np.random.Generator, size: int, n: int, yy, xx) -> tuple[np.ndarray, list]:
    """A mask of n random ellipses, and their parameters (to perturb into a prediction)."""
    mask = np.zeros((size, size), dtype=bool)
    params = []
    for _ in range(n):
        cy, cx = rng.uniform(0, size, 2)
        ry, rx = rng.uniform(size / 40, size / 4, 2)
        params.append((cy, cx, ry, rx))
        mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return mask, params


def make_pair(rng: np.random.Generator, size: int, yy, xx) -> tuple[np.ndarray, np.ndarray]:
    """(probability map float32, mask bool): random blobs; ~10% empty masks, ~5% empty predictions, stray
    false-positive blobs in some predictions; soft sigmoid edges so every threshold matters."""
    gt, params = _ellipses(rng, size, int(rng.integers(1, 4)), yy, xx)
    if rng.random() < 0.1:
        gt[:] = False
    logit = np.full((size, size), -6.0, dtype=np.float32)
    if rng.random() > 0.05:
        for cy, cx, ry, rx in params:
            cy, cx = cy + rng.normal(0, 4), cx + rng.normal(0, 4)
            ry, rx = ry * rng.uniform(0.85, 1.15), rx * rng.uniform(0.85, 1.15)
            r2 = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
            logit = np.maximum(logit, (8.0 * (1.0 - r2)).astype(np.float32))
        if rng.random() < 0.3:  # a stray false positive
            stray, _ = _ellipses(rng, size, 1, yy, xx)
            logit[stray] = 3.0
    prob = (1.0 / (1.0 + np.exp(-logit))).astype(np.float32)
    return prob, gt


def run(n: int, size: int, seed: int) -> dict:
    """Score n pairs under each profile; returns timings and the summaries."""
    rng = np.random.default_rng(seed)
    yy, xx = np.ogrid[:size, :size]
    scorers = {name: Scorer(name) for name in PROFILES}
    seconds = {name: 0.0 for name in PROFILES}
    gen_seconds = 0.0
    for i in range(n):
        t0 = time.perf_counter()
        prob, gt = make_pair(rng, size, yy, xx)
        gen_seconds += time.perf_counter() - t0
        for name, scorer in scorers.items():
            t0 = time.perf_counter()
            scorer.add(f"img{i:05d}", prob, gt)
            seconds[name] += time.perf_counter() - t0
    t0 = time.perf_counter()
    summaries = {name: scorer.summary() for name, scorer in scorers.items()}
    reduce_seconds = time.perf_counter() - t0
    total = sum(seconds.values()) + reduce_seconds
    return {
        "n_pairs": n, "size": [size, size], "seed": seed, "profiles": list(PROFILES),
        "scoring_seconds_total": total,
        "scoring_seconds_per_profile": seconds,
        "summary_seconds": reduce_seconds,
        "ms_per_pair": 1000.0 * total / n,
        "generation_seconds": gen_seconds,
        "target_seconds_for_1000": 20.0,
        "metrics": {name: s["metrics"] for name, s in summaries.items()},
        "counts": {name: s["counts"] for name, s in summaries.items()},
        "env": {**machine(), "numpy": np.__version__, "scipy": scipy.__version__},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "bench_metrics.json")
    args = parser.parse_args()
    result = run(args.n, args.size, args.seed)
    print(f"{result['n_pairs']} pairs of {args.size}x{args.size}, profiles {', '.join(PROFILES)}: "
          f"{result['scoring_seconds_total']:.2f} s scoring ({result['ms_per_pair']:.2f} ms/pair; "
          + ", ".join(f"{k} {v:.2f} s" for k, v in result["scoring_seconds_per_profile"].items())
          + f"), generation {result['generation_seconds']:.2f} s (not counted)")
    for name in PROFILES:
        print(f"  {name}: " + ", ".join(f"{k}={v:.4f}" for k, v in result["metrics"][name].items())
              + f"  counts={result['counts'][name]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, args.out)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
