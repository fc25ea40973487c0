"""Scoring a model on a split under named scoring profiles, and re-scoring a finished run directory."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from benchmark.data.image_cache import ResizedSplit
from benchmark.metrics import Scorer, get_profile
from benchmark.progress import bars_off
from benchmark.workers import ordered_map, processes_for

# The profiles each dataset family is scored under (REFERENCE.md §5); users' own data gets the medical pair.
DATASET_PROFILES = {
    "tn3k": ("segdino", "medical-native"), "kvasir": ("segdino", "medical-native"),
    "isic2017": ("segdino", "medical-native"), "msd": ("mirror",), "vmd": ("mirror",),
    "visha": ("shadow", "shadow-per-frame"),  # accumulated BER (REFERENCE.md §5) and TVSD's per-frame mean
}
DEFAULT_PROFILES = ("segdino", "medical-native")


def profiles_for(dataset: str, requested: tuple[str, ...] | None = None) -> tuple[str, ...]:
    return tuple(requested) if requested else DATASET_PROFILES.get(dataset, DEFAULT_PROFILES)


def to_input(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 N x S x S x 3 -> float N x 3 x S x S in [0, 1] on `device` (the backbone normalises)."""
    return images.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255)


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Sigmoid of the one foreground channel (binary), softmax over classes otherwise."""
    return torch.sigmoid(logits[:, 0]) if logits.shape[1] == 1 else torch.softmax(logits, dim=1)


@torch.no_grad()
def predict_batches(model, split: ResizedSplit, device: torch.device, batch_size: int = 16,
                    autocast_dtype: torch.dtype | None = None, features=None):
    """(start, probabilities) per batch of the split, in order: float32 B x S x S (binary) or B x C x S x S at the
    network size. `features` (a cached-feature reader) replaces the backbone when given."""
    model.eval()
    size = split.images.shape[1:3]
    for start in range(0, len(split), batch_size):
        stop = min(start + batch_size, len(split))
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            if features is not None:
                logits = model.decode(features.batch(range(start, stop), device), size)
            else:
                logits = model(to_input(torch.from_numpy(np.array(split.images[start:stop])), device))
        yield start, probabilities(logits.float()).cpu().numpy()


def predict_split(model, split: ResizedSplit, device: torch.device, batch_size: int = 16,
                  autocast_dtype: torch.dtype | None = None, features=None) -> np.ndarray:
    """Probabilities for every sample at once (N x S x S or N x C x S x S); scoring streams `predict_batches`."""
    return np.concatenate([p for _, p in predict_batches(model, split, device, batch_size, autocast_dtype,
                                                         features)])


def dice_iou(probs: np.ndarray, masks: np.ndarray, eps: float = 1e-6) -> tuple[float, float]:
    """Mean per-image Dice and IoU at 0.5 with the public code's eps (REFERENCE.md §5); the fast check used for
    model selection every epoch (binary: foreground; multi-class: mean over foreground classes)."""
    # copies: the arrays may be read-only memory maps
    counts = overlap_counts(torch.from_numpy(np.array(probs)), torch.from_numpy(np.array(masks)))
    return dice_iou_from_counts(counts, eps)


def overlap_counts(probs: torch.Tensor, masks: torch.Tensor) -> np.ndarray:
    """Per foreground class and image: (intersection, predicted, true) pixel counts at 0.5 (binary) or argmax,
    as int64 K x N x 3, counted where the tensors are."""
    return device_overlap_counts(probs, masks).cpu().numpy()


def device_overlap_counts(probs: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """overlap_counts as a tensor where the inputs are (no copy to the host, so no wait for the device)."""
    if probs.ndim == 4:
        pred = probs.argmax(1)
        pairs = [(pred == c, masks == c) for c in range(1, probs.shape[1])]
    else:
        pairs = [(probs > 0.5, masks > 0)]
    return torch.stack([torch.stack([(p & g).sum((1, 2)), p.sum((1, 2)), g.sum((1, 2))], 1).long()
                        for p, g in pairs])


def dice_iou_from_counts(counts: np.ndarray, eps: float = 1e-6) -> tuple[float, float]:
    inter, ps, gs = (counts[..., i].astype(np.float64) for i in range(3))
    dice = (2 * inter + eps) / (ps + gs + eps)
    iou = (inter + eps) / (ps + gs - inter + eps)
    return float(np.mean(dice)), float(np.mean(iou))


@torch.no_grad()
def validate(model, split: ResizedSplit, device: torch.device, batch_size: int = 16,
             autocast_dtype: torch.dtype | None = None, features=None) -> tuple[float, float]:
    """`dice_iou(predict_split(...), masks)` counted on the device batch by batch: no probability map leaves the
    device, only three counts per image (the epoch's model-selection check)."""
    model.eval()
    size = split.images.shape[1:3]
    bounds = [(start, min(start + batch_size, len(split))) for start in range(0, len(split), batch_size)]
    resident = features is not None and features.resident
    rows = features.device_rows([np.arange(a, b) for a, b in bounds]) if resident else [None] * len(bounds)
    counts = []
    for (start, stop), on_device in zip(bounds, rows):
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            if on_device is not None:
                logits = model.decode(features.rows_batch(on_device), size)
            elif features is not None:
                logits = model.decode(features.batch(range(start, stop), device), size)
            else:
                logits = model(to_input(torch.from_numpy(np.array(split.images[start:stop])), device))
        if on_device is not None:
            masks = features.masks[on_device]
        else:
            masks = torch.from_numpy(np.array(split.masks[start:stop])).to(device, non_blocking=True)
        counts.append(device_overlap_counts(probabilities(logits.float()), masks))
    return dice_iou_from_counts(torch.cat(counts, dim=1).cpu().numpy())   # one copy to the host per validation


def native_probability(prob: np.ndarray, native_hw: tuple[int, int]) -> np.ndarray:
    """Resize a network-size probability map back to the image's original size (bilinear), as the mirror and
    shadow literature scores (REFERENCE.md §5). Class maps are resized as a batch of single maps: a 1 x 3 x H x W
    tensor gave other bits on one thread than on several (walk19 D1), so scoring workers would move a number."""
    t = torch.from_numpy(np.ascontiguousarray(prob))
    t = t[None, None] if t.ndim == 2 else t[:, None]
    t = F.interpolate(t, size=tuple(native_hw), mode="bilinear", align_corners=False)
    return t[0, 0].numpy() if prob.ndim == 2 else t[:, 0].numpy()


class ImageScores:
    """One test image scored under every profile, at network size against its resized mask or at native size
    against its original mask: the job of `score_split`'s worker processes (`workers.ordered_map`)."""

    def __init__(self, source, profiles: tuple[str, ...], num_classes: int):
        self.source = source
        self.scorers = {name: Scorer(get_profile(name), num_classes=num_classes) for name in profiles}
        self.network = any(s.profile.resolution != "native" for s in self.scorers.values())

    def __call__(self, item) -> dict[str, tuple]:
        ref, prob, network_mask = item
        native, out = None, {}
        memos: dict[str, dict] = {"native": {}, "network": {}}  # work shared by profiles on one grid
        for name, scorer in self.scorers.items():
            if scorer.profile.resolution == "native":
                if native is None:
                    native_mask = self.source.read_mask(ref)
                    native = native_probability(prob, native_mask.shape), native_mask
                out[name] = scorer.compute(ref.key, *native, memo=memos["native"])
            else:
                out[name] = scorer.compute(ref.key, prob, network_mask, memo=memos["network"])
        return out


def score_split(probs, split: ResizedSplit, source, profiles: tuple[str, ...],
                num_classes: int = 2, progress: bool = False, workers: int = 0) -> dict[str, tuple[dict, list[dict]]]:
    """Score network-size probabilities under each profile (`ImageScores`). `probs`: an N x ... array, or (start,
    batch) pairs as `predict_batches` yields them, scored as they come (a large test split never sits in memory at
    once, and the device predicts while `workers` processes score: `train.num_workers`, 0 for one per core but
    one, 1 for none). The rows are recorded in split order, so any number of workers gives the same numbers."""
    job = ImageScores(source, profiles, num_classes)
    scorers = {name: Scorer(get_profile(name), num_classes=num_classes) for name in profiles}
    processes = processes_for(len(split), workers)

    def items():
        for start, batch in ([(0, probs)] if isinstance(probs, np.ndarray) else probs):
            for i, prob in enumerate(batch, start):
                yield split.refs[i], np.asarray(prob), np.asarray(split.masks[i]) if job.network else None

    bar = tqdm(total=len(split), desc=f"test ({', '.join(profiles)})", unit="img", leave=False,
               disable=bars_off(progress))
    for scored in ordered_map(job, items(), processes):
        for name, computed in scored.items():
            scorers[name].record(*computed)
        bar.update()
    bar.close()
    return {name: (s.summary(), s.rows()) for name, s in scorers.items()}


def sample_indices(split: ResizedSplit, n: int) -> list[int]:
    """The samples saved for the report's qualitative grid: the first `n` by key."""
    return sorted(range(len(split)), key=lambda i: split.refs[i].key)[:n]


def keeping(batches, wanted, kept: dict):
    """Pass (start, batch) pairs through, keeping the probabilities of samples `wanted` in `kept`."""
    wanted = set(wanted)
    for start, batch in batches:
        kept.update({i: batch[i - start] for i in wanted if start <= i < start + len(batch)})
        yield start, batch


def safe_key(key: str) -> str:
    return key.replace("/", "__").replace("\\", "__")


def save_samples(folder: Path, split: ResizedSplit, probs, n: int) -> None:
    """The first `n` test images (sorted keys): image, ground truth and prediction PNGs for the report. `probs` is
    indexed by sample position (an array, or a dict holding at least those samples)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in sample_indices(split, n):
        stem = safe_key(split.refs[i].key)
        Image.fromarray(np.asarray(split.images[i])).save(folder / f"{stem}.image.png")
        mask = np.asarray(split.masks[i])
        Image.fromarray(((mask > 0) * 255).astype(np.uint8)).save(folder / f"{stem}.gt.png")
        prob = probs[i] if probs[i].ndim == 2 else 1 - probs[i][0]
        Image.fromarray(np.round(prob * 255).astype(np.uint8)).save(folder / f"{stem}.pred.png")


def _old_metrics(run_dir: Path) -> dict:
    """The scores evaluate merges into: none for an imported run; a run trained here must have its own."""
    import json

    from benchmark import records

    path = run_dir / "metrics.json"
    if (run_dir / "history.csv").is_file() and path.is_file() and not records.is_done(run_dir):
        # stopped while writing its final records: the resume rewrites metrics.json, so a merge would be lost
        raise ValueError(f"{run_dir} has not finished (no DONE): its training stopped while writing its final "
                         "scores; the `segbench train` command that started it finishes it, then evaluate")
    if not path.is_file():
        if (run_dir / "history.csv").is_file():   # trained here, so its selected epoch and time are not known
            raise ValueError(f"{run_dir} was trained by segbench but has no metrics.json" + (
                " though it is marked DONE: its records are damaged; `segbench run` moves such a run aside and "
                "trains it again" if records.is_done(run_dir) else
                ": its training has not finished; the `segbench train` command that started it resumes it"))
        return {}
    fix = ("`segbench run` moves such a run aside and trains it again" if (run_dir / "history.csv").is_file()
           else "remove it and evaluate again (an imported run's scores are all evaluate's)")
    try:
        old = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is damaged ({exc}); {fix}") from None
    if not isinstance(old, dict):
        raise ValueError(f"{path} is damaged (not a JSON object); {fix}")
    return old


def evaluate_run(run_dir: str | Path, data_root: str | None = None, profiles: tuple[str, ...] | None = None,
                 dataset: str | None = None, device: str = "cpu", workers: int | None = None) -> dict:
    """Re-score a run's selected model on its test split under any profiles; merges them into metrics.json.
    `workers`: CPU workers for this machine (`train.num_workers`; default the run's)."""
    from benchmark import records

    run_dir = Path(run_dir)
    if not run_dir.is_dir():   # the error load_run_model gives, without a lock file beside a mistyped path
        return _evaluate_locked(run_dir, data_root, profiles, dataset, device, workers)
    with records.run_lock(run_dir):   # not while a process trains it (RunBusy names that one)
        return _evaluate_locked(run_dir, data_root, profiles, dataset, device, workers)


def _evaluate_locked(run_dir: Path, data_root: str | None, profiles: tuple[str, ...] | None, dataset: str | None,
                     device: str, workers: int | None) -> dict:
    import dataclasses

    from benchmark import records
    from benchmark.data.image_cache import load_resized
    from benchmark.data.splits import make_splits
    from benchmark.registry import open_dataset
    from benchmark.train import cache_dir, check_same_content, check_same_samples, write_scores

    cfg, model = records.load_run_model(run_dir, device)
    old_cfg_dataset = cfg.data.dataset
    old = _old_metrics(run_dir)
    if dataset and dataset != cfg.data.dataset and old:
        raise ValueError(f"{run_dir} holds scores on {cfg.data.dataset}; scoring it on {dataset} would mix them into "
                         "its records. For another dataset's scores run `segbench predict` on its images and "
                         "`segbench score` on the maps (or import the checkpoint again into another folder)")
    data = dataclasses.replace(cfg.data, root=data_root or cfg.data.root, dataset=dataset or cfg.data.dataset)
    if data.root is None:
        raise ValueError(f"{run_dir} records no data root; pass --data-root (the folder holding the dataset)")
    if not Path(data.root).is_dir():
        raise ValueError(f"data root {data.root} is not there" + ("" if data_root else
                         f" (recorded in {run_dir / 'config.yaml'}); pass --data-root"))
    cfg = dataclasses.replace(cfg, data=data,
                              eval=dataclasses.replace(cfg.eval, profiles=profiles or cfg.eval.profiles))
    if dataset and not old:   # an imported run scored for the first time: its config says which dataset
        from benchmark.config import dump_yaml
        records.atomic_write_text(run_dir / "config.yaml", dump_yaml(cfg))
    if workers is not None:   # this machine's cores, not those of the one that trained it (not recorded)
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, num_workers=workers))
    source = open_dataset(data.dataset, data.root, model.num_classes)   # the masks must fit the model's classes
    same_dataset = not dataset or dataset == old_cfg_dataset
    if same_dataset:   # new scores merge with those of the same test images only
        check_same_samples(cfg, run_dir, source, splits=("test",))
    refs, _ = make_splits(source, cfg.train.seed, data.val_fraction, data.subset)
    test = load_resized(source, refs["test"], data.size, cache_dir(cfg), data.skip_bad, desc="test",
                        workers=cfg.train.num_workers)
    if same_dataset:   # and the same bytes (the official test split, whole or its --subset, is the test split)
        check_same_content(cfg, run_dir, {"test": test.cache_key})
    probs = predict_batches(model, test, torch.device(device))
    return write_scores(run_dir, cfg, probs, test, source, old.get("selected_epoch", -1),
                        old.get("train_seconds", 0.0), merge=True, progress=True)
