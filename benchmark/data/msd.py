"""MSD, the Mirror Segmentation Dataset, as downloaded: `MSD/{train,test}/image/*.jpg` and `MSD/{train,test}/mask/*.png`
(mirror = 255; REFERENCE.md §4: 3,063 / 955 images, the widely cited counts).

One test sample (`1751_512x640`) has a known bad mask that the mirror literature skips. We skip it by a recorded
rule: it is left out of its split, listed in `DatasetSource.excluded` with the reason and named in the notes, so a
report can say what was scored. Counts are compared against the files on disk, the excluded one included.
"""
from __future__ import annotations

from pathlib import Path

from benchmark.data.base import (DataError, DatasetSource, SampleRef, by_stem, child_dir, list_images, natural_key,
                                 nested_root, unpaired)

EXPECTED = {"train": 3063, "test": 955}
KNOWN_BAD = {"1751_512x640": "known bad ground-truth mask, skipped by the mirror-segmentation literature"}


def open_msd(root: Path) -> DatasetSource:
    root, nested = nested_root(Path(root), lambda d: any(child_dir(d, n) for n in ("train", "test")))
    splits, excluded, extra = {}, [], []
    for split in ("train", "test"):
        folder = child_dir(root, split)
        images, masks = ((child_dir(folder, "image") if folder else None),
                         (child_dir(folder, "mask") if folder else None))
        if images is None or masks is None:
            raise DataError(f"MSD: expected folders {root / split / 'image'} and {root / split / 'mask'} (the data "
                            "root should be the unzipped MSD folder)")
        image_by_stem, mask_by_stem = by_stem(list_images(images)), by_stem(list_images(masks))
        extra += unpaired(mask_by_stem, image_by_stem)
        refs = []
        for stem, p in sorted(image_by_stem.items(), key=lambda item: natural_key(item[0])):
            if stem in KNOWN_BAD:
                excluded.append({"split": split, "key": stem, "image": str(p), "reason": KNOWN_BAD[stem]})
            else:
                refs.append(SampleRef(stem, p, mask_by_stem.get(stem)))
        splits[split] = refs
    notes = nested + [f"excluded {e['split']}/{e['key']}: {e['reason']}" for e in excluded]
    return DatasetSource("msd", root, splits, "threshold128", 2, dict(EXPECTED), notes, excluded=excluded,
                         unpaired_masks=extra)
