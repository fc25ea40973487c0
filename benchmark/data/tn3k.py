"""TN3K (thyroid nodules, ultrasound) as downloaded: `trainval-image/`, `trainval-mask/`, `test-image/`, `test-mask/`
and the five fold files `tn3k-trainval-fold{0..4}.json` (REFERENCE.md §4: 2,879 trainval / 614 test).

Masks are grey lossy JPEGs: foreground is grey >= 128. The trainval images form the "train" split; each fold file
holds `{"train": [...], "val": [...]}`, and its "val" list becomes one entry of `DatasetSource.val_folds`, so the
validation split is the dataset's own fold (`splits.make_splits` picks fold `seed mod 5`).

Fold ids: the dataset authors' loader (TRFE-Net, `dataloaders/tn3k.py`) reads each id as a POSITION in the trainval
images sorted by number (`img_names[i]` after `sorted(..., key=int(stem))`); we do the same. With the official file
names (`0000.jpg` upwards) a position equals the file number; where it does not (a missing or extra file), a note
says so, since the folds would then shift. String ids are read as file stems.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from benchmark.data.base import DataError, DatasetSource, SampleRef, child_dir, list_images, natural_key

EXPECTED = {"train": 2879, "test": 614}
FOLDERS = ("trainval-image", "trainval-mask", "test-image", "test-mask")


def _refs(images: Path, masks: Path) -> list[SampleRef]:
    mask_by_stem = {p.stem: p for p in list_images(masks)}
    return [SampleRef(p.stem, p, mask_by_stem.get(p.stem))
            for p in sorted(list_images(images), key=lambda p: natural_key(p.stem))]


def read_fold(path: Path, train: list[SampleRef]) -> list[str]:
    """The keys a fold file holds out for validation (its "val" list)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"TN3K: cannot read fold file {path} ({exc}); re-extract it from the dataset archive") from None
    if not isinstance(data, dict) or not isinstance(data.get("val"), list):
        raise DataError(f"TN3K: fold file {path} should be a JSON object with a \"val\" list (and a \"train\" list)")
    stems = {r.key for r in train}
    keys = []
    for item in data["val"]:
        if isinstance(item, int) and not isinstance(item, bool):
            if not 0 <= item < len(train):
                raise DataError(f"TN3K: fold file {path} holds id {item}, but trainval-image/ has only {len(train)} "
                                "images (ids are positions in the numerically sorted listing: restore the missing "
                                f"trainval images; the official set has {EXPECTED['train']:,})")
            keys.append(train[item].key)
        elif isinstance(item, str) and Path(item).stem in stems:
            keys.append(Path(item).stem)
        else:
            raise DataError(f"TN3K: fold file {path} names '{item}', which is not an image in trainval-image/")
    return keys


def open_tn3k(root: Path) -> DatasetSource:
    root = Path(root)
    dirs = {name: child_dir(root, name) for name in FOLDERS}
    missing = [name for name, d in dirs.items() if d is None]
    if missing:
        raise DataError(f"TN3K: expected folder(s) {', '.join(missing)} in {root} (point --data-root at the unzipped "
                        "tn3k folder, the one holding trainval-image/ and the fold files)")
    splits = {"train": _refs(dirs["trainval-image"], dirs["trainval-mask"]),
              "test": _refs(dirs["test-image"], dirs["test-mask"])}
    notes = []
    fold_files = sorted(root.glob("tn3k-trainval-fold*.json"), key=lambda p: natural_key(p.name))
    fold_files = [p for p in fold_files if re.fullmatch(r"tn3k-trainval-fold\d+\.json", p.name)]
    val_folds = [read_fold(p, splits["train"]) for p in fold_files]
    if fold_files:
        notes.append(f"validation: the dataset's fold files ({', '.join(p.name for p in fold_files)}); "
                     "ids read as positions in the numerically sorted trainval-image/ listing (TRFE-Net's rule)")
        shifted = [(i, r.key) for i, r in enumerate(splits["train"]) if r.key.isdigit() and int(r.key) != i]
        if shifted:
            i, key = shifted[0]
            notes.append(f"trainval-image/ is not numbered 0..N-1 (position {i} holds {key}); the fold files assume "
                         "the official listing, so folds are shifted from the authors' if files were added or removed")
    else:
        notes.append("no tn3k-trainval-fold*.json found: validation falls back to a seeded split of trainval")
    return DatasetSource("tn3k", root, splits, "threshold128", 2, dict(EXPECTED), notes, val_folds)
