"""A user's own dataset: `images/` and `masks/` paired by file stem, with optional split lists `train.txt`, `val.txt`,
`test.txt` beside them (one stem or file name per line).

Without split lists the images are split 80/20 into train / test by a seeded permutation, and the notes say so.
Masks are binary (0/255 or 0/1) or class-index images (grey or palette PNG). The encoding is read from the masks:
0/255 -> threshold at 128, 0/1 or larger indices -> the indices as stored. `num_classes` is an option; when it is
not given it is inferred as the largest index + 1. Either way every mask is checked against it, and a mask holding
a larger index is an error naming the file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from benchmark.data.base import (IMAGE_SUFFIXES, DataError, DatasetSource, SampleRef, _open, by_stem, child_dir,
                                 list_images, natural_key, sub_dirs, unpaired)

LISTS = {"train": "train.txt", "val": "val.txt", "test": "test.txt"}
JPEG = (".jpg", ".jpeg")


def mask_values(path: Path, img: Image.Image | None = None) -> np.ndarray:
    """The distinct values a mask stores (palette masks by index). Colour masks are refused."""
    img = _open(path) if img is None else img
    if img.mode in ("RGB", "RGBA"):
        arr = np.asarray(img.convert("RGB"))
        if (arr[..., 0] != arr[..., 1]).any() or (arr[..., 0] != arr[..., 2]).any():
            raise DataError(f"mask {path} is a colour image; save masks as grey or palette PNGs holding class indices")
        arr = arr[..., 0]
    else:
        arr = np.asarray(img if img.mode in ("P", "L", "I", "I;16", "1") else img.convert("L"))
    return np.unique(arr).astype(np.int64)


def _read_list(path: Path, by_stem: dict[str, Path]) -> list[str]:
    stems = [Path(line.strip()).stem for line in path.read_text().splitlines() if line.strip()]
    unknown = [s for s in stems if s not in by_stem]
    if unknown:
        raise DataError(f"folder dataset: {len(unknown)} entries of {path} have no image in images/, "
                        f"e.g. '{unknown[0]}'")
    return stems


def _check_disjoint(root: Path, lists: dict[str, list[str]]) -> None:
    """Each stem once, in one list: a test image in train.txt would leak into training."""
    seen: dict[str, str] = {}
    for split, stems in lists.items():
        for stem in stems:
            if stem in seen:
                where = f"twice in {LISTS[split]}" if seen[stem] == split else \
                    f"in both {LISTS[seen[stem]]} and {LISTS[split]}"
                raise DataError(f"folder dataset: '{stem}' is listed {where} in {root}; each image belongs to one "
                                "split, once")
            seen[stem] = split


def _splits(root: Path, by_stem: dict[str, Path], seed: int,
            test_fraction: float) -> tuple[dict[str, list[str]], list[str]]:
    lists = {split: root / name for split, name in LISTS.items() if (root / name).is_file()}
    if lists:
        if "test" not in lists:
            raise DataError(f"folder dataset: found {', '.join(p.name for p in lists.values())} in {root} but no "
                            "test.txt; add it (one stem per line), or remove the lists for a seeded 80/20 split")
        if "train" not in lists:
            raise DataError(f"folder dataset: found {', '.join(p.name for p in lists.values())} in {root} but no "
                            "train.txt; add it (one stem per line), or remove the lists for a seeded 80/20 split")
        read = {split: _read_list(path, by_stem) for split, path in lists.items()}
        _check_disjoint(root, read)
        return read, [f"splits from {', '.join(p.name for p in lists.values())}"]
    stems = sorted(by_stem, key=natural_key)
    order = np.random.default_rng(seed).permutation(len(stems))
    n_test = min(len(stems) - 1, max(1, round(test_fraction * len(stems)))) if len(stems) > 1 else 0
    test = {stems[i] for i in order[:n_test]}
    splits = {"train": [s for s in stems if s not in test], "test": [s for s in stems if s in test]}
    note = (f"no split lists: seeded {1 - test_fraction:.0%}/{test_fraction:.0%} train/test split (seed {seed}, "
            f"{len(splits['train'])}/{len(splits['test'])} images); add train.txt/test.txt to fix the split")
    return splits, [note]


def _describe(values: np.ndarray) -> str:
    shown = ", ".join(str(int(v)) for v in values[:8])
    return "{" + shown + (", ..." if len(values) > 8 else "") + "}"


def infer_encoding(masks: list[Path], num_classes: int | None = None,
                   strict: bool = True) -> tuple[str, int, list[str]]:
    """(mask encoding, number of classes, notes) from the values the masks store.

    0/255 masks -> `threshold128`; 0/1 and class-index masks -> `index` with the largest index + 1 classes (or the
    given `num_classes`, checked). A mask that does not fit the others (grey values among 0/255 masks, 255 among
    indices, an index >= num_classes) is an error naming the file; with `strict=False` (used by `data check`, which
    reports such masks one by one) the majority's encoding is returned and the misfits are listed in the notes.
    """
    notes: list[str] = []
    values, unreadable = {}, []
    for p in masks:
        try:
            img = _open(p)
        except DataError:   # reported by `data check` and at load time; it must not hide the other masks' encoding
            unreadable.append(p)
            continue
        values[p] = mask_values(p, img)
    if unreadable:
        notes.append(f"{len(unreadable)} unreadable masks left out of the encoding check, e.g. {unreadable[0]}")

    def misfit(paths: list[Path], why: str) -> None:
        if not paths:
            return
        message = (f"mask {paths[0]} holds {_describe(values[paths[0]])}: {why}"
                   + (f" ({len(paths)} masks like it)" if len(paths) > 1 else ""))
        if strict:
            raise DataError(message)
        notes.append(message)

    jpeg = [p for p in masks if p.suffix.lower() in JPEG]
    if jpeg:   # lossy: only a binary 0/255 mask survives JPEG
        if num_classes not in (None, 2):
            raise DataError(f"mask {jpeg[0]} is a JPEG, which cannot store class indices; "
                            "save multi-class masks as PNG")
        return "threshold128", 2, notes + ["JPEG masks: binary, grey >= 128"]
    binary255 = [p for p, v in values.items() if set(v.tolist()) <= {0, 255} and 255 in v]
    rest = [p for p, v in values.items() if not set(v.tolist()) <= {0, 255}]
    if num_classes in (None, 2) and binary255 and len(binary255) >= len(rest):
        misfit(rest, "the other masks are binary 0/255; fix this mask (foreground 255, background 0)")
        return "threshold128", 2, notes + ["binary 0/255 masks: foreground is grey >= 128"]
    if num_classes is None:
        misfit([p for p in binary255 + rest if 255 in values[p]], "255 among class indices; masks must be all 0/255 "
               "or all class indices (255 as an 'ignore' label is not supported)")
        largest = max((int(v[v != 255].max(initial=0)) for v in values.values()), default=1)
        where = next((p.name for p, v in values.items() if largest in v), "-")
        n_classes = max(2, largest + 1)
        return "index", n_classes, [*notes, f"num_classes {n_classes} inferred from the largest mask index "
                                            f"({largest}, in {where})"]
    misfit([p for p, v in values.items() if v.max() >= num_classes],
           f"an index >= num_classes {num_classes} (indices 0..{num_classes - 1}); "
           "fix the mask or pass a larger num_classes")
    return "index", num_classes, notes + [f"num_classes {num_classes} given, every mask checked"]


def open_folder(root: Path, num_classes: int | None = None, seed: int = 0, test_fraction: float = 0.2,
                strict: bool = True) -> DatasetSource:
    """`strict=False` lists masks that fit no encoding in the notes instead of raising (for `data check`)."""
    root = Path(root)
    images, masks = child_dir(root, "images"), child_dir(root, "masks")
    if images is None or masks is None:
        raise DataError(f"folder dataset: expected {root / 'images'} and {root / 'masks'} (masks paired with images "
                        "by file stem)")
    image_by_stem = by_stem(list_images(images))
    if not image_by_stem:
        raise DataError(f"folder dataset: no images in {images}")
    mask_by_stem = by_stem(list_images(masks))
    stems, notes = _splits(root, image_by_stem, seed, test_fraction)
    splits = {split: [SampleRef(s, image_by_stem[s], mask_by_stem.get(s)) for s in names]
              for split, names in stems.items()}
    used = sorted({r.mask for refs in splits.values() for r in refs if r.mask is not None})
    encoding, n_classes, how = infer_encoding(used, num_classes, strict)
    notes += how
    nested = [p for d in sub_dirs(images) for p in sorted(d.rglob("*"))
              if p.suffix.lower() in IMAGE_SUFFIXES and not any(x.startswith(".") for x in p.relative_to(images).parts)]
    if nested:   # only images/ itself is read: a sub-folder's images would otherwise vanish without a word
        notes.append(f"{len(nested)} image{'s' * (len(nested) != 1)} in sub-folders of {images} not read (e.g. "
                     f"{nested[0]}): a folder dataset reads images/ and masks/ themselves; move them up to use them")
    return DatasetSource("folder", root, splits, encoding, n_classes, {}, notes,
                         unpaired_masks=unpaired(mask_by_stem, image_by_stem))
