"""The validation split for model selection: carved deterministically from the training split, never the test split.

A validation split the dataset ships (ISIC 2017's official one, a folder dataset's val.txt) is used as is; a
dataset's own folds (TN3K's fold files) give fold `seed mod n_folds`. Otherwise a seeded permutation of the training
*groups* (videos for video datasets, images otherwise) sends `val_fraction` of them to validation, so no video has
frames on both sides. The resulting file lists are written to the run directory as a manifest.
"""
from __future__ import annotations

import numpy as np

from benchmark.data.base import DatasetSource, SampleRef


def carve_validation(train: list[SampleRef], fraction: float, seed: int) -> tuple[list[SampleRef], list[SampleRef]]:
    groups = sorted({r.group_id for r in train})
    if len(groups) < 2 or fraction <= 0:
        return train, []
    order = np.random.default_rng(seed).permutation(len(groups))
    n_val = min(len(groups) - 1, max(1, round(fraction * len(groups))))
    val_groups = {groups[i] for i in order[:n_val]}
    return [r for r in train if r.group_id not in val_groups], [r for r in train if r.group_id in val_groups]


def make_splits(source: DatasetSource, seed: int, val_fraction: float = 0.1, subset: int | None = None,
                selection: str = "val") -> tuple[dict[str, list[SampleRef]], str]:
    """train / val / test lists and the rule that made the validation split (recorded in the manifest), for the
    `train.selection_split` choice: "val" carves it as above; "test" (the public code's choice) trains the whole
    official training split and lets the test split serve as "val"; "last" trains the whole official training
    split with no validation split at all (the last epoch is kept)."""
    splits = {k: list(v) for k, v in source.splits.items()}
    if subset:
        splits = {k: v[:subset] for k, v in splits.items()}
    if selection == "test":
        splits["val"] = list(splits.get("test", []))
        rule = "selection on the test split (the public code's choice); the whole training split trains"
    elif selection == "last":
        splits["val"] = []
        rule = "no selection: the whole training split trains and the last epoch is kept"
    elif splits.get("val"):   # a folder dataset's val.txt is the user's own list, not an official split
        rule = "the dataset's val.txt" if source.name == "folder" else "official validation split"
    elif source.val_folds:
        fold = seed % len(source.val_folds)
        held = set(source.val_folds[fold])
        splits["val"] = [r for r in splits["train"] if r.key in held]
        splits["train"] = [r for r in splits["train"] if r.key not in held]
        rule = f"dataset fold file, fold {fold} (seed {seed} mod {len(source.val_folds)})"
    else:
        splits["train"], splits["val"] = carve_validation(splits["train"], val_fraction, seed)
        rule = f"seeded split of training groups: fraction {val_fraction}, seed {seed}"
    return splits, rule


def size_fingerprint(refs: list[SampleRef]) -> str:
    """A hash of every file's name and size in bytes: files replaced under the same names almost always change
    size, and the stat calls cost milliseconds, so a finished run can be checked against its data on every sweep
    (a hash of the bytes, the image cache's key, is checked when a run resumes). The same files never differ."""
    import hashlib

    def size(path) -> str:
        if path is None:
            return "-"
        try:
            return str(path.stat().st_size)
        except OSError:
            return "missing"
    h = hashlib.sha256()
    for ref in refs:
        h.update(f"{ref.key}|{size(ref.image)}|{size(ref.mask)}\n".encode())
    return h.hexdigest()[:16]


def manifest(splits: dict[str, list[SampleRef]], rule: str) -> dict:
    return {"validation_rule": rule, **{k: [r.key for r in v] for k, v in splits.items()}}
