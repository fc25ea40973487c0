"""The DINOv3 backbone alone, measured the way timm's inference benchmark measures a model, beside `segbench profile`.

timm publishes img/s of `vit_small_patch16_dinov3` at 256x256 (REFERENCE.md §6) from its `benchmark.py`: the bare
timm model in eval mode, channels-last input, autocast (AMP) or torch.compile, a large batch, warm-up steps, then
the mean over timed steps with the device synchronised. This script does the same with timm's own model (no segbench
code in the timed path), so the ratio of SegDINO's end-to-end throughput to the bare backbone's on the same device
is comparable with timm's figures from other GPUs. Saves reports/bench_timm_backbone_<device type>.json.

    python scripts/bench_timm_backbone.py --device cuda --batch 1024
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import timm  # noqa: E402
import torch  # noqa: E402

from benchmark.records import machine  # noqa: E402

VARIANTS = {"fp32 eager": (None, None), "amp bf16 eager": (torch.bfloat16, None),
            "amp bf16 compile": (torch.bfloat16, "default"), "amp bf16 max-autotune": (torch.bfloat16, "max-autotune")}


def measure(model, batch: int, size: int, device: torch.device, dtype, compile_mode, warmup: int, steps: int) -> dict:
    if compile_mode:
        torch._dynamo.reset()
        model = torch.compile(model, mode=None if compile_mode == "default" else compile_mode)
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        for _ in range(warmup):
            model(x)
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            model(x)
        sync()
        seconds = time.perf_counter() - start
    return {"img_s": batch * steps / seconds, "step_ms": seconds / steps * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vit_small_patch16_dinov3")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    model = timm.create_model(args.model, pretrained=False, img_size=args.size).to(device).eval()
    model = model.to(memory_format=torch.channels_last)
    rows = []
    out = Path(args.out or f"reports/bench_timm_backbone_{device.type}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.variants:
        dtype, compile_mode = VARIANTS[name]
        try:
            row = measure(model, args.batch, args.size, device, dtype, compile_mode, args.warmup, args.steps)
            row["error"] = None
        except Exception as exc:  # noqa: BLE001 - a missing compiler must not lose the other variants
            row = {"img_s": None, "step_ms": None, "error": f"{type(exc).__name__}: {exc}"[:300]}
        rows.append({"variant": name, **row})
        shown = "-" if row["img_s"] is None else f"{row['img_s']:,.0f} img/s"
        print(f"{args.model} {args.size}x{args.size} batch {args.batch} {name:22s} {shown} {row['error'] or ''}")
        save(out, args, device, rows)   # after every variant: a process killed at a time limit keeps what it measured
    print(f"saved {out}")


def save(out: Path, args, device: torch.device, rows: list[dict]) -> None:
    result = {"what": "bare timm backbone, timm benchmark.py method (channels-last, AMP/compile, mean of timed steps)",
              "model": args.model, "size": args.size, "batch": args.batch, "warmup": args.warmup,
              "steps": args.steps, "device": str(device), "rows": rows, "torch": torch.__version__,
              "timm": timm.__version__, **machine(), "date": time.strftime("%Y-%m-%d")}
    if device.type == "cuda":
        result["device_name"] = torch.cuda.get_device_name(device)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
