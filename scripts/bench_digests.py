"""Time the image cache's content key of a dataset: every file hashed (before the digest memo, every run) vs the
digests memoised by stat (every later run of a sweep over unchanged files).

Writes N image/mask pairs of random bytes (the key reads bytes, it decodes nothing), images of about --image-kb
(0.5x to 1.5x) and masks of about --mask-kb, into a temporary folder under --dir, then times `content_key`
- hash all, page cache: without a cache folder (every file read and hashed), the files still in memory;
- hash all, from disk: the same after dropping these files' pages (posix_fadvise DONTNEED; best effort);
- first memo: with an empty cache folder (every file hashed, the memo written);
- memoised: with the memo (a stat per file, nothing read), the median of --repeats calls.
Prints seconds and the ratios and saves them, with the environment, to reports/bench_digests.json (or --out).
Generating the files is reported, not counted.

    python scripts/bench_digests.py [--n 1000] [--image-kb 1000] [--mask-kb 25] [--dir /tmp] [--repeats 5]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmark.data import image_cache
from benchmark.data.base import DatasetSource, SampleRef
from benchmark.data.image_cache import content_key, digest_memo_path
from benchmark.records import machine


def write_files(folder: Path, n: int, image_kb: int, mask_kb: int, seed: int) -> list[SampleRef]:
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    refs = []
    for i in range(n):
        paths = folder / "images" / f"{i:05d}.jpg", folder / "masks" / f"{i:05d}_segmentation.png"
        for path, kb in zip(paths, (image_kb, mask_kb)):
            with open(path, "wb") as f:
                f.write(rng.bytes(int(kb * 1000 * rng.uniform(0.5, 1.5))))
                f.flush()
                os.fsync(f.fileno())    # clean pages, so that they can be dropped
        refs.append(SampleRef(f"{i:05d}", *paths))
    return refs


def drop_pages(refs: list[SampleRef]) -> None:
    for ref in refs:
        for path in (ref.image, ref.mask):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def run(n: int, image_kb: int, mask_kb: int, seed: int, where: Path | None, repeats: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="segbench_bench_digests_", dir=where) as tmp:
        folder = Path(tmp)
        generation, refs = timed(lambda: write_files(folder / "data", n, image_kb, mask_kb, seed))
        written = time.time()
        source = DatasetSource("bench", folder / "data", {"train": refs}, "threshold128")
        cache = folder / "cache"
        data_bytes = sum(p.stat().st_size for p in (folder / "data").rglob("*") if p.is_file())

        hash_all, key = timed(lambda: content_key(source, refs, 256))
        drop_pages(refs)
        hash_disk, key_disk = timed(lambda: content_key(source, refs, 256))
        waited = max(0.0, image_cache.RACY_NS / 1e9 + 0.5 - (time.time() - written))
        time.sleep(waited)   # files written within the racy window are hashed but not memoised
        first, key_first = timed(lambda: content_key(source, refs, 256, cache))
        memoised = [timed(lambda: content_key(source, refs, 256, cache)) for _ in range(repeats)]
        memo = digest_memo_path(cache, source)
        entries = len(json.loads(memo.read_text())["files"])
        assert key == key_disk == key_first and all(k == key for _, k in memoised) and entries == 2 * n
        memo_seconds = statistics.median(s for s, _ in memoised)
        stat_seconds, _ = timed(lambda: [os.stat(os.path.realpath(p)) for r in refs for p in (r.image, r.mask)])
        return {
            "n_pairs": n, "n_files": 2 * n, "data_bytes": data_bytes, "image_kb": image_kb, "mask_kb": mask_kb,
            "seed": seed, "generation_seconds": generation, "data_dir": str(Path(tmp).parent),
            "hash_all_seconds": hash_all, "hash_all_from_disk_seconds": hash_disk,
            "first_memo_seconds": first, "memoised_seconds": memo_seconds,
            "memoised_seconds_all": [s for s, _ in memoised], "realpath_and_stat_seconds": stat_seconds,
            "ratio": hash_all / memo_seconds, "ratio_from_disk": hash_disk / memo_seconds,
            "hash_all_gb_per_second": data_bytes / hash_all / 1e9,
            "hash_all_from_disk_gb_per_second": data_bytes / hash_disk / 1e9,
            "memo_bytes": memo.stat().st_size, "racy_wait_seconds": waited,
            "hash_all_includes": "read + sha1 of every file (content_key without a cache folder)",
            "memoised_includes": "memo load (JSON), realpath + stat of every file, key hash; no file read",
            "env": {**machine(), "numpy": np.__version__},
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="image/mask pairs")
    parser.add_argument("--image-kb", type=int, default=1000)
    parser.add_argument("--mask-kb", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", type=Path, default=None, help="where the files go (default: the temp folder)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "bench_digests.json")
    args = parser.parse_args()
    r = run(args.n, args.image_kb, args.mask_kb, args.seed, args.dir, args.repeats)
    print(f"{r['n_files']:,} files, {r['data_bytes'] / 1e9:.2f} GB under {r['data_dir']} "
          f"(generation {r['generation_seconds']:.1f} s, not counted)")
    print(f"  hash all, page cache: {r['hash_all_seconds']:.2f} s ({r['hash_all_gb_per_second']:.2f} GB/s)")
    print(f"  hash all, from disk:  {r['hash_all_from_disk_seconds']:.2f} s "
          f"({r['hash_all_from_disk_gb_per_second']:.2f} GB/s)")
    print(f"  first memo:           {r['first_memo_seconds']:.2f} s (hash all + write a {r['memo_bytes'] / 1e3:.0f} kB "
          "memo)")
    print(f"  memoised:             {r['memoised_seconds'] * 1e3:.1f} ms (median of {args.repeats}; realpath + stat "
          f"alone {r['realpath_and_stat_seconds'] * 1e3:.1f} ms)")
    print(f"  ratio {r['ratio']:.0f}x against the page cache, {r['ratio_from_disk']:.0f}x against the disk")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(r, indent=2) + "\n")
    os.replace(tmp, args.out)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
