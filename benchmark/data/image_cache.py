"""Decoded and resized images, cached once per (dataset split, input size) and keyed by file content.

Images are resized bicubic with antialias (PIL's resampling filters scale with the reduction factor), masks nearest
after binarising, as the public code does (REFERENCE.md §2). The cache is two memory-mapped .npy arrays; its name is
a hash of the size, the mask encoding and every file's bytes, so an edited file can never reuse stale pixels. Each
file's digest is remembered by its stat (DigestMemo), so a run does not read an unchanged dataset again to key it.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from benchmark.data.base import DataError, DatasetSource, SampleRef
from benchmark.progress import bars_off
from benchmark.records import atomic_write_bytes, ensure_free_space, file_lock
from benchmark.workers import cpu_share


@dataclass
class ResizedSplit:
    """uint8 arrays N x S x S x 3 and N x S x S, with keys and native (H, W) sizes, in `refs` order."""

    images: np.ndarray
    masks: np.ndarray
    refs: list[SampleRef]
    native_sizes: list[tuple[int, int]]
    skipped: list[dict] = field(default_factory=list)
    cache_key: str = ""
    base: "ResizedSplit | None" = None          # for a subset: the split it indexes into, and where
    base_index: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.refs)

    def subset(self, positions) -> "ResizedSplit":
        """A view of some samples (no pixel copies), remembering the base split so cached features of the base
        serve every seed's train/validation carving."""
        positions = np.asarray(positions, dtype=np.int64)
        base = self.base or self
        index = positions if self.base_index is None else self.base_index[positions]
        return ResizedSplit(IndexedArray(base.images, index), IndexedArray(base.masks, index),
                            [self.refs[i] for i in positions], [self.native_sizes[i] for i in positions],
                            [], self.cache_key, base, index)

    def positions_of(self, keys) -> list[int]:
        where = {r.key: i for i, r in enumerate(self.refs)}
        return [where[k] for k in keys if k in where]


class IndexedArray:
    """Rows `index` of an array (often a memory map), read only when indexed."""

    def __init__(self, base, index: np.ndarray):
        self.base, self.index = base, index

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.index), *self.base.shape[1:])

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, idx):
        rows = self.index[idx]
        if np.ndim(rows) == 0:
            return self.base[rows]
        order = np.argsort(rows)                    # memory maps read fastest in file order
        out = np.asarray(self.base[rows[order]])
        return out[np.argsort(order)]

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self[np.arange(len(self.index))], dtype=dtype)


def resize_pair(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    img = np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC))
    msk = np.asarray(Image.fromarray(mask).resize((size, size), Image.NEAREST))
    return img, msk


def _sha1_file(path: Path | str) -> str:
    """sha1 of a file's bytes: the one place a content key reads a file."""
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def _file_digest(path: Path | None, memo: DigestMemo | None = None) -> str:
    """sha1 of the file's bytes (from `memo` while its stat is unchanged); a file that cannot be read is keyed as
    such, and decoding it then raises (or is skipped with skip_bad) with a message naming it."""
    if path is None:
        return "-"
    try:
        return _sha1_file(path) if memo is None else memo.digest(path)
    except OSError as exc:
        return f"unreadable:{type(exc).__name__}"


RACY_NS = 2_000_000_000   # a file changed this close to its hashing, or later, is not memoised (DigestMemo)
_now_ns = time.time_ns    # the clock of that rule (tests move it on)


class DigestMemo:
    """File digests remembered under the file's resolved path with its (st_dev, st_ino, st_size, st_mtime_ns,
    st_ctime_ns), the git index's rule: any write, rename, chmod or `touch` sets ctime, which users cannot set, so a
    changed file never matches. A file whose mtime or ctime lies within RACY_NS of its hashing (or in the future) is
    hashed but not memoised, as git treats "racily clean" entries: a write in the same timestamp tick keeps the stat.
    One JSON file per dataset root, replaced whole: a damaged or unreadable one is ignored and rebuilt; concurrent
    runs may lose each other's entries (hashed again next time), never tear the file."""

    SCHEME = 1

    def __init__(self, path: Path):
        self.path, self.changed = Path(path), False
        self.files = self._load()

    def _load(self) -> dict[str, list]:
        try:
            data = json.loads(self.path.read_bytes())
            if data.get("scheme") == self.SCHEME:
                return {name: entry for name, entry in data["files"].items() if _is_entry(entry)}
        except (OSError, ValueError, TypeError, AttributeError, KeyError):
            pass
        return {}

    def digest(self, path: Path | str) -> str:
        real = os.path.realpath(path)
        now = _now_ns()
        st = os.stat(real)
        stamp = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        entry = self.files.get(real)
        if entry is not None and entry[:5] == stamp:
            return entry[5]
        digest = _sha1_file(real)
        if max(st.st_mtime_ns, st.st_ctime_ns) < now - RACY_NS:
            self.files[real], self.changed = [*stamp, digest], True
        elif self.files.pop(real, None) is not None:
            self.changed = True
        return digest

    def save(self) -> None:
        if not self.changed:
            return
        try:
            atomic_write_bytes(self.path, json.dumps({"scheme": self.SCHEME, "files": self.files}).encode(),
                               fsync=False)   # a cache: a power cut at worst leaves a file that is ignored
        except OSError:   # a read-only or full cache folder: the next run hashes again
            pass


def _is_entry(entry) -> bool:
    return (isinstance(entry, list) and len(entry) == 6 and all(type(v) is int for v in entry[:5])
            and isinstance(entry[5], str) and len(entry[5]) == 40)


def digest_memo_path(cache_dir: Path, source: DatasetSource) -> Path:
    """The digest memo of a dataset: one per resolved root, so two folder datasets never share one."""
    where = hashlib.sha1(os.path.realpath(source.root).encode()).hexdigest()[:16]
    return Path(cache_dir) / "digests" / f"{source.name}-{where}.json"


# of content_key; runs record it in split.json. v3: 16-bit images stretched, not clipped; v4: a mask of two foreground
# indices or colours is refused where v3 read it as one class (`base.several_foregrounds`), so no cache keeps one
CONTENT_SCHEME = "v4"


def content_key(source: DatasetSource, refs: list[SampleRef], size: int, cache_dir: Path | None = None) -> str:
    """A hash of the size, the mask encoding and every file's bytes. With `cache_dir`, digests are memoised there by
    stat (DigestMemo), which changes how a digest is found, never the key."""
    memo = None if cache_dir is None else DigestMemo(digest_memo_path(cache_dir, source))
    h = hashlib.sha256(f"{CONTENT_SCHEME}|{source.name}|{source.mask_encoding}|{size}".encode())
    for ref in refs:
        h.update(f"|{ref.key}|{_file_digest(ref.image, memo)}|{_file_digest(ref.mask, memo)}".encode())
    if memo is not None:
        memo.save()
    return h.hexdigest()[:24]


def load_resized(source: DatasetSource, refs: list[SampleRef], size: int, cache_dir: Path | None = None,
                 skip_bad: bool = False, desc: str = "decode", workers: int = 0) -> ResizedSplit:
    """Decode, binarise and resize every sample once, in `workers` threads (0: one per CPU core, at most 8; PIL
    decodes and resizes without the GIL); later calls with the same content read the cache."""
    key = content_key(source, refs, size, cache_dir)
    if cache_dir is None:
        return _decode(source, refs, size, skip_bad, desc, key, workers)
    folder = Path(cache_dir) / "images" / f"{source.name}-{size}-{key}"
    if not (folder / "meta.json").is_file():
        with file_lock(folder.with_name(folder.name + ".lock")) as locked:   # parallel runs decode once
            if locked:   # no other process writes this entry now: what a killed one left goes
                for old in folder.parent.glob(f"{folder.name}.tmp-*"):
                    shutil.rmtree(old, ignore_errors=True)
            if not (folder / "meta.json").is_file():
                ensure_free_space(folder.parent, len(refs) * size * size * 4, f"the decoded-image cache of "
                                  f"{len(refs)} images", "free space or point the caches at a larger disk "
                                  "(--set data.cache_dir=PATH)")   # before minutes of decoding, not after
                _write_cache(folder, _decode(source, refs, size, skip_bad, desc, key, workers))
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError) as exc:
        raise damaged_cache(folder / "meta.json", exc) from None
    if meta["skipped"] and not skip_bad:   # decoded by a --skip-bad run: this one must fail as a fresh decode does
        raise DataError(meta["skipped"][0]["reason"])
    kept = set(meta["keys"])
    return ResizedSplit(open_cached(folder / "images.npy"), open_cached(folder / "masks.npy"),
                        [r for r in refs if r.key in kept], [tuple(s) for s in meta["native_sizes"]], meta["skipped"],
                        key)


def open_cached(path: Path) -> np.ndarray:
    """A cache array, memory-mapped. Entries are written whole and renamed into place, so a damaged one took a disk
    error or a partial copy of the runs folder: named, with the fix."""
    try:
        return np.load(path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise damaged_cache(path, exc) from None


def damaged_cache(path: Path, exc: Exception) -> DataError:
    return DataError(f"cache file {path} is damaged ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                     f"): remove its folder {path.parent}, which the next run rebuilds")


def _decode(source: DatasetSource, refs: list[SampleRef], size: int, skip_bad: bool, desc: str,
            key: str, workers: int = 0) -> ResizedSplit:
    """The samples in order, whatever the number of threads: the same arrays, and the first unreadable sample in
    order is the one named."""

    def one(ref: SampleRef):
        try:
            image, mask = source.read_image(ref), source.read_mask(ref)
            if image.shape[:2] != mask.shape:
                raise DataError(f"mask {ref.mask} is {mask.shape[1]}x{mask.shape[0]} but its image {ref.image} is "
                                f"{image.shape[1]}x{image.shape[0]}; fix or remove this pair, or skip such samples "
                                "with --skip-bad")
        except DataError as exc:
            return exc
        return (*resize_pair(image, mask, size), tuple(image.shape[:2]))

    images, masks, kept, sizes, skipped = [], [], [], [], []
    threads = workers or min(8, cpu_share())   # this run's cores (a Slurm allocation, a sweep's share)
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    try:
        decoded = pool.map(one, refs) if pool else map(one, refs)
        for ref, result in zip(refs, tqdm(decoded, total=len(refs), desc=f"{desc} {source.name}", leave=False,
                                          disable=len(refs) < 50 or bars_off())):
            if isinstance(result, DataError):
                if not skip_bad:
                    raise result
                skipped.append({"key": ref.key, "reason": str(result)})
                continue
            img, msk, native = result
            images.append(img)
            masks.append(msk)
            kept.append(ref)
            sizes.append(native)
    finally:   # an error or Ctrl-C: the queued samples are dropped, not decoded first
        if pool:
            pool.shutdown(cancel_futures=True)
    if not kept:
        raise DataError(f"{source.name}: no readable samples in this split under {source.root}")
    return ResizedSplit(np.stack(images), np.stack(masks), kept, sizes, skipped, key)


def _write_cache(folder: Path, split: ResizedSplit) -> None:
    """Written under a private name and renamed, so a reader never sees a half-written entry."""
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    np.save(tmp / "images.npy", split.images)
    np.save(tmp / "masks.npy", split.masks)
    (tmp / "meta.json").write_text(json.dumps({"keys": [r.key for r in split.refs], "native_sizes": split.native_sizes,
                                               "skipped": split.skipped}))
    try:
        tmp.rename(folder)
    except OSError:  # another process wrote the same content first
        shutil.rmtree(tmp, ignore_errors=True)
