"""What every dataset loader returns, and reading images and masks with errors that name the file.

A loader turns a folder in its native layout into `SampleRef`s per official split; reading a ref gives the image as
uint8 H x W x 3 and the mask as uint8 H x W class indices (0/1 for binary datasets), binarised by that dataset's
encoding (REFERENCE.md §4).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


class DataError(ValueError):
    """A dataset problem the user can fix; the message names the file or folder and what to do."""


@dataclass(frozen=True)
class SampleRef:
    """One image and its mask on disk. `group` is the video id for video datasets (else the key), so that a
    validation split never puts frames of one video on both sides."""

    key: str
    image: Path
    mask: Path | None
    group: str = ""

    @property
    def group_id(self) -> str:
        return self.group or self.key


@dataclass
class DatasetSource:
    """A dataset as found on disk: its splits, its mask encoding and the official counts to compare against."""

    name: str
    root: Path
    splits: dict[str, list[SampleRef]]
    mask_encoding: str = "threshold128"   # threshold128 (JPEG or 0/255 PNG), nonzero (palette/index), index
    num_classes: int = 2
    expected_counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    val_folds: list[list[str]] = field(default_factory=list)   # keys held out per fold, when the dataset ships folds
    # samples left out by a recorded rule (e.g. MSD's known-bad mask): {"split", "key", "image", "reason"} each
    excluded: list[dict] = field(default_factory=list)
    expected_groups: dict[str, int] = field(default_factory=dict)   # official videos per split (video datasets)
    # official samples over all splits, when only that is known
    expected_total: int | None = None

    def read_image(self, ref: SampleRef) -> np.ndarray:
        return read_image(ref.image)

    def read_mask(self, ref: SampleRef) -> np.ndarray:
        if ref.mask is None:
            raise DataError(f"no mask for {ref.image}: restore it, or skip such samples with --skip-bad")
        return read_mask(ref.mask, self.mask_encoding)


def _open(path: Path) -> Image.Image:
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataError(f"cannot read image {path} ({exc}); re-extract or replace this file, "
                        "or skip unreadable samples with --skip-bad") from None
    return img


def read_image(path: Path) -> np.ndarray:
    """uint8 H x W x 3 RGB."""
    return np.asarray(_open(Path(path)).convert("RGB"))


def read_mask(path: Path, encoding: str = "threshold128") -> np.ndarray:
    """uint8 H x W: `threshold128` -> grey >= 128 (lossy JPEG masks, 0/255 PNGs); `nonzero` -> any non-zero index
    or grey value (palette PNGs, REFERENCE.md §4: never > 127); `index` -> the stored class indices unchanged."""
    img = _open(Path(path))
    if encoding == "threshold128":
        return (np.asarray(img.convert("L")) >= 128).astype(np.uint8)
    if encoding == "nonzero":
        arr = np.asarray(img) if img.mode in ("P", "L", "I", "I;16") else np.asarray(img.convert("L"))
        return (arr > 0).astype(np.uint8)
    if encoding == "index":
        arr = np.asarray(img if img.mode in ("P", "L", "I", "I;16") else img.convert("L"))
        return arr.astype(np.uint8)
    raise ValueError(f"unknown mask encoding '{encoding}'")


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def natural_key(name: str) -> tuple:
    """Sort key that orders numbered frames by number ('frame2' before 'frame10')."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name))


def child_dir(folder: Path, *names: str) -> Path | None:
    """The sub-folder of `folder` called any of `names`, matched case-insensitively (first name wins)."""
    if not folder.is_dir():
        return None
    children = {c.name.lower(): c for c in sorted(folder.iterdir()) if c.is_dir()}
    return next((children[n.lower()] for n in names if n.lower() in children), None)
