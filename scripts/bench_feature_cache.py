"""Training time with and without the feature cache: SegDINO on ViT-S/16 (random weights), 256 x 256, CPU.

Both runs use the `paper` preset (frozen backbone, AdamW 1e-4, batch 4) for the same epochs on the same generated
Kvasir-layout data; the cached run includes its one-time feature extraction. Prints the time ratio and the
metric differences, and saves them to reports/bench_feature_cache.json.

    python scripts/bench_feature_cache.py --epochs 50 --train 32 --test 8
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from benchmark.config import load_config  # noqa: E402
from benchmark.data.synthetic import write_kvasir  # noqa: E402
from benchmark.records import machine  # noqa: E402
from benchmark.train import load_data, train_run  # noqa: E402


def config(data: Path, work: Path, runs: str, epochs: int, cache: bool, size: int, device: str):
    return load_config("paper", overrides={
        "data.root": str(data), "run.runs_dir": str(work / runs), "data.cache_dir": str(work / "cache"),
        "train.epochs": epochs, "data.size": size, "train.device": device, "train.feature_cache": cache})


def timed_run(cfg) -> tuple[float, dict, dict]:
    start = time.perf_counter()
    run_dir = train_run(cfg, progress=False)
    seconds = time.perf_counter() - start
    return seconds, json.loads((run_dir / "metrics.json").read_text()), json.loads((run_dir / "env.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--train", type=int, default=32)
    parser.add_argument("--test", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="reports/bench_feature_cache.json")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="segbench-featbench-"))
    try:
        write_kvasir(work / "data" / "Kvasir-SEG", n_train=args.train, n_test=args.test, seed=0)
        plain_cfg = config(work / "data", work, "plain", args.epochs, False, args.size, args.device)
        # decode and resize the images once beforehand, so both runs time training, not JPEG decoding
        (work / "warm").mkdir()
        load_data(plain_cfg, work / "warm")
        plain_s, plain, _ = timed_run(plain_cfg)
        cached_s, cached, env = timed_run(config(work / "data", work, "cached", args.epochs, True, args.size,
                                                 args.device))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    a, b = plain["profiles"]["segdino"]["metrics"], cached["profiles"]["segdino"]["metrics"]
    diffs = {k: abs(a[k] - b[k]) for k in a if isinstance(a[k], float) and k in b}
    result = {
        "what": "SegDINO paper preset, ViT-S/16 random weights, frozen; same epochs/data with and without cache",
        "epochs": args.epochs, "n_train_incl_val": args.train, "n_test": args.test, "size": args.size,
        "seconds_without_cache": plain_s, "seconds_with_cache_incl_extraction": cached_s,
        "speedup": plain_s / cached_s,
        "selected_epoch": {"without": plain["selected_epoch"], "with": cached["selected_epoch"]},
        "test_metrics_without": a, "test_metrics_with": b, "abs_differences": diffs,
        "feature_cache": env.get("feature_cache"),
        "device": args.device, "torch": torch.__version__, **machine(),
        "date": time.strftime("%Y-%m-%d"),
    }
    print(f"without cache: {plain_s:.1f} s   with cache (incl. extraction): {cached_s:.1f} s   "
          f"speed-up: {plain_s / cached_s:.2f}x")
    print("test metric |difference|: " + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
