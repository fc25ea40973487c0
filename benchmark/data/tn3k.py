"""TN3K (thyroid nodules, ultrasound) as downloaded: `trainval-image/`, `trainval-mask/`, `test-image/`, `test-mask/`
and the five fold files `tn3k-trainval-fold{0..4}.json` (REFERENCE.md §4: 2,879 trainval / 614 test).

Masks are grey lossy JPEGs: foreground is grey >= 128. The trainval images form the "train" split; each fold file
holds `{"train": [...], "val": [...]}`, and its "val" list becomes one entry of `DatasetSource.val_folds`, so the
validation split is the dataset's own fold (`splits.make_splits` picks fold `seed mod 5`).

Fold ids: integers naming trainval images by number. Peer loaders read them two ways: BPAT-UNet as file numbers
(`trainval-image/{id:04d}.jpg`), TRFE-Net as positions in the listing sorted by file number. With the official files
(`0000.jpg` to `2878.jpg`, no gaps) the two agree, so we read an id as the image with that number: a missing file
is then an error naming it instead of a silent shift of every later id. Only when the images are not numbered are
ids read as positions in the sorted listing (with a note). String ids are read as file stems.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from benchmark.data.base import (DataError, DatasetSource, SampleRef, by_stem, child_dir, list_images, natural_key,
                                 nested_root, unpaired)

EXPECTED = {"train": 2879, "test": 614}
FOLDERS = ("trainval-image", "trainval-mask", "test-image", "test-mask")


def _refs(images: Path, masks: Path) -> tuple[list[SampleRef], list[Path]]:
    """The samples of one image folder in number order, and the masks that pair with none of them."""
    image_by_stem, mask_by_stem = by_stem(list_images(images)), by_stem(list_images(masks))
    refs = [SampleRef(stem, p, mask_by_stem.get(stem))
            for stem, p in sorted(image_by_stem.items(), key=lambda item: natural_key(item[0]))]
    return refs, unpaired(mask_by_stem, image_by_stem)


def read_fold(path: Path, train: list[SampleRef]) -> list[str]:
    """The keys a fold file holds out for validation (its "val" list)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"TN3K: cannot read fold file {path} ({exc}); re-extract it from the dataset archive") from None
    if not isinstance(data, dict) or not isinstance(data.get("val"), list):
        raise DataError(f"TN3K: fold file {path} should be a JSON object with a \"val\" list (and a \"train\" list)")
    stems = {r.key for r in train}
    numbered = {int(r.key): r.key for r in train if r.key.isdigit()}
    keys = []
    for item in data["val"]:
        if isinstance(item, int) and not isinstance(item, bool):
            if numbered:
                if item not in numbered:
                    raise DataError(f"TN3K: fold file {path} holds id {item}, but trainval-image/{item:04d}.jpg is "
                                    "missing; restore it from the dataset archive (the official trainval set has "
                                    f"{EXPECTED['train']:,} images, 0000 to {EXPECTED['train'] - 1:04d})")
                keys.append(numbered[item])
            elif 0 <= item < len(train):
                keys.append(train[item].key)
            else:
                raise DataError(f"TN3K: fold file {path} holds id {item}, but trainval-image/ has only {len(train)} "
                                "images")
        elif isinstance(item, str) and Path(item).stem in stems:
            keys.append(Path(item).stem)
        else:
            raise DataError(f"TN3K: fold file {path} names '{item}', which is not an image in trainval-image/")
    return keys


def open_tn3k(root: Path) -> DatasetSource:
    root, notes = nested_root(Path(root), lambda d: any(child_dir(d, name) for name in FOLDERS))
    dirs = {name: child_dir(root, name) for name in FOLDERS}
    missing = [name for name, d in dirs.items() if d is None]
    if missing:
        raise DataError(f"TN3K: expected folder(s) {', '.join(missing)} in {root} (the data root should be the "
                        "unzipped tn3k folder, the one holding trainval-image/ and the fold files)")
    (train, extra), (test, extra_test) = (_refs(dirs["trainval-image"], dirs["trainval-mask"]),
                                          _refs(dirs["test-image"], dirs["test-mask"]))
    splits = {"train": train, "test": test}
    fold_files = sorted(root.glob("tn3k-trainval-fold*.json"), key=lambda p: natural_key(p.name))
    fold_files = [p for p in fold_files if re.fullmatch(r"tn3k-trainval-fold\d+\.json", p.name)]
    val_folds = [read_fold(p, splits["train"]) for p in fold_files]
    if fold_files:
        numbered = any(r.key.isdigit() for r in splits["train"])   # read_fold's own rule
        notes.append(f"validation: the dataset's fold files ({', '.join(p.name for p in fold_files)}); ids read as "
                     + ("trainval image numbers" if numbered else "positions in the sorted trainval-image/ listing, "
                        "since its files are not numbered as in the official archive"))
    else:
        notes.append("no tn3k-trainval-fold*.json found: validation falls back to a seeded split of trainval")
    return DatasetSource("tn3k", root, splits, "threshold128", 2, dict(EXPECTED), notes, val_folds,
                         unpaired_masks=extra + extra_test)
