"""Trainable and frozen parameters, FLOPs, latency, throughput and peak memory of a Segmenter.

FLOPs come from `torch.utils.flop_counter.FlopCounterMode` under the math attention kernel: the fused CPU kernel
is counted as 0 (REFERENCE.md §6). FLOPs = 2 x MACs; matmuls, convolutions and attention (QK^T and AV) are
counted; norms, activations, pooling and interpolation (incl. the final upsampling) are not. `profile_methods`
counts on the meta device: no weights are materialised and no accelerator is needed (counts do not depend on
weights, dtype or device).

Speed is measured on the real model in eval mode under `torch.inference_mode()`: latency at batch 1 and throughput
at a larger batch, each from the median (and mean) of timed calls after warm-up, the accelerator synchronised before
every clock read, with cuDNN's autotuning on (fixed shapes; recorded as `cudnn_benchmark`). Accelerator
variants: bf16 autocast and torch.compile modes ("reduce-overhead" and "max-autotune" add CUDA graphs). Device
names come in as arguments; the CPU path always works.
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from segdino.model import Segmenter, count_parameters

FLOP_TOOL = "torch.utils.flop_counter.FlopCounterMode (SDPA math kernel)"
FLOP_CONVENTION = "FLOPs = 2 x MACs, attention included, batch 1"
DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}  # non-float32 = autocast
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@torch.no_grad()
def count_flops(model: Segmenter, size: int | tuple[int, int]) -> dict:
    """GFLOPs of one image through the backbone and through the decoder (+ final upsampling)."""
    h, w = (size, size) if isinstance(size, int) else size
    param = next(model.parameters())
    images = torch.rand(1, 3, h, w, device=param.device, dtype=param.dtype)
    model.eval()
    with sdpa_kernel(SDPBackend.MATH):
        with FlopCounterMode(display=False) as counter:
            features = model.features(images)
        backbone = counter.get_total_flops()
        with FlopCounterMode(display=False) as counter:
            model.decode(features, (h, w))
        decoder = counter.get_total_flops()
    total = backbone + decoder
    return {"backbone_gflops": backbone / 1e9, "decoder_gflops": decoder / 1e9, "total_gflops": total / 1e9,
            "total_gmacs": total / 2e9, "tool": FLOP_TOOL, "convention": FLOP_CONVENTION}


def profile_record(model: Segmenter, cfg) -> dict:
    """What a run writes to profile.json (latency is measured by `segbench profile`, not during training)."""
    return {"method": cfg.decoder.name, "backbone": cfg.backbone.name, "input_size": [cfg.data.size, cfg.data.size],
            **count_parameters(model), "flops": count_flops(model, cfg.data.size), "latency": None}


def build_segmenter(method: str, backbone, num_classes: int = 1, device: str | torch.device = "cpu",
                    weights: str | None = None, **options) -> Segmenter:
    """A frozen-backbone Segmenter for `method`; `backbone` is a registry key or an already built backbone.
    On `device="meta"` nothing is allocated (for counting parameters and FLOPs)."""
    from benchmark.registry import build_decoder
    from segdino.backbone import build_backbone

    with torch.device(device):
        if isinstance(backbone, str):
            backbone = build_backbone(backbone, None if str(device) == "meta" else weights)
        decoder = build_decoder(method, backbone.embed_dim, num_classes, **options)
    return Segmenter(backbone, decoder).to(device)


def count_method_flops(method: str, backbone: str, size: int | tuple[int, int], num_classes: int = 1,
                       **options) -> dict:
    """Parameters and GFLOPs / GMACs of backbone and decoder, counted on the meta device (no weights, no GPU)."""
    model = build_segmenter(method, backbone, num_classes, "meta", **options)
    flops = count_flops(model, size)
    return {**count_parameters(model), "backbone_gflops": flops["backbone_gflops"],
            "decoder_gflops": flops["decoder_gflops"], "total_gflops": flops["total_gflops"],
            "backbone_gmacs": flops["backbone_gflops"] / 2, "decoder_gmacs": flops["decoder_gflops"] / 2,
            "total_gmacs": flops["total_gmacs"], "flop_tool": FLOP_TOOL, "flop_convention": FLOP_CONVENTION}


def _synchronize(device: torch.device) -> None:
    if device.type != "cpu":
        torch.get_device_module(device).synchronize(device)


def _timed_calls(model, images: torch.Tensor, warmup: int, iters: int, amp: Callable,
                 reset_peak: bool = False) -> list[float]:
    """Seconds of each of `iters` calls after `warmup` untimed ones, the device synchronised around each call.
    `reset_peak`: reset the accelerator's peak-memory counter once warm-up is over, so one-off warm-up buffers
    (cuDNN's algorithm search, compilation, CUDA-graph recording) are not counted."""
    device = images.device
    times = []
    with torch.inference_mode(), amp():
        for i in range(warmup + iters):
            _synchronize(device)
            if reset_peak and i == warmup:
                torch.get_device_module(device).reset_peak_memory_stats(device)
            start = time.perf_counter()
            model(images)
            _synchronize(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return times


def _peak_memory(device: torch.device) -> tuple[float | None, str]:
    module = torch.get_device_module(device) if device.type != "cpu" else None
    if module is None:
        return None, ("not measured on CPU: the resident-set high-water mark (ru_maxrss) is one per process, shared "
                      "by every model profiled before, so it cannot be attributed to this method")
    if not hasattr(module, "max_memory_allocated"):
        return None, f"not measured: torch.{device.type} has no max_memory_allocated"
    return (module.max_memory_allocated(device) / 1e6,
            "max_memory_allocated during the timed throughput calls, after warm-up (MB = 1e6 B), weights included")


def measure_speed(model: Segmenter, size: tuple[int, int], device: str | torch.device, batch: int = 8,
                  dtype: str = "float32", compile_mode: str = "none", warmup: int = 3, iters: int = 10) -> dict:
    """Batch-1 latency and batched throughput, each from the median (robust to other processes' bursts on a
    shared host) and the mean of `iters` synchronised calls after `warmup`, and peak memory of one variant."""
    device = torch.device(device)
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype '{dtype}'; valid: {', '.join(DTYPES)}")
    if compile_mode not in COMPILE_MODES:
        raise ValueError(f"unknown compile mode '{compile_mode}'; valid: {', '.join(COMPILE_MODES)}")
    def amp():  # a fresh context per use
        return nullcontext() if DTYPES[dtype] is None else torch.autocast(device.type, dtype=DTYPES[dtype])
    model = model.eval()
    if compile_mode != "none":
        torch._dynamo.reset()
        model = torch.compile(model, mode=None if compile_mode == "default" else compile_mode, dynamic=False)
    h, w = size
    tuned = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True   # fixed shapes: let cuDNN pick its fastest convolutions, as timm's does
    try:
        times = _timed_calls(model, torch.rand(1, 3, h, w, device=device), warmup, iters, amp)
        batched = _timed_calls(model, torch.rand(batch, 3, h, w, device=device), warmup, iters, amp,
                               reset_peak=device.type != "cpu" and hasattr(torch.get_device_module(device),
                                                                            "reset_peak_memory_stats"))
    finally:
        torch.backends.cudnn.benchmark = tuned
    peak, note = _peak_memory(device)
    return {"batch1_ms": statistics.median(times) * 1e3, "batch1_ms_mean": statistics.fmean(times) * 1e3,
            "throughput_img_s": batch / statistics.median(batched),
            "throughput_img_s_mean": batch / statistics.fmean(batched),
            "throughput_batch": batch, "peak_mem_mb": peak, "peak_mem_note": note}


def default_variants(device: str | torch.device) -> list[tuple[str, str]]:
    """(dtype, compile) pairs: fp32 eager on CPU; on an accelerator also bf16 autocast, eager and compiled, and
    bf16 compiled with max-autotune (CUDA graphs)."""
    if torch.device(device).type == "cpu":
        return [("float32", "none")]
    return [("float32", "none"), ("bfloat16", "none"), ("bfloat16", "default"), ("bfloat16", "max-autotune")]


def device_name(device: str | torch.device) -> str:
    device = torch.device(device)
    if device.type != "cpu":
        module = torch.get_device_module(device)
        if hasattr(module, "get_device_name"):
            return module.get_device_name(device)
        return device.type
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def _load_average() -> float | None:
    """The host's 1-minute load average: other processes on the same cores slow every timing down, so each row
    records it (compare with `cpu_count`)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        return None


def environment_fields(device: str | torch.device) -> dict:
    import segmentation_models_pytorch as smp
    import timm

    return {"device_name": device_name(device), "num_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "float32_matmul_precision": torch.get_float32_matmul_precision(), "cudnn_benchmark": True,
            "torch": torch.__version__,
            "timm": timm.__version__, "smp": smp.__version__, "python": platform.python_version()}


def profile_methods(methods: Sequence[str], backbone: str, size: int | tuple[int, int],
                    device: str | torch.device = "cpu", weights: str | None = None, batch: int = 8,
                    variants: Sequence[tuple[str, str]] | None = None, num_classes: int = 1,
                    warmup: int = 3, iters: int = 10,
                    on_row: Callable[[list[dict]], None] | None = None) -> list[dict]:
    """One row per (method, dtype, compile variant): parameters, FLOPs/MACs (meta device), batch-1 latency,
    throughput at `batch`, peak memory and the environment. `variants` are (dtype, compile) pairs, dtype in
    DTYPES (non-float32 = autocast), compile in COMPILE_MODES; None -> `default_variants(device)`. A variant that
    fails (e.g. a compiler missing) gives a row with `error` set and null timings instead of stopping the others.
    `on_row(rows)` is called after every row (e.g. to save what is done, should the process be killed).
    """
    from segdino.backbone import build_backbone

    h, w = (size, size) if isinstance(size, int) else tuple(size)
    device = torch.device(device)
    variants = list(variants) if variants is not None else default_variants(device)
    for dtype, compile_mode in variants:  # a typo is the user's error: say so before any work, not per row
        if dtype not in DTYPES or compile_mode not in COMPILE_MODES:
            raise ValueError(f"unknown variant '{dtype}:{compile_mode}'; dtypes: {', '.join(DTYPES)}; "
                             f"compile modes: {', '.join(COMPILE_MODES)}")
    env = environment_fields(device)
    real_backbone = build_backbone(backbone, weights).to(device)
    rows = []
    for method in methods:
        counts = count_method_flops(method, backbone, (h, w), num_classes)
        model = build_segmenter(method, real_backbone, num_classes, device)
        for dtype, compile_mode in variants:
            row = {"method": method, "backbone": backbone, "weights": weights or "random", "size": f"{h}x{w}",
                   "height": h, "width": w, "device": str(device), "dtype": dtype,
                   "autocast": DTYPES.get(dtype) is not None, "compile": compile_mode, **counts}
            row["load_avg_1min_before"] = _load_average()
            try:
                row.update(measure_speed(model, (h, w), device, batch, dtype, compile_mode, warmup, iters),
                           error=None)
            except Exception as exc:  # noqa: BLE001 - one failed variant (e.g. no compiler) must not lose the others
                row.update(batch1_ms=None, batch1_ms_mean=None, throughput_img_s=None, throughput_img_s_mean=None,
                           throughput_batch=batch,
                           peak_mem_mb=None, peak_mem_note=None, error=f"{type(exc).__name__}: {exc}"[:500])
            row.update(load_avg_1min_after=_load_average(), warmup=warmup, iters=iters, **env)
            rows.append(row)
            if on_row is not None:
                on_row(rows)
        del model
        if device.type != "cpu":
            torch.get_device_module(device).empty_cache()
    return rows


TABLE_COLUMNS = (("method", "{}"), ("dtype", "{}"), ("compile", "{}"), ("trainable_params", "{:,}"),
                 ("backbone_gflops", "{:.2f}"), ("decoder_gflops", "{:.2f}"), ("total_gmacs", "{:.2f}"),
                 ("batch1_ms", "{:.1f}"), ("throughput_img_s", "{:.1f}"), ("peak_mem_mb", "{:.0f}"))


def format_table(rows: Sequence[dict]) -> str:
    """A plain-text table of the main columns (records keep the raw numbers; this is for the terminal)."""
    cells = [[name for name, _ in TABLE_COLUMNS]]
    for row in rows:
        cells.append(["-" if row.get(k) is None else fmt.format(row[k]) for k, fmt in TABLE_COLUMNS])
    widths = [max(len(r[i]) for r in cells) for i in range(len(TABLE_COLUMNS))]
    lines = ["  ".join(c.rjust(wd) if i > 2 else c.ljust(wd) for i, (c, wd) in enumerate(zip(r, widths)))
             for r in cells]
    errors = [f"{r['method']} {r['dtype']} {r['compile']}: {r['error']}" for r in rows if r.get("error")]
    return "\n".join(lines + errors)


def save_profile(rows: Sequence[dict], out_dir: str | Path, stem: str) -> tuple[Path, Path]:
    """Write `<stem>.csv` (one row per variant, environment in every row) and `<stem>.json` (environment + rows)."""
    from benchmark import records

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.json"
    records.write_csv(csv_path, rows)
    import segmentation_models_pytorch as smp
    import timm

    # versions always; device fields from the timed rows (--no-timing rows carry none)
    env = {"torch": torch.__version__, "timm": timm.__version__, "smp": smp.__version__,
           "python": platform.python_version()}
    env.update({k: rows[0][k] for k in ("device", "device_name", "num_threads") if rows and k in rows[0]})
    records.write_json(json_path, {"created": records.now(), "platform": platform.platform(), **env,
                                   "rows": list(rows)})
    return csv_path, json_path
