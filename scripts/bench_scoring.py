"""Time the test split's scoring at native size, in one process against worker processes (`train.num_workers`).

Writes N synthetic 1024x768 JPEG image/mask pairs (as scripts/bench_image_cache.py does), decodes them to --size,
makes noisy predictions from the resized masks, then times `evaluate.score_split` under the medical pair of
profiles (`segdino` at network size, `medical-native` at 1024x768: the mask decoded again, the prediction upsampled
bilinearly, counts, HD95) in one process and in --processes workers (default: one per core but one, at least 2),
in one run. A first pool on a few images is timed apart (its workers' start; every run starts its own pool).
Prints images/s for both and their ratio and saves them, with the environment, to reports/bench_scoring.json (or
--out). The ratio is bounded by the cores: ~2x on the 2-core CI machine, more on a GPU node.

    python scripts/bench_scoring.py [--n 300] [--size 256] [--processes P] [--out reports/bench_scoring.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))
from bench_image_cache import NATIVE, write_pairs

from benchmark import evaluate
from benchmark.data.base import DatasetSource
from benchmark.data.image_cache import load_resized
from benchmark.records import machine
from benchmark import workers
from benchmark.workers import scoring_processes, usable_cores

PROFILES = ("segdino", "medical-native")


def run(n: int, size: int, seed: int, processes: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="segbench_bench_scoring_") as tmp:
        t0 = time.perf_counter()
        refs = write_pairs(Path(tmp) / "data", n, seed)
        source = DatasetSource("bench", Path(tmp) / "data", {"test": refs}, "threshold128")
        split = load_resized(source, refs, size)
        rng = np.random.default_rng(seed)
        masks = np.asarray(split.masks, dtype=np.float32)
        probs = np.clip(0.8 * masks + 0.2 * rng.random(masks.shape, dtype=np.float32), 0, 1)
        generation = time.perf_counter() - t0

        t0 = time.perf_counter()
        evaluate.score_split(probs[:processes], split.subset(range(processes)), source, PROFILES, workers=processes)
        startup = time.perf_counter() - t0   # the workers' start, and one image each

        timings, results = {}, {}
        for label, count in (("one_process", 1), ("workers", processes)):
            t0 = time.perf_counter()
            results[label] = evaluate.score_split(probs, split, source, PROFILES, workers=count)
            timings[label] = time.perf_counter() - t0
        same = all(results["one_process"][p] == results["workers"][p] for p in PROFILES)
        assert same, "workers changed the numbers"
    return {
        "n_images": n, "native_size_hw": list(NATIVE), "size": size, "seed": seed, "profiles": list(PROFILES),
        "processes": processes, "usable_cores": usable_cores(), "generation_seconds": generation,
        "pool_start_seconds": startup,
        "one_process_seconds": timings["one_process"], "one_process_images_per_second": n / timings["one_process"],
        "workers_seconds": timings["workers"], "workers_images_per_second": n / timings["workers"],
        "speedup": timings["one_process"] / timings["workers"], "identical_numbers": same,
        "metrics": {p: results["workers"][p][0]["metrics"] for p in PROFILES},
        "env": {**machine(), "numpy": np.__version__, "torch": torch.__version__},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--processes", type=int, default=0, help="scoring workers (0: one per core but one, >= 2)")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "bench_scoring.json")
    args = parser.parse_args()
    processes = args.processes or max(2, scoring_processes(0))
    workers.POOL_MIN_ITEMS = 0   # the start-up probe scores a few images in the pool
    r = run(args.n, args.size, args.seed, processes)
    print(f"{r['n_images']} test images of {NATIVE[1]}x{NATIVE[0]}, predicted at {args.size}x{args.size}, profiles "
          f"{', '.join(PROFILES)} (generation {r['generation_seconds']:.1f} s, not counted)")
    print(f"  a pool of {processes} workers on {processes} images: {r['pool_start_seconds']:.2f} s (start-up)")
    print(f"  one process: {r['one_process_seconds']:.2f} s, {r['one_process_images_per_second']:,.1f} images/s")
    print(f"  {processes} workers:   {r['workers_seconds']:.2f} s, {r['workers_images_per_second']:,.1f} images/s "
          f"({r['speedup']:.2f}x on {r['usable_cores']} cores; identical numbers: {r['identical_numbers']})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(r, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
