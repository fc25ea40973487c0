"""A user's own dataset: `images/` and `masks/` paired by file stem, with optional split lists `train.txt`, `val.txt`,
`test.txt` beside them (one stem or file name per line).

Without split lists the images are split 80/20 into train / test by a seeded permutation, and the notes say so.
Masks are binary (0/255 or 0/1) or class-index images (grey or palette PNG). The encoding is read from the masks:
0/255 -> threshold at 128 (also for 0/255 masks with soft, anti-aliased edges: a binary mask resized bilinearly),
0/1 or larger indices -> the indices as stored. `num_classes` is an option; when it is not given it is inferred as
the largest index + 1, unless an index below the largest appears in no mask (a stray value would otherwise make a
binary dataset an 8-class one). Either way every mask is checked against it, and a mask holding a larger index is
an error naming the file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from benchmark.data.base import (IMAGE_SUFFIXES, DataError, DatasetSource, SampleRef, _open, by_stem, child_dir,
                                 describe_values, list_images, natural_key, nested_root, sub_dirs, unpaired)

LISTS = {"train": "train.txt", "val": "val.txt", "test": "test.txt"}
JPEG = (".jpg", ".jpeg")


def mask_array(path: Path, img: Image.Image | None = None) -> np.ndarray:
    """The values a mask stores (palette masks by index). Colour masks are refused."""
    img = _open(path) if img is None else img
    if img.mode in ("RGB", "RGBA"):
        arr = np.asarray(img.convert("RGB"))
        if (arr[..., 0] != arr[..., 1]).any() or (arr[..., 0] != arr[..., 2]).any():
            raise DataError(f"mask {path} is a colour image; save masks as grey or palette PNGs holding class indices")
        return arr[..., 0]
    return np.asarray(img if img.mode in ("P", "L", "I", "I;16", "1") else img.convert("L"))


def soft_edges(arr: np.ndarray) -> bool:
    """Is this grey mask a binary 0/255 mask with soft (anti-aliased) edges, read as foreground where grey >= 128?

    It holds 255 and grey values between 0 and 255, and those greys ramp: a bilinear resize or a blur leaves hardly
    any grey pixel whose 3x3 neighbourhood is one flat value, while a grey region (a class stored as grey 128, a
    painted 'unknown' band) is flat inside. At most a tenth of the grey pixels may be flat (measured: under 1% after
    bilinear, bicubic and Lanczos resizes and blurs of up to 10 px; about 90% in a grey band 10 px wide)."""
    if arr.ndim != 2 or not arr.size or arr.max() != 255:
        return False
    grey = (arr > 0) & (arr < 255)
    n_grey = int(grey.sum())
    if not n_grey:
        return False
    padded, (h, w) = np.pad(arr, 1, mode="edge"), arr.shape
    flat = grey.copy()
    for dy in range(3):
        for dx in range(3):
            flat &= padded[dy:dy + h, dx:dx + w] == arr
    return int(flat.sum()) * 10 <= n_grey


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
        notes = [f"splits from {', '.join(p.name for p in lists.values())}"]
        listed = {s for stems in read.values() for s in stems}
        unlisted = sorted((s for s in by_stem if s not in listed), key=natural_key)
        if unlisted:   # the lists choose the images: one left out of all of them would vanish without a word
            n = len(unlisted)
            notes.append(f"{n} image{'s' * (n != 1)} in images/ {'are' if n != 1 else 'is'} in no split list and "
                         f"{'are' if n != 1 else 'is'} not used (e.g. {unlisted[0]})")
        return read, notes
    stems = sorted(by_stem, key=natural_key)
    order = np.random.default_rng(seed).permutation(len(stems))
    n_test = min(len(stems) - 1, max(1, round(test_fraction * len(stems)))) if len(stems) > 1 else 0
    test = {stems[i] for i in order[:n_test]}
    splits = {"train": [s for s in stems if s not in test], "test": [s for s in stems if s in test]}
    note = (f"no split lists: seeded {1 - test_fraction:.0%}/{test_fraction:.0%} train/test split (seed {seed}, "
            f"{len(splits['train'])}/{len(splits['test'])} images); add train.txt/test.txt to fix the split")
    return splits, [note]


def _spans(indices: list[int]) -> str:
    """[2, 3, 4, 6] -> '2..4, 6'."""
    spans: list[list[int]] = []
    for i in indices:
        if spans and i == spans[-1][1] + 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    shown = [f"{a}..{b}" if b > a + 1 else (f"{a}, {b}" if b > a else str(a)) for a, b in spans[:6]]
    return ", ".join(shown) + (", ..." if len(spans) > 6 else "")


def _names(paths: list[Path]) -> str:
    """The first file in full, up to two more by name."""
    more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
    return ", ".join([str(paths[0]), *(p.name for p in paths[1:3])]) + more


def infer_encoding(masks: list[Path], num_classes: int | None = None,
                   strict: bool = True) -> tuple[str, int, list[str], int | None]:
    """(mask encoding, number of classes, notes, inferred count) from the values the masks store. The inferred count
    is what the masks give without `num_classes` (None where they would be refused): a given count equal to it is
    the same config as none (`registry.canonical_data`).

    0/255 masks, soft-edged ones (`soft_edges`) among them -> `threshold128`; 0/1 and class-index masks -> `index`
    with the largest index + 1 classes (or the given `num_classes`, checked). A mask that does not fit the others
    (grey values among 0/255 masks, 255 among indices, an index >= num_classes) is an error naming the file, and so
    is an inferred count with an index below the largest in no mask; with `strict=False` (used by `data check`,
    which reports such masks one by one) the majority's encoding is returned and the misfits are listed in the notes.
    """
    notes: list[str] = []
    values, soft, unreadable = {}, set(), []
    for p in masks:
        try:
            img = _open(p)
        except DataError:   # reported by `data check` and at load time; it must not hide the other masks' encoding
            unreadable.append(p)
            continue
        arr = mask_array(p, img)
        values[p] = np.unique(arr).astype(np.int64)
        if img.mode != "P" and soft_edges(arr):   # palette indices are no grey scale: read as index > 0
            soft.add(p)
    if unreadable:
        notes.append(f"{len(unreadable)} unreadable masks left out of the encoding check, e.g. {unreadable[0]}")
    encoding, n_classes = _decide(masks, values, soft, num_classes, strict, notes)
    if num_classes is None:
        return encoding, n_classes, notes, n_classes
    try:
        inferred = _decide(masks, values, soft, None, True, [])[1]
    except DataError:
        inferred = None
    return encoding, n_classes, notes, inferred


def _decide(masks: list[Path], values: dict[Path, np.ndarray], soft: set[Path], num_classes: int | None,
            strict: bool, notes: list[str]) -> tuple[str, int]:
    """infer_encoding's rules on the values read (notes appended to `notes`)."""

    def misfit(paths: list[Path], why: str, bad: Callable[[np.ndarray], np.ndarray]) -> None:
        """`bad(values)`: which of a mask's values are at fault, shown when it holds many."""
        if not paths:
            return
        v = values[paths[0]]
        message = (f"mask {paths[0]} holds {describe_values(v, bad(v))}: {why}"
                   + (f" ({len(paths)} masks like it)" if len(paths) > 1 else ""))
        if strict:
            raise DataError(message)
        notes.append(message)

    jpeg = [p for p in masks if p.suffix.lower() in JPEG]
    if jpeg:   # lossy: only a binary 0/255 mask survives JPEG
        if num_classes not in (None, 2):
            raise DataError(f"mask {jpeg[0]} is a JPEG, which cannot store class indices; "
                            "save multi-class masks as PNG")
        notes.append("JPEG masks: binary, grey >= 128")
        return "threshold128", 2
    binary255 = [p for p, v in values.items() if (set(v.tolist()) <= {0, 255} and 255 in v) or p in soft]
    rest = [p for p, v in values.items() if not set(v.tolist()) <= {0, 255} and p not in soft]
    if num_classes in (None, 2) and binary255 and len(binary255) >= len(rest):
        misfit(rest, "the other masks are binary 0/255; fix this mask (foreground 255, background 0)",
               lambda v: (v != 0) & (v != 255))
        notes.append("binary 0/255 masks: foreground is grey >= 128")
        if soft:   # binary masks resized bilinearly: their edges hold greys, which are not classes
            notes.append(f"{len(soft)} of {len(values)} masks have soft (anti-aliased) edges, grey values between "
                         f"0 and 255 (e.g. {min(soft).name}), binarised at grey >= 128 as well")
        return "threshold128", 2
    holds255 = [p for p, v in values.items() if 255 in v]
    if num_classes is None:
        misfit(holds255, "255 among class indices; masks must be all 0/255 or all class indices (255 as an 'ignore' "
               "label is not supported)", lambda v: v == 255)
        if not values:   # no mask pairs with an image (named after another convention): nothing to infer from
            return "index", 2
        held = {int(i) for v in values.values() for i in v if i != 255}
        largest = max(held, default=0)
        n_classes = max(2, largest + 1)
        top = [p for p, v in values.items() if largest in v]
        absent = [i for i in range(1, largest) if i not in held]
        if absent:   # {0, 1, 7}: one stray value would otherwise make a binary dataset an 8-class model
            what = f"indices {_spans(absent)} appear" if len(absent) > 1 else f"index {absent[0]} appears"
            message = (f"the largest mask index is {largest} (in {_names(top)}), but {what} in no mask: a stray "
                       f"value? fix the mask, or give the class count (--num-classes {n_classes}) to train "
                       f"{n_classes} classes")
            if strict:
                raise DataError(message)
            notes.append(message)
            return "index", n_classes
        notes.append(f"num_classes {n_classes} inferred from the largest mask index ({largest}, in {top[0].name})")
        if largest > 1 and len(top) == 1 and len(values) >= 10:   # a rare top class: perhaps a stray value too
            notes.append(f"class {largest}, the largest index, is in only 1 mask of {len(values)} ({top[0].name}): "
                         "a stray value? if so, fix the mask")
        return "index", n_classes
    binary_like = holds255 if 2 < num_classes <= 255 else []   # 0/255 masks given a class count: say so
    misfit(binary_like, f"255 is no class index for num_classes {num_classes} (indices 0..{num_classes - 1}): "
           "0/255 masks are binary; give --num-classes 2 or leave it out, or save the masks as class indices "
           f"0..{num_classes - 1}", lambda v: v == 255)
    misfit([p for p, v in values.items() if v.max() >= num_classes and p not in binary_like],
           f"an index >= num_classes {num_classes} (indices 0..{num_classes - 1}); "
           "fix the mask, or give a larger --num-classes", lambda v: v >= num_classes)
    notes.append(f"num_classes {num_classes} given, every mask checked")
    return "index", num_classes


def open_folder(root: Path, num_classes: int | None = None, seed: int = 0, test_fraction: float = 0.2,
                strict: bool = True) -> DatasetSource:
    """`strict=False` lists masks that fit no encoding in the notes instead of raising (for `data check`)."""
    root, nested = nested_root(Path(root), lambda d: child_dir(d, "images") is not None)
    images, masks = child_dir(root, "images"), child_dir(root, "masks")
    if images is None or masks is None:
        raise DataError(f"folder dataset: expected {root / 'images'} and {root / 'masks'} (masks paired with images "
                        "by file stem)")
    image_by_stem = by_stem(list_images(images))
    if not image_by_stem:
        raise DataError(f"folder dataset: no images in {images}")
    mask_by_stem = by_stem(list_images(masks))
    stems, notes = _splits(root, image_by_stem, seed, test_fraction)
    notes = nested + notes
    splits = {split: [SampleRef(s, image_by_stem[s], mask_by_stem.get(s)) for s in names]
              for split, names in stems.items()}
    used = sorted({r.mask for refs in splits.values() for r in refs if r.mask is not None})
    encoding, n_classes, how, inferred = infer_encoding(used, num_classes, strict)
    notes += how
    nested = [p for d in sub_dirs(images) for p in sorted(d.rglob("*"))
              if p.suffix.lower() in IMAGE_SUFFIXES and not any(x.startswith(".") for x in p.relative_to(images).parts)]
    if nested:   # only images/ itself is read: a sub-folder's images would otherwise vanish without a word
        notes.append(f"{len(nested)} image{'s' * (len(nested) != 1)} in sub-folders of {images} not read (e.g. "
                     f"{nested[0]}): a folder dataset reads images/ and masks/ themselves; move them up to use them")
    return DatasetSource("folder", root, splits, encoding, n_classes, {}, notes, inferred_classes=inferred,
                         unpaired_masks=unpaired(mask_by_stem, image_by_stem))
