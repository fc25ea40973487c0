"""Time the decoded-image cache: the first epoch decodes and resizes every JPEG pair, later epochs read the cache.

Writes N synthetic 1024x768 JPEG image/mask pairs to a temporary folder, then times
- cold: `load_resized(..., cache_dir)` on an empty cache (hash the files, decode, binarise, resize to --size, write);
- warm: `load_resized` again (the files' digests from the memo the cold call wrote, find the cache, memory-map it)
  and reading every array once, as an epoch does;
- cold in one thread (`train.num_workers=1`) against the default threads (a core each, at most 8), in one run.
Prints images/s for both and their ratio (target >= 10x) and saves them, with the environment, to
reports/bench_image_cache.json (or --out). Generating the pairs is reported, not counted.

    python scripts/bench_image_cache.py [--n 300] [--size 256] [--seed 0] [--out reports/bench_image_cache.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import PIL
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmark.data.base import DatasetSource, SampleRef
from benchmark.data.image_cache import content_key, load_resized
from benchmark.data.synthetic import make_scene
from benchmark.records import machine

NATIVE = (768, 1024)    # H, W
TARGET_RATIO = 10.0


def write_pairs(folder: Path, n: int, seed: int) -> list[SampleRef]:
    """n JPEG pairs at 1024x768: a dozen scenes drawn at quarter size, upscaled, shifted and given fresh pixel noise
    per file, so every file differs and compresses like a photograph rather than a flat drawing."""
    rng = np.random.default_rng(seed)
    h, w = NATIVE
    bases = []
    for i in range(12):
        image, mask = make_scene(seed, i, size=(h // 4, w // 4))
        bases.append((np.asarray(Image.fromarray(image).resize((w, h), Image.BICUBIC), dtype=np.int16),
                      np.asarray(Image.fromarray(mask * 255).resize((w, h), Image.NEAREST))))
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    refs = []
    for i in range(n):
        image, mask = bases[i % len(bases)]
        shift = int(rng.integers(0, w))
        noisy = np.roll(image, shift, axis=1) + rng.integers(-8, 9, size=image.shape, dtype=np.int16)
        paths = folder / "images" / f"{i:04d}.jpg", folder / "masks" / f"{i:04d}.jpg"
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(paths[0], quality=90)
        Image.fromarray(np.roll(mask, shift, axis=1)).save(paths[1], quality=90)
        refs.append(SampleRef(f"{i:04d}", *paths))
    return refs


def run(n: int, size: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="segbench_bench_cache_") as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        refs = write_pairs(folder / "data", n, seed)
        generation = time.perf_counter() - t0
        source = DatasetSource("bench", folder / "data", {"train": refs}, "threshold128")
        cache = folder / "cache"

        t0 = time.perf_counter()
        single = load_resized(source, refs, size, folder / "cache-one-thread", desc="cold, one thread", workers=1)
        single_seconds = time.perf_counter() - t0

        t0 = time.perf_counter()
        cold = load_resized(source, refs, size, cache, desc="cold")
        cold_seconds = time.perf_counter() - t0
        assert np.array_equal(single.images, cold.images) and np.array_equal(single.masks, cold.masks)

        t0 = time.perf_counter()
        warm = load_resized(source, refs, size, cache, desc="warm")
        images, masks = np.array(warm.images), np.array(warm.masks)     # read every byte, as an epoch does
        warm_seconds = time.perf_counter() - t0

        t0 = time.perf_counter()
        content_key(source, refs, size)
        hash_seconds = time.perf_counter() - t0

        assert warm.cache_key == cold.cache_key and images.shape == (n, size, size, 3)
        assert np.array_equal(images, cold.images) and np.array_equal(masks, cold.masks)
        cache_bytes = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())
        data_bytes = sum(p.stat().st_size for p in (folder / "data").rglob("*") if p.is_file())
    return {
        "n_pairs": n, "native_size_hw": list(NATIVE), "size": size, "seed": seed,
        "generation_seconds": generation,
        "cold_seconds": cold_seconds, "cold_images_per_second": n / cold_seconds,
        "warm_seconds": warm_seconds, "warm_images_per_second": n / warm_seconds,
        "ratio": cold_seconds / warm_seconds, "target_ratio": TARGET_RATIO,
        "decode_threads": min(8, os.cpu_count() or 1), "cold_one_thread_seconds": single_seconds,
        "thread_speedup": single_seconds / cold_seconds,
        "hash_seconds": hash_seconds,   # hashing every file without the digest memo (scripts/bench_digests.py)
        "jpeg_bytes": data_bytes, "cache_bytes": cache_bytes,
        "cold_includes": "sha1 of every file, JPEG decode, mask binarise, bicubic+nearest resize, cache write",
        "warm_includes": "digest memo (a stat per file), cache lookup, memory-map, copy of every array",
        "env": {**machine(), "numpy": np.__version__, "pillow": PIL.__version__},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "bench_image_cache.json")
    args = parser.parse_args()
    r = run(args.n, args.size, args.seed)
    print(f"{r['n_pairs']} JPEG pairs of {NATIVE[1]}x{NATIVE[0]} -> {args.size}x{args.size} "
          f"(generation {r['generation_seconds']:.1f} s, not counted)")
    print(f"  cold epoch (decode + resize + cache write): {r['cold_seconds']:.2f} s, "
          f"{r['cold_images_per_second']:,.0f} images/s")
    print(f"  warm epoch (cached):                        {r['warm_seconds']:.3f} s, "
          f"{r['warm_images_per_second']:,.0f} images/s")
    print(f"  hashing every file without the digest memo: {r['hash_seconds']:.3f} s")
    print(f"  cold epoch in one thread: {r['cold_one_thread_seconds']:.2f} s; {r['decode_threads']} threads are "
          f"{r['thread_speedup']:.2f}x faster")
    verdict = "meets" if r["ratio"] >= TARGET_RATIO else "MISSES"
    print(f"  ratio {r['ratio']:.1f}x ({verdict} the >= {TARGET_RATIO:.0f}x target)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(r, indent=2) + "\n")
    os.replace(tmp, args.out)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
