"""Profile every registered method: parameters, GFLOPs/GMACs, batch-1 latency, throughput, peak memory.

Runs `benchmark.profiling.profile_methods` for all methods (or --methods) at one input size on one device, prints a
table, and saves reports/profile_<device type>.csv and .json (or --stem; environment in every row: device name,
torch, timm, smp), rewritten after every row. Defaults: ViT-S/16 with random weights (speed does not depend on the
weights), 256x256, CPU, fp32 eager, batch 4. On an accelerator the default variants add bf16 autocast and
torch.compile (incl. max-autotune, which uses CUDA graphs); pass --variants to choose, e.g.
`--variants float32:none bfloat16:max-autotune`.

    python scripts/bench_profile.py [--device cpu] [--backbone dinov3_vits16] [--size 256] [--batch 4]
                                    [--weights PATH] [--methods segdino unet ...] [--out reports] [--stem NAME]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmark.profiling import default_variants, format_table, profile_methods, save_profile
from benchmark.registry import DECODERS


def parse_variant(text: str) -> tuple[str, str]:
    dtype, _, compile_mode = text.partition(":")
    return dtype, compile_mode or "none"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backbone", default="dinov3_vits16")
    parser.add_argument("--weights", default=None, help="backbone weights (default: random; speed is the same)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4, help="throughput batch (keep small on CPU)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--methods", nargs="+", default=list(DECODERS), choices=list(DECODERS))
    parser.add_argument("--variants", nargs="+", type=parse_variant, default=None,
                        help="dtype:compile pairs, e.g. float32:none bfloat16:default bfloat16:max-autotune")
    parser.add_argument("--out", type=Path, default=REPO / "reports")
    parser.add_argument("--stem", default=None, help="file name stem (default: profile_<device type>)")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    variants = args.variants or default_variants(device)
    print(f"profiling {len(args.methods)} methods x {len(variants)} variants on {device} "
          f"({args.backbone}, {args.size}x{args.size}, batch 1 and {args.batch}, {torch.get_num_threads()} threads)")
    stem = args.stem or f"profile_{device.type}"
    # every finished row is saved at once: a process killed at a time limit keeps what it measured
    rows = profile_methods(args.methods, args.backbone, args.size, device, args.weights, args.batch, variants,
                           warmup=args.warmup, iters=args.iters, on_row=lambda done: save_profile(done, args.out, stem))
    print(format_table(rows))
    loads = [r["load_avg_1min_before"] for r in rows if r["load_avg_1min_before"] is not None]
    if device.type == "cpu" and loads and max(loads) > 1.5 * rows[0]["num_threads"]:
        print(f"warning: host load average reached {max(loads):.1f} on {rows[0]['cpu_count']} cores during the "
              "run; other processes slowed these timings (each row records the load)")
    csv_path, json_path = save_profile(rows, args.out, stem)
    print(f"saved {csv_path} and {json_path}")
    return 1 if any(r["error"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
