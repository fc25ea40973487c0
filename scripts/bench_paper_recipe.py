"""The `paper` preset of SegDINO on a Kvasir-sized dataset, with and without the feature cache, and a projection of
the whole `run --all` matrix (4 methods x 6 datasets x 3 seeds) from measured per-step costs.

1. Generates Kvasir-SEG in its native layout at the official size (880 train incl. validation / 120 test) and
   decodes it once (both runs then time training, not JPEG decoding).
2. Trains SegDINO with the paper preset (ViT-S/16 random weights, frozen, AdamW 1e-4, batch 4, 50 epochs) with the
   feature cache (extraction included) and without it. `--uncached-epochs K` trains the uncached run for K epochs
   only and projects its training time linearly to the full epochs (saved as `projected`, with the measured part).
3. Measures, per method, the cost of one cached training step, of one cached validation image, of one test image
   through the full fp32 model, and of one image of feature extraction; projects every run of the matrix from the
   official split sizes (REFERENCE.md §4) and checks the projection against the measured SegDINO run.
4. `--concurrency 1,2,4,8`: N SegDINO runs (seeds 0..N-1, `--concurrency-epochs` epochs, cached features) side by
   side on the one device, as `segbench run --runs-per-gpu N` runs them; reports the aggregate training throughput
   per N, i.e. how far several runs per GPU shorten the matrix.

    python scripts/bench_paper_recipe.py --device cuda                      # the whole figure on a GPU
    python scripts/bench_paper_recipe.py --device cpu --uncached-epochs 1   # this CPU (hours otherwise)
    python scripts/bench_paper_recipe.py --device cuda --concurrency 1,2,4,8
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmark.config import load_config  # noqa: E402
from benchmark.data.synthetic import write_kvasir  # noqa: E402
from benchmark.evaluate import predict_split, to_input, validate  # noqa: E402
from benchmark.records import machine  # noqa: E402
from benchmark.registry import build_model  # noqa: E402
from benchmark.sweep import PAPER_METHODS, SweepSpec, run_sweep  # noqa: E402
from benchmark.train import (autocast_dtype, batches, compile_decoder, feature_stores, load_data,  # noqa: E402
                             resolve_device, train_epoch, train_run)

# Official split sizes (REFERENCE.md §4; benchmark/data/*.py EXPECTED) as (train, val, test) after the validation
# rule of benchmark/data/splits.py: TN3K holds out one of its 5 folds, ISIC 2017 has an official validation split,
# the others carve 10% of their training groups. ViSha publishes only its total (11,685 frames, 50 / 70 videos):
# its train / test frames are estimated from the video shares.
VISHA_TRAIN = round(11685 * 50 / 120)
SPLITS = {"tn3k": (2879 - 576, 576, 614), "kvasir": (792, 88, 120), "isic2017": (2000, 150, 600),
          "msd": (3063 - 306, 306, 955), "vmd": (7835 - 784, 784, 7152),
          "visha": (VISHA_TRAIN - round(0.1 * VISHA_TRAIN), round(0.1 * VISHA_TRAIN), 11685 - VISHA_TRAIN)}
ESTIMATED = {"visha": "train/test frames estimated from 50/120 videos of 11,685 frames"}


EXTRA: dict[str, str] = {}   # --set overrides, applied to every config of this script


def config(data: Path, work: Path, runs: str, method: str, epochs: int, cache: bool, size: int, device: str):
    return load_config("paper", overrides={
        "data.root": str(data), "run.runs_dir": str(work / runs), "data.cache_dir": str(work / "cache"),
        "decoder.name": method, "train.epochs": epochs, "data.size": size, "train.device": device,
        "train.feature_cache": cache, **EXTRA})


def timed_run(cfg) -> dict:
    start = time.perf_counter()
    run_dir = train_run(cfg, progress=False)
    seconds = time.perf_counter() - start
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {"seconds": seconds, "train_seconds": metrics["train_seconds"], "epochs": cfg.train.epochs,
            "selected_epoch": metrics["selected_epoch"], "test": metrics["profiles"]["segdino"]["metrics"]}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _clock(device: torch.device, fn) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def warm_device(device: torch.device) -> None:
    """Start the accelerator's context and math libraries before anything is timed, so the first timed run does not
    pay them alone."""
    if device.type == "cuda":
        a = torch.randn(256, 256, device=device)
        (a @ a).sum().item()
        torch.nn.functional.conv2d(a[None, None], torch.ones(1, 1, 3, 3, device=device)).sum().item()


def probe(cfg, work: Path, steps: int) -> dict:
    """Seconds per cached training step (batch of the preset), per cached validation image, per test image (full
    fp32 model) and per image of feature extraction, each after a warm-up. Set up as `train_run` sets a run up:
    `train.amp_dtype` for training and validation (the test split in fp32), cached features in device memory
    where `train.features_on_device` puts them, the decoder compiled by `train.compile`."""
    device = resolve_device(cfg.train.device)
    amp = autocast_dtype(cfg)
    (work / "probe").mkdir(exist_ok=True)
    _, splits = load_data(cfg, work / "probe")
    model = compile_decoder(build_model(cfg, 1).to(device), cfg)
    train, val, test = splits["train"], splits["val"], splits["test"]
    stores = feature_stores(cfg, model, {"train": train, "val": val}, device, False)
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
    plan = batches(order, cfg.train.batch_size, False)
    warm, timed = plan[:5], (plan * math.ceil((steps + 5) / len(plan)))[5:5 + steps]
    train_epoch(model, optimizer, train, warm, device, amp, stores["train"])
    step = _clock(device, lambda: train_epoch(model, optimizer, train, timed, device, amp, stores["train"]))
    n_val, n_test = min(len(val), 64), min(len(test), 64)
    val_part, test_part = val.subset(range(n_val)), test.subset(range(n_test))
    val_batch, val_store = max(cfg.train.batch_size, 16), stores["val"].for_split(val_part)
    for _ in range(2):   # CUDA graphs (compile "reduce-overhead") run a function eagerly once, then record it
        validate(model, val_part, device, val_batch, amp, val_store)   # what train_run runs after each epoch
    val_s = _clock(device, lambda: validate(model, val_part, device, val_batch, amp, val_store))
    for _ in range(2):
        predict_split(model, test_part, device, 16)
    test_s = _clock(device, lambda: predict_split(model, test_part, device, 16))

    images = torch.from_numpy(np.array(train.images[:64]))
    with torch.no_grad():
        model.backbone(to_input(images[:16], device))
        extract_s = _clock(device, lambda: [model.backbone(to_input(images[i:i + 16], device))
                                            for i in range(0, len(images), 16)])
    return {"step_s": step / len(timed), "val_img_s": val_s / n_val, "test_img_s": test_s / n_test,
            "extract_img_s": extract_s / len(images), "batch_size": cfg.train.batch_size, "timed_steps": len(timed),
            "amp_dtype": cfg.train.amp_dtype, "compile": cfg.train.compile,
            "features_on_device": isinstance(stores["train"].taps, torch.Tensor)}


def project(costs: dict, epochs: int, batch: int, seeds: int = 3) -> dict:
    """Seconds of every run of the matrix from per-step / per-image costs; extraction once per dataset."""
    runs, per_dataset = {}, {}
    for dataset, (n_train, n_val, n_test) in SPLITS.items():
        steps = math.ceil(n_train / batch)
        extract = (n_train + n_val) * costs["segdino"]["extract_img_s"]
        total = extract
        for method, c in costs.items():
            run = epochs * (steps * c["step_s"] + n_val * c["val_img_s"]) + n_test * c["test_img_s"]
            runs[f"{dataset}/{method}"] = run
            total += seeds * run
        per_dataset[dataset] = total
    return {"runs_s": runs, "datasets_s": per_dataset, "matrix_s": sum(per_dataset.values()),
            "matrix_hours": sum(per_dataset.values()) / 3600, "seeds": seeds, "epochs": epochs,
            "splits_train_val_test": SPLITS, "estimated": ESTIMATED,
            "model": "epochs x (ceil(train/batch) x step + val x val_img) + test x test_img per run, "
                     "+ (train+val) x extract_img once per dataset; runs one after another on one device; not "
                     "modelled: CPU scoring of the test split at native size (mirror/shadow profiles: about 8 ms "
                     "per 720p frame on the 2-core CPU, ~1 min per VMD or ViSha run)"}


def steady_seconds(run_dir: Path) -> tuple[float, int]:
    """(seconds, epochs) of a run's epochs after its first, from history.csv's cumulative clock: the first epoch
    carries one-off costs (CUDA start-up, compilation, CUDA-graph recording) that a 50-epoch run spreads thin."""
    import csv

    with open(run_dir / "history.csv", newline="") as f:
        seconds = [float(row["seconds"]) for row in csv.DictReader(f)]
    return (seconds[-1] - seconds[0], len(seconds) - 1) if len(seconds) > 1 else (seconds[0], 1)


def concurrency(data: Path, work: Path, levels: list[int], epochs: int, size: int, device: str) -> dict:
    """Aggregate training throughput of N SegDINO runs side by side on one device (local workers, as
    `--runs-per-gpu N`), for each N in `levels`; features come from the shared cache (extracted before). The rate
    is that of the epochs after the first (`steady_seconds`; needs --concurrency-epochs >= 2), validation
    included; `step_s_incl_first_epoch` keeps the whole training time."""
    out = []
    for i, n in enumerate(levels):
        runs_dir = work / f"concurrent{i}"
        overrides = {"data.root": str(data), "run.runs_dir": str(runs_dir),
                     "data.cache_dir": str(work / "cache"), "train.epochs": epochs, "data.size": size,
                     "train.device": device, "train.feature_cache": True, **EXTRA}
        start = time.perf_counter()
        run_sweep(SweepSpec(("kvasir",), ("segdino",), tuple(range(n)), "paper", None, overrides),
                  devices=[device], runs_per_gpu=n, progress=False)
        wall = time.perf_counter() - start
        runs = sorted((runs_dir / "kvasir").glob("segdino__*"))
        train_s = [json.loads((r / "metrics.json").read_text())["train_seconds"] for r in runs]
        steady = [steady_seconds(r) for r in runs]
        split = json.loads((runs[0] / "split.json").read_text())
        per_epoch = math.ceil(len(split["train"]) / load_config("paper").train.batch_size)
        steps = n * epochs * per_epoch
        steady_steps = n * steady[0][1] * per_epoch
        out.append({"runs": n, "wall_s": wall, "train_s": train_s, "steps": steps,
                    "steady_s": [s for s, _ in steady], "steady_epochs": steady[0][1],
                    "step_s_effective": max(s for s, _ in steady) / steady_steps,
                    "step_s_incl_first_epoch": max(train_s) / steps})
        print(f"concurrency {n}: {n} runs x {epochs} epochs in {wall:.1f} s wall (training {max(train_s):.1f} s "
              f"longest) -> {out[-1]['step_s_effective'] * 1e3:.2f} ms per step overall after the first epoch "
              f"({out[-1]['step_s_incl_first_epoch'] * 1e3:.2f} ms with it)")
    for row in out:
        row["throughput_vs_first"] = out[0]["step_s_effective"] / row["step_s_effective"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--train", type=int, default=880, help="train+val images (Kvasir-SEG: 880)")
    parser.add_argument("--test", type=int, default=120)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--uncached-epochs", type=int, default=None,
                        help="train the uncached run this many epochs and project to --epochs (default: all)")
    parser.add_argument("--methods", default=",".join(PAPER_METHODS))
    parser.add_argument("--probe-steps", type=int, default=100)
    parser.add_argument("--probe-only", action="store_true",
                        help="skip the two full SegDINO runs: per-method costs, projection and concurrency only")
    parser.add_argument("--concurrency", default=None,
                        help="comma list of runs side by side on the device, e.g. 1,2,4,8 (section 4 of the doc)")
    parser.add_argument("--concurrency-epochs", type=int, default=5)
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every run and probe, e.g. train.amp_dtype=bfloat16")
    parser.add_argument("--out", default=None, help="default: reports/bench_paper_recipe_<device type>.json")
    args = parser.parse_args()
    EXTRA.update(dict(item.split("=", 1) for item in args.sets))
    device = torch.device(args.device)
    out = Path(args.out or f"reports/bench_paper_recipe_{device.type}.json")

    batch = load_config("paper").train.batch_size
    result = {
        "what": "paper preset (frozen ViT-S/16, random weights, AdamW 1e-4, batch 4), Kvasir-sized generated data",
        "overrides": EXTRA, "device": str(device), "epochs": args.epochs, "n_train_incl_val": args.train,
        "n_test": args.test, "size": args.size, "with_cache": None, "without_cache": None, "speedup": None,
        "probe_costs": {}, "projection_check": None, "matrix_projection": None, "single_dataset_check": None,
        "concurrency": None, "complete": False,
        "torch": torch.__version__, **machine(), "date": time.strftime("%Y-%m-%d"),
    }
    if device.type == "cuda":
        result["device_name"] = torch.cuda.get_device_name(device)

    def save() -> None:   # after every section: a process killed at a time limit keeps what it measured
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")

    costs = result["probe_costs"]
    work = Path(tempfile.mkdtemp(prefix="segbench-paperbench-"))
    try:
        warm_device(device)
        t = time.perf_counter()
        write_kvasir(work / "data" / "Kvasir-SEG", n_train=args.train, n_test=args.test, seed=0)
        cached_cfg = config(work / "data", work, "cached", "segdino", args.epochs, True, args.size, args.device)
        (work / "warm").mkdir()
        load_data(cached_cfg, work / "warm")
        print(f"generated and decoded {args.train}+{args.test} images in {time.perf_counter() - t:.0f} s")
        if not args.probe_only:
            result["with_cache"], result["without_cache"] = full_runs(work, cached_cfg, args)
            save()
        for method in args.methods.split(","):
            costs[method] = probe(config(work / "data", work, "probe", method, args.epochs, True, args.size,
                                         args.device), work, args.probe_steps)
            print(f"probe {method:8s} step {costs[method]['step_s'] * 1e3:7.2f} ms  "
                  f"val {costs[method]['val_img_s'] * 1e3:6.2f} ms/img  test {costs[method]['test_img_s'] * 1e3:6.2f}"
                  f" ms/img  extract {costs[method]['extract_img_s'] * 1e3:6.2f} ms/img")
            result["matrix_projection"] = project(costs, args.epochs, batch)
            save()
        levels = [int(n) for n in args.concurrency.split(",")] if args.concurrency else []
        if levels:
            result["concurrency"] = concurrency(work / "data", work, levels, args.concurrency_epochs, args.size,
                                                args.device)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    matrix = result["matrix_projection"] = project(costs, args.epochs, batch)
    if "segdino" in costs:
        result["single_dataset_check"] = project({"segdino": costs["segdino"]}, args.epochs, batch,
                                                 seeds=1)["datasets_s"]
    cached, plain = result["with_cache"], result["without_cache"]
    if cached is not None and "segdino" in costs:
        result["speedup"] = (plain["projected_seconds"] if plain["projected"] else plain["seconds"]) / cached["seconds"]
        n_train = args.train - round(0.1 * args.train)
        c = costs["segdino"]
        per_epoch = math.ceil(n_train / batch) * c["step_s"] + (args.train - n_train) * c["val_img_s"]
        kvasir_like = args.epochs * per_epoch + args.test * c["test_img_s"] + args.train * c["extract_img_s"]
        result["projection_check"] = {
            "segdino_kvasir_sized_projected_s": kvasir_like, "segdino_kvasir_sized_measured_s": cached["seconds"],
            "note": "measured includes run setup, checkpoints and scoring; projected counts only the modelled work"}
        print(f"speed-up with the cache: {result['speedup']:.2f}x; projection check (SegDINO, this data): "
              f"{kvasir_like:.0f} s projected vs {cached['seconds']:.0f} s measured")
    print(f"whole matrix ({len(costs)} methods x 6 datasets x 3 seeds, {args.epochs} epochs, one device): "
          f"{matrix['matrix_hours']:.2f} h projected")
    for dataset, seconds in matrix["datasets_s"].items():
        print(f"  {dataset:9s} {seconds / 3600:7.2f} h")
    result["complete"] = True
    save()
    print(f"saved {out}")


def full_runs(work: Path, cached_cfg, args) -> tuple[dict, dict]:
    """SegDINO's paper preset with the feature cache (extraction included) and without it."""
    cached = timed_run(cached_cfg)
    print(f"with cache:    {cached['seconds']:.1f} s incl. extraction ({cached['train_seconds']:.1f} s training, "
          f"{args.epochs} epochs), test Dice {cached['test']['dice']:.4f}")
    k = args.uncached_epochs or args.epochs
    plain = timed_run(config(work / "data", work, "plain", "segdino", k, False, args.size, args.device))
    plain["projected_train_seconds"] = plain["train_seconds"] * args.epochs / k
    plain["projected_seconds"] = plain["seconds"] + plain["train_seconds"] * (args.epochs - k) / k
    plain["projected"] = k != args.epochs
    print(f"without cache: {plain['seconds']:.1f} s for {k} epochs"
          + (f" -> {plain['projected_seconds']:.1f} s projected to {args.epochs}" if k != args.epochs else ""))
    return cached, plain


if __name__ == "__main__":
    main()
