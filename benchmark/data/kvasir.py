"""Kvasir-SEG as downloaded: `Kvasir-SEG/images/*.jpg`, `Kvasir-SEG/masks/*.jpg`, `kavsir_bboxes.json` (sic).

The split is the dataset authors' `train.txt` / `val.txt` (880 / 120; the 120 serve as test, REFERENCE.md §4),
looked for in the dataset folder or beside it. Masks are lossy JPEGs: foreground is grey >= 128.
"""
from __future__ import annotations

from pathlib import Path

from benchmark.data.base import (DataError, DatasetSource, SampleRef, by_stem, child_dir, list_images, nested_root,
                                 unpaired)

EXPECTED = {"train": 880, "test": 120}


def _read_list(path: Path) -> list[str]:
    return [Path(line.strip()).stem for line in path.read_text().splitlines() if line.strip()]


def open_kvasir(root: Path) -> DatasetSource:
    # unzipped into a folder of its own name or another (kvasir-seg/Kvasir-SEG/)
    root, notes = nested_root(Path(root), lambda d: child_dir(d, "images") is not None, "Kvasir-SEG")
    images, masks = child_dir(root, "images") or root / "images", child_dir(root, "masks") or root / "masks"
    for folder in (images, masks):
        if not folder.is_dir():
            raise DataError(f"Kvasir-SEG: expected folder {folder} "
                            "(the data root should be the unzipped Kvasir-SEG folder)")
    image_by_stem = by_stem(list_images(images))
    mask_by_stem = by_stem(list_images(masks))
    lists = {}
    for split, name in (("train", "train.txt"), ("test", "val.txt")):
        found = next((d / name for d in (root, root.parent) if (d / name).is_file()), None)
        if found is None:
            raise DataError(f"Kvasir-SEG: split list {name} not found in {root} or {root.parent}; put the dataset "
                            "authors' train.txt and val.txt beside the images/ folder")
        lists[split] = _read_list(found)
    for split, stems in lists.items():
        repeated = sorted({s for s in stems if stems.count(s) > 1})
        if repeated:
            raise DataError(f"Kvasir-SEG: the {split} list names {len(repeated)} images more than once, "
                            f"e.g. {repeated[0]}; use the dataset authors' train.txt / val.txt unchanged")
    shared = sorted(set(lists["train"]) & set(lists["test"]))
    if shared:
        raise DataError(f"Kvasir-SEG: {len(shared)} images are in both train.txt and val.txt (the test split), "
                        f"e.g. {shared[0]}; the two lists must not overlap")
    splits = {}
    for split, stems in lists.items():
        missing = [s for s in stems if s not in image_by_stem]
        if missing:
            raise DataError(f"Kvasir-SEG: {len(missing)} images listed in the {split} list are missing from {images}, "
                            f"e.g. {missing[0]}")
        splits[split] = [SampleRef(s, image_by_stem[s], mask_by_stem.get(s)) for s in stems]
    return DatasetSource("kvasir", root, splits, "threshold128", 2, dict(EXPECTED), notes,
                         unpaired_masks=unpaired(mask_by_stem, image_by_stem))
