"""ISIC 2017 Part 1 (skin lesions, dermoscopy) as downloaded (REFERENCE.md §4: 2,000 / 150 / 600, the official
train / validation / test split, the paper's "ISIC").

Layout: `ISIC-2017_{Training,Validation,Test_v2}_Data/ISIC_<7 digits>.jpg` with masks in
`ISIC-2017_{...}_Part1_GroundTruth/ISIC_<id>_segmentation.png` (0/255 PNG). The suffix is matched case-insensitively;
the `*_superpixels.png` files and the metadata CSV in the data folders are skipped. `root` is the folder holding
the `ISIC-2017_*` folders (or a folder one level above it); an archive unzipped into a folder of its own name
(`ISIC-2017_Training_Data/ISIC-2017_Training_Data/`) is accepted too.
"""
from __future__ import annotations

from pathlib import Path

from benchmark.data.base import DataError, DatasetSource, SampleRef, by_stem, child_dir, list_images, sub_dirs

EXPECTED = {"train": 2000, "val": 150, "test": 600}
PARTS = {"train": ("Training",), "val": ("Validation",), "test": ("Test_v2", "Test")}
MASK_SUFFIX = "_segmentation"


def _has_isic(folder: Path) -> bool:
    return folder.is_dir() and any(c.is_dir() and c.name.lower().startswith("isic-2017_") for c in folder.iterdir())


def find_holder(root: Path) -> Path | None:
    """The folder that holds the `ISIC-2017_*` folders: `root` itself or one of its sub-folders."""
    if _has_isic(root):
        return root
    return next((c for c in sub_dirs(root) if _has_isic(c)), None) if root.is_dir() else None


def _unnest(folder: Path) -> Path:
    inner = child_dir(folder, folder.name)
    return inner if inner is not None else folder


def image_files(folder: Path) -> list[Path]:
    return [p for p in list_images(folder) if not p.stem.lower().endswith("_superpixels")]


def mask_files(folder: Path) -> dict[str, Path]:
    """lower-case image id -> mask path, for `<id>_segmentation.*` in any case (two masks of one id: an error)."""
    return by_stem((p for p in list_images(folder) if p.stem.lower().endswith(MASK_SUFFIX)),
                   key=lambda p: p.stem[: -len(MASK_SUFFIX)].lower(), what="image id")


def open_isic2017(root: Path) -> DatasetSource:
    root = Path(root)
    holder = find_holder(root)
    if holder is None:
        raise DataError(f"ISIC 2017: no ISIC-2017_* folders in {root} or its sub-folders (the data root should be "
                        "the folder holding ISIC-2017_Training_Data/, ISIC-2017_Training_Part1_GroundTruth/, ...)")
    splits, notes, unpaired = {}, [], []
    for split, parts in PARTS.items():
        found = next(((part, child_dir(holder, f"ISIC-2017_{part}_Data"),
                       child_dir(holder, f"ISIC-2017_{part}_Part1_GroundTruth"))
                      for part in parts if child_dir(holder, f"ISIC-2017_{part}_Data") is not None), None)
        if found is None:
            raise DataError(f"ISIC 2017: folder ISIC-2017_{parts[0]}_Data not found in {holder}; unzip the official "
                            f"{split} images archive there")
        part, data, truth = found
        if truth is None:
            raise DataError(f"ISIC 2017: folder ISIC-2017_{part}_Part1_GroundTruth not found in {holder}; unzip the "
                            f"official Part 1 ground-truth archive for {split} there")
        if part != parts[0]:
            notes.append(f"{split}: using ISIC-2017_{part}_* (the official test set is Test_v2)")
        masks = mask_files(_unnest(truth))
        images = by_stem(image_files(_unnest(data)), key=lambda p: p.stem.lower(), what="image id")
        splits[split] = [SampleRef(p.stem, p, masks.get(key)) for key, p in images.items()]
        paired = {masks[key] for key in images if key in masks}   # files named another way pair with nothing
        unpaired += [p for p in list_images(_unnest(truth)) if p not in paired]
    if holder != root:
        notes.append(f"ISIC-2017_* folders found in {holder}")
    return DatasetSource("isic2017", holder, splits, "threshold128", 2, dict(EXPECTED), notes,
                         unpaired_masks=unpaired, mask_suffix=MASK_SUFFIX)
