"""Fake but schema-correct run directories (docs/run_records.md, schema 1) for the reports tests.

`write_fake_runs(root)` writes a small sweep with plausible numbers and the awkward cases a real sweep has:
a method missing on one dataset (dpt on visha), a failed seed (kvasir/unet s2: no DONE), a dataset with a single
seed (msd), a run whose metrics.json is truncated (isic2017/upernet s1), a parameter-matched baseline on one
dataset (unet-small on tn3k), and a user dataset (`folder`, the folder FOLDER_ROOT) whose runs have no profile.json.
Every run's
config.yaml is the one `segbench train` resolves (benchmark.config), so tests can vary one setting as `--set` does.
Deterministic: the same call writes the same bytes, so golden files can be compared.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from benchmark.config import dump_yaml, load_config

BACKBONE = "dinov3_vits16"
PRESET = "paper"
SEEDS = (0, 1, 2)
MEDICAL = ("tn3k", "kvasir", "isic2017")
FOLDER_ROOT = "/data/mydata"   # a folder dataset's data.root: the report shows it as "folder (mydata)"

# Centre values per dataset (close to the paper's SegDINO rows) and a per-method offset in "quality" units.
CENTRES = {
    "tn3k": {"dice": 0.83, "iou": 0.74, "hd95": 18.6},
    "kvasir": {"dice": 0.87, "iou": 0.80, "hd95": 21.0},
    "isic2017": {"dice": 0.855, "iou": 0.775, "hd95": 18.0},
    "folder": {"dice": 0.78, "iou": 0.68, "hd95": 25.0},
    "msd": {"iou": 0.90, "acc": 0.975, "max_fbeta": 0.94, "mae": 0.025},
    "vmd": {"iou": 0.66, "acc": 0.90, "max_fbeta": 0.78, "mae": 0.09},
    "visha": {"iou": 0.66, "max_fbeta": 0.80, "mae": 0.020, "ber": 8.5, "s_ber": 15.5, "n_ber": 1.0},
}
QUALITY = {"segdino": 0.0, "unet": -0.015, "upernet": -0.006, "dpt": 0.004, "unet-small": -0.03}
PROFILES = {
    "segdino": {"trainable_params": 2213793, "decoder_gflops": 1.1},
    "unet": {"trainable_params": 8_640_481, "decoder_gflops": 19.7},
    "upernet": {"trainable_params": 24_512_065, "decoder_gflops": 58.2},
    "dpt": {"trainable_params": 13_375_489, "decoder_gflops": 31.4},
    "unet-small": {"trainable_params": 2_301_217, "decoder_gflops": 3.2},
}
LATENCY_MS = {"segdino": 4.1, "unet": 6.3}  # only these methods have a latency measurement


@dataclass
class FakeRuns:
    root: Path
    used: set[str] = field(default_factory=set)  # "<dataset>/<run name>" expected to be used
    skipped: dict[str, str] = field(default_factory=dict)  # run -> a substring of the expected reason


def run_name(method: str, seed: int, backbone: str = BACKBONE, preset: str = PRESET) -> str:
    return f"{method}__{backbone}__{preset}__s{seed}"


def config_yaml(root: Path, dataset: str, method: str, seed: int, backbone: str = BACKBONE, preset: str = PRESET,
                settings: dict | None = None) -> str:
    """The config.yaml `segbench train` writes for this run, with `settings` (`{"data.size": 96}`) as `--set`."""
    overrides = {"backbone.name": backbone, "decoder.name": method, "data.dataset": dataset, "train.seed": seed,
                 "data.root": FOLDER_ROOT if dataset == "folder" else "/data", "run.runs_dir": str(root),
                 **(settings or {})}
    return dump_yaml(load_config(preset, overrides=overrides))


def plan() -> list[tuple[str, str, int]]:
    """(dataset, method, seed) of every run directory written."""
    runs = []
    for dataset in ("tn3k", "kvasir", "isic2017", "msd", "vmd", "visha", "folder"):
        methods = ["segdino", "unet", "upernet", "dpt"]
        if dataset == "visha":
            methods.remove("dpt")  # a method missing on one dataset
        if dataset == "tn3k":
            methods.append("unet-small")
        if dataset == "folder":
            methods = ["segdino", "unet"]
        seeds = (0,) if dataset == "msd" else SEEDS  # a dataset with a single seed
        runs += [(dataset, m, s) for m in methods for s in seeds]
    return runs


def _metrics(dataset: str, method: str, seed: int, rng: np.random.Generator) -> dict:
    q = QUALITY[method] + rng.normal(0.0, 0.004)
    c = CENTRES[dataset]
    if dataset in MEDICAL or dataset == "folder":
        dice = c["dice"] + q
        iou = c["iou"] + 1.2 * q
        hd95 = c["hd95"] * (1 - 6 * q)
        segdino = {"dice": dice, "iou": iou, "hd95": hd95, "hd95_monai": hd95 * 1.18, "hd95_penalised": hd95 * 1.05}
        if dataset == "folder":
            segdino = {"dice": dice, "iou": iou, "precision": dice + 0.02, "recall": dice - 0.015}
        counts = {"n_images": 120, "hd95_inf": int(rng.integers(0, 3))}
        if dataset == "folder":
            del counts["hd95_inf"]
        profiles = {"segdino": _block("segdino", "network", segdino, counts)}
        if dataset != "folder":
            native = {"dice": dice - 0.004, "iou": iou - 0.005, "hd95": hd95 * 3.1}
            profiles["medical-native"] = _block("medical-native", "native", native, {"n_images": 120})
        return profiles
    if dataset in ("msd", "vmd"):
        m = {"iou": c["iou"] + q, "acc": c["acc"] + q / 4, "max_fbeta": c["max_fbeta"] + q / 2,
             "mae": c["mae"] * (1 - 8 * q), "ber": 6.0 * (1 - 8 * q)}
        return {"mirror": _block("mirror", "native", m, {"n_images": 955, "gt_empty": 0} if dataset == "msd" else
                                 {"n_images": 7152, "gt_empty": 1204})}
    m = {"iou": c["iou"] + q, "max_fbeta": c["max_fbeta"] + q / 2, "mae": c["mae"] * (1 - 8 * q),
         "ber": c["ber"] * (1 - 8 * q), "s_ber": c["s_ber"] * (1 - 8 * q), "n_ber": c["n_ber"] * (1 - 5 * q)}
    return {"shadow": _block("shadow", "native", m, {"n_images": 6897})}


def _block(name: str, resolution: str, metrics: dict, counts: dict) -> dict:
    convention = {"name": name, "resolution": resolution, "threshold": 0.5}
    return {"convention": convention, "metrics": {k: float(v) for k, v in metrics.items()}, "counts": counts}


def _profile(method: str) -> dict:
    p = PROFILES[method]
    latency = None
    if method in LATENCY_MS:
        ms = LATENCY_MS[method]
        latency = {"device": "NVIDIA H200", "dtype": "bfloat16", "batch1_ms": ms,
                   "throughput_img_s": 20000.0 / ms, "throughput_batch": 256}
    return {
        "method": method, "backbone": BACKBONE, "input_size": [256, 256],
        "trainable_params": p["trainable_params"], "frozen_params": 21_590_016,
        "flops": {"backbone_gflops": 12.5, "decoder_gflops": p["decoder_gflops"],
                  "total_gflops": 12.5 + p["decoder_gflops"], "total_gmacs": (12.5 + p["decoder_gflops"]) / 2,
                  "tool": "torch.utils.flop_counter.FlopCounterMode",
                  "convention": "FLOPs = 2 x MACs, attention included"},
        "latency": latency,
    }


def _history(method: str, epochs: int, rng: np.random.Generator) -> str:
    lines = ["epoch,step,train_loss,val_dice,val_iou,lr,seconds"]
    q = QUALITY[method]
    for e in range(1, epochs + 1):
        loss = 0.6 * np.exp(-e / 3) + 0.08 + rng.normal(0, 0.005)
        dice = 0.86 + q - 0.35 * np.exp(-e / 2.5) + rng.normal(0, 0.004)
        lines.append(f"{e},{e * 220},{loss:.6f},{dice:.6f},{dice - 0.08:.6f},0.0001,{e * 16.2:.1f}")
    return "\n".join(lines) + "\n"


def _keys(dataset: str) -> list[str]:
    if dataset in ("vmd", "visha"):
        return [f"video{v}/{f:05d}" for v, f in ((1, 0), (1, 8), (2, 0))]
    return [f"case_{i:03d}" for i in range(3)]


def _samples(folder: Path, dataset: str, method: str, seed: int) -> list[str]:
    """Write image/gt/pred PNGs (64x64) for three keys; returns the keys."""
    folder.mkdir(parents=True, exist_ok=True)
    size = 64
    yy, xx = np.mgrid[0:size, 0:size]
    keys = _keys(dataset)
    for i, key in enumerate(keys):
        rng = np.random.default_rng([i, sum(map(ord, dataset))])
        cy, cx, r = 32 + 6 * (i - 1), 30 + 4 * i, 12 + 3 * i
        gt = ((yy - cy) ** 2 + (xx - cx) ** 2 < r**2).astype(np.uint8) * 255
        base = np.stack([yy * 2, xx * 2, np.full_like(yy, 90)], axis=-1).astype(np.float64)
        image = np.clip(base + (gt[..., None] > 0) * 60 + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        shift = round(-QUALITY[method] * 200) + seed
        d = np.sqrt((yy - cy - shift) ** 2 + (xx - cx) ** 2)
        pred = (255 / (1 + np.exp((d - r) / 1.5))).astype(np.uint8)
        stem = key.replace("/", "__")
        Image.fromarray(image).save(folder / f"{stem}.image.png")
        Image.fromarray(gt).save(folder / f"{stem}.gt.png")
        Image.fromarray(pred).save(folder / f"{stem}.pred.png")
    return keys


def _per_image(profiles: dict, keys: list[str], rng: np.random.Generator) -> str:
    header = ["profile", "key", "tp", "fp", "fn", "tn"]
    metric_names = sorted({m for p in profiles.values() for m in p["metrics"]})
    lines = [",".join(header + metric_names)]
    for profile, block in profiles.items():
        for key in keys:
            tp, fp, fn = (int(x) for x in rng.integers(100, 600, size=3))
            cells = [profile, key, str(tp), str(fp), str(fn), str(65536 - tp - fp - fn)]
            for m in metric_names:
                v = block["metrics"].get(m)
                cells.append("" if v is None else f"{v + rng.normal(0, 0.03):.6f}")
            lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def _split(dataset: str, seed: int) -> dict:
    """split.json as benchmark.data.splits writes it, with each dataset's rule (TN3K: a fifth from its fold file;
    ISIC 2017: its official validation split; the others: a tenth carved per seed)."""
    rule, n_train, n_val = {"tn3k": (f"dataset fold file, fold {seed % 5} (seed {seed} mod 5)", 8, 2),
                            "isic2017": ("official validation split", 40, 3)}.get(
        dataset, (f"seeded split of training groups: fraction 0.1, seed {seed}", 9, 1))
    return {"validation_rule": rule, "train": [f"t{i}" for i in range(n_train)],
            "val": [f"v{i}" for i in range(n_val)], "test": ["x0"]}


def write_run(root: Path, dataset: str, method: str, seed: int, *, done: bool = True,
              profile_json: bool = True, epochs: int = 10) -> Path:
    """One run directory; returns its path."""
    rng = np.random.default_rng([seed, sum(map(ord, dataset)), sum(map(ord, method))])
    run = root / dataset / run_name(method, seed)
    run.mkdir(parents=True, exist_ok=True)
    profiles = _metrics(dataset, method, seed, rng)
    (run / "config.yaml").write_text(config_yaml(root, dataset, method, seed))
    env = {"python": "3.11.2", "torch": "2.15.0", "timm": "1.0.31", "smp": "0.6.0", "segbench": "0.1.0",
           "git_sha": "0" * 40, "git_dirty": False, "device": "cuda:0", "weights": "dinov3_vits16.pth",
           "weights_sha256": "a" * 64, "started": "2025-01-01T00:00:00Z", "finished": "2025-01-01T00:14:00Z"}
    (run / "env.json").write_text(json.dumps(env, indent=2))
    (run / "history.csv").write_text(_history(method, epochs, rng))
    keys = _samples(run / "samples", dataset, method, seed)
    (run / "per_image.csv").write_text(_per_image(profiles, keys, rng))
    if profile_json:
        (run / "profile.json").write_text(json.dumps(_profile(method), indent=2))
    (run / "split.json").write_text(json.dumps(_split(dataset, seed)))
    if not done:
        return run
    metrics = {"schema": 1, "dataset": dataset, "method": method, "backbone": BACKBONE, "preset": PRESET,
               "seed": seed, "selected_epoch": int(rng.integers(5, epochs + 1)),
               "selection": {"split": "val", "profile": next(iter(profiles)), "metric": "dice"},
               "train_seconds": float(800 + rng.normal(0, 20)), "profiles": profiles}
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (run / "checkpoint.pt").write_bytes(b"not a real checkpoint")
    (run / "DONE").write_text("")
    return run


def write_fake_runs(root: str | Path) -> FakeRuns:
    """Write the whole fake sweep under `root`; returns which runs should be used and which skipped."""
    root = Path(root)
    fake = FakeRuns(root)
    for dataset, method, seed in plan():
        rel = f"{dataset}/{run_name(method, seed)}"
        if (dataset, method, seed) == ("kvasir", "unet", 2):
            write_run(root, dataset, method, seed, done=False, epochs=4)  # a failed seed
            fake.skipped[rel] = "no DONE"
            continue
        run = write_run(root, dataset, method, seed, profile_json=dataset != "folder")
        if (dataset, method, seed) == ("isic2017", "upernet", 1):
            text = (run / "metrics.json").read_text()
            (run / "metrics.json").write_text(text[: len(text) // 2])  # truncated JSON
            fake.skipped[rel] = "metrics.json is unreadable"
            continue
        fake.used.add(rel)
    return fake


def write_exact_run(root: str | Path, dataset: str, method: str, seed: int, profiles: dict[str, dict[str, float]],
                    *, counts: dict | None = None, preset: str = PRESET, backbone: str = BACKBONE,
                    settings: dict | None = None) -> Path:
    """A minimal complete run with exactly the given metric values: `{profile: {metric: value}}` (for goldens),
    trained with the preset's settings changed by `settings` (`{"data.size": 96}`, as `--set`)."""
    run = Path(root) / dataset / run_name(method, seed, backbone, preset)
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text(config_yaml(Path(root), dataset, method, seed, backbone, preset, settings))
    blocks = {p: {"convention": {"name": p, "resolution": "native", "threshold": 0.5}, "metrics": m,
                  "counts": counts or {"n_images": 10}} for p, m in profiles.items()}
    metrics = {"schema": 1, "dataset": dataset, "method": method, "backbone": backbone, "preset": preset,
               "seed": seed, "selected_epoch": 1, "selection": {"split": "val", "profile": next(iter(profiles)),
                                                                 "metric": "dice"},
               "train_seconds": 1.0, "profiles": blocks}
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if method in PROFILES:
        prof = _profile(method)
        prof["backbone"] = backbone
        (run / "profile.json").write_text(json.dumps(prof, indent=2))
    (run / "DONE").write_text("")
    return run
