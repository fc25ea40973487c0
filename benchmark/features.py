"""The feature cache: frozen-backbone taps and prefix tokens, computed once and shared by every method and seed.

The paper's recipe has a frozen backbone and no augmentation, so an image's features are the same in every epoch,
for every decoder and every seed (DESIGN.md, "Speed by design"). They are stored once per (image content, backbone,
weights hash, input size, taps) as half-precision .npy files read through memory maps. The folder name is a hash of
all of those, so a change of weights, size or any image can never reuse stale features. Extraction holds a file
lock, so parallel runs of a sweep wait for one extraction instead of repeating it.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmark.data.image_cache import ResizedSplit
from benchmark.evaluate import to_input
from benchmark.progress import bars_off
from benchmark.records import ensure_free_space, file_lock
from segdino.backbone import Features

FORMAT = "v2"   # v2: prefix tokens per tap
CACHE_FIX = ("free space, point the caches at a larger disk (--set data.cache_dir=PATH), or train without the cache "
             "(--set train.feature_cache=false)")


def feature_key(split: ResizedSplit, backbone) -> str:
    weights = backbone.weights_sha256 or (f"random:{backbone.name}" if backbone.weights is None else backbone.weights)
    text = "|".join([FORMAT, split.cache_key, backbone.name, weights, str(split.images.shape[1:3]),
                     ",".join(map(str, backbone.layer_indices))])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass
class FeatureStore:
    """Taps (N x 4 x C x h x w) and per-tap prefix tokens (N x 4 x P x C), float16, in the split's order: memory
    maps, or tensors in accelerator memory after `on_device`."""

    taps: np.ndarray
    prefix: np.ndarray
    folder: Path
    extracted: bool   # True when this call computed the features, False when it reused them

    def __len__(self) -> int:
        return len(self.taps)

    index: np.ndarray | None = None   # rows of the base split that this store's positions map to
    masks: torch.Tensor | None = None   # resident stores: the base split's masks, in device memory too

    def for_split(self, split: ResizedSplit) -> "FeatureStore":
        """The same features, addressed by the positions of a subset view of the split they were computed on."""
        return FeatureStore(self.taps, self.prefix, self.folder, self.extracted, split.base_index, self.masks)

    @property
    def nbytes(self) -> int:
        return int(self.taps.nbytes + self.prefix.nbytes)

    @property
    def resident(self) -> bool:
        """In device memory with the masks: a training step or validation reads nothing from the host."""
        return isinstance(self.taps, torch.Tensor) and self.masks is not None

    def with_index(self, index: np.ndarray | None) -> "FeatureStore":
        return FeatureStore(self.taps, self.prefix, self.folder, self.extracted, index, self.masks)

    def on_device(self, device: torch.device, masks=None, chunk: int = 256) -> "FeatureStore":
        """The whole store as float16 tensors in `device` memory, copied in chunks (no full host copy), addressed
        by the base split's positions like the memory maps; `masks` (the base split's, in the same order) go along,
        so a training step reads nothing from the host."""
        taps = torch.empty(self.taps.shape, dtype=torch.float16, device=device)
        prefix = torch.empty(self.prefix.shape, dtype=torch.float16, device=device)
        for start in range(0, len(self.taps), chunk):
            stop = min(start + chunk, len(self.taps))
            taps[start:stop] = torch.from_numpy(np.array(self.taps[start:stop])).to(device)
            prefix[start:stop] = torch.from_numpy(np.array(self.prefix[start:stop])).to(device)
        if masks is not None:
            masks = torch.from_numpy(np.array(masks)).to(device)
        return FeatureStore(taps, prefix, self.folder, self.extracted, masks=masks)

    def device_rows(self, batch_list) -> list[torch.Tensor]:
        """For a resident store: each batch's rows (positions mapped to the base split) as index tensors on the
        device, sent in one copy. A host-to-device copy from pageable memory makes the host wait until the device
        is idle, so one per step would keep the host from queueing the next step while the device computes."""
        sizes = [len(b) for b in batch_list]
        flat = np.concatenate([np.asarray(b, dtype=np.int64) for b in batch_list]) if sizes else np.zeros(0, np.int64)
        if self.index is not None:
            flat = self.index[flat]
        return list(torch.from_numpy(flat).to(self.taps.device).split(sizes))

    def rows_batch(self, rows: torch.Tensor, dtype: torch.dtype = torch.float32) -> Features:
        """Features of a resident store at device rows from `device_rows`."""
        return Features(list(self.taps[rows].to(dtype).unbind(1)), self.prefix[rows].to(dtype))

    def batch(self, indices, device: torch.device, dtype: torch.dtype = torch.float32) -> Features:
        idx = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices)
        if self.index is not None:
            idx = self.index[idx]
        if isinstance(self.taps, torch.Tensor):   # resident in device memory
            rows = torch.as_tensor(idx, device=self.taps.device)
            return Features(list(self.taps[rows].to(dtype).unbind(1)), self.prefix[rows].to(dtype))
        order = np.argsort(idx)
        rows = idx[order]
        back = torch.from_numpy(np.argsort(order))
        taps = torch.from_numpy(np.array(self.taps[rows]))[back].to(device, non_blocking=True).to(dtype)
        prefix = torch.from_numpy(np.array(self.prefix[rows]))[back].to(device, non_blocking=True).to(dtype)
        return Features(list(taps.unbind(1)), prefix)


def _open(folder: Path, extracted: bool) -> FeatureStore:
    from benchmark.data.image_cache import open_cached

    return FeatureStore(open_cached(folder / "taps.npy"), open_cached(folder / "prefix.npy"), folder, extracted)


@torch.no_grad()
def cached_features(split: ResizedSplit, backbone, cache_dir: Path, device: torch.device,
                    batch_size: int = 32, progress: bool = True, desc: str = "features") -> FeatureStore:
    """The split's features from the cache, extracting them first if no run has yet. A subset view is served from
    the features of its base split."""
    if split.base is not None:
        return cached_features(split.base, backbone, cache_dir, device, batch_size, progress, desc).for_split(split)
    key = feature_key(split, backbone)
    folder = Path(cache_dir) / "features" / key
    if (folder / "meta.json").is_file():
        return _open(folder, extracted=False)
    with file_lock(Path(cache_dir) / "features" / f"{key}.lock") as locked:
        if (folder / "meta.json").is_file():   # another process finished while we waited
            return _open(folder, extracted=False)
        if locked:   # no other process writes this entry now: what a killed extraction left goes
            for old in folder.parent.glob(f"{key}.partial*"):
                shutil.rmtree(old, ignore_errors=True)
        tmp = folder.with_name(f"{key}.partial-{os.getpid()}")   # private (a file system without locks)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        backbone.eval()
        n = len(split)
        taps = prefix = None
        for start in tqdm(range(0, n, batch_size), desc=desc, disable=bars_off(progress), leave=False):
            stop = min(start + batch_size, n)
            feats = backbone(to_input(torch.from_numpy(np.array(split.images[start:stop])), device))
            stacked = torch.stack(feats.taps, dim=1).to(torch.float16).cpu().numpy()
            if taps is None:
                per_image = stacked[0].nbytes + feats.prefix[0].numel() * 2
                ensure_free_space(tmp, n * per_image, f"the feature cache of {n} images", CACHE_FIX)
                taps = np.lib.format.open_memmap(tmp / "taps.npy", "w+", np.float16, (n, *stacked.shape[1:]))
                prefix = np.lib.format.open_memmap(tmp / "prefix.npy", "w+", np.float16, (n, *feats.prefix.shape[1:]))
            taps[start:stop] = stacked
            prefix[start:stop] = feats.prefix.to(torch.float16).cpu().numpy()
        taps.flush()
        prefix.flush()
        del taps, prefix
        (tmp / "meta.json").write_text(json.dumps({
            "format": FORMAT, "backbone": backbone.name, "weights": backbone.weights,
            "weights_sha256": backbone.weights_sha256, "image_cache_key": split.cache_key, "n": n,
            "size": list(split.images.shape[1:3]), "taps": list(backbone.layer_indices), "dtype": "float16"}))
        try:
            tmp.rename(folder)
        except OSError:   # without locks, another process wrote the same features first
            shutil.rmtree(tmp, ignore_errors=True)
    return _open(folder, extracted=True)
