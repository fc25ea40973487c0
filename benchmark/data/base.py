"""What every dataset loader returns, and reading images and masks with errors that name the file.

A loader turns a folder in its native layout into `SampleRef`s per official split; reading a ref gives the image as
uint8 H x W x 3 and the mask as uint8 H x W class indices (0/1 for binary datasets), binarised by that dataset's
encoding (REFERENCE.md §4).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
# archive suffix -> the command that extracts it, for the error on an archive passed as a dataset folder
ARCHIVES = {".zip": "unzip", ".tar": "tar -xf", ".tar.gz": "tar -xzf", ".tgz": "tar -xzf", ".tar.bz2": "tar -xjf",
            ".tar.xz": "tar -xJf", ".7z": "7z x", ".rar": "unrar x"}


class DataError(ValueError):
    """A dataset problem the user can fix; the message names the file or folder and what to do."""


class DuplicateStemError(DataError):
    """Two files of one folder share the key that pairs images and masks (`by_stem`); `pairs` lists every such
    pair found in that folder, first file first, for `data check` to report one by one."""

    def __init__(self, pairs: list[tuple[Path, Path, str]], what: str = "stem"):
        n = len(pairs) - 1
        more = (f"; {n} more file{'s' * (n != 1)} in {pairs[0][0].parent} share{'s' * (n == 1)} a {what} with "
                "another" if n else "")
        super().__init__(duplicate_message(*pairs[0], what) + more)
        self.pairs, self.what = pairs, what

    def __reduce__(self):   # raised in a sweep's worker processes and unpickled in the sweep's
        return DuplicateStemError, (self.pairs, self.what)


def duplicate_message(first: Path, second: Path, key: str, what: str = "stem") -> str:
    return (f"{first} and {second} share the {what} {key}; keep one of them and move the other out of "
            f"{first.parent.name}/ (images and masks are paired by {what}, so only one of the two can be used)")


def by_stem(files: Iterable[Path], key: Callable[[Path], str] = lambda p: p.stem,
            what: str = "stem") -> dict[str, Path]:
    """{key(file): file}, in the order of `files`. Two files with one key (a re-export beside the original:
    images/a.jpg and images/a.png) are a DuplicateStemError naming both, never a silent pick of either."""
    found: dict[str, Path] = {}
    pairs = []
    for path in files:
        k = key(path)
        if k in found:
            pairs.append((found[k], path, k))
        else:
            found[k] = path
    if pairs:
        raise DuplicateStemError(pairs, what)
    return found


def unpaired(masks: dict[str, Path], keys: Iterable[str]) -> list[Path]:
    """The masks (by key, as `by_stem` gives them) whose key is no image's: named after another convention
    (`<stem>_mask.png`), or left over from removed images."""
    keys = set(keys)
    return [p for k, p in masks.items() if k not in keys]


def not_a_folder(path: Path, what: str = "data root") -> str:
    """Why `path`, which is not a directory, cannot be a dataset folder: missing, or a file (an archive: extract it)."""
    if not path.exists():
        return f"{what} not found: {path}"
    command = next((c for suffix, c in ARCHIVES.items() if path.name.lower().endswith(suffix)), None)
    if command is not None:
        return (f"{what} {path} is a file, not a folder; extract it first and pass the folder it unpacks to "
                f"(e.g. {command} {path.name})")
    return f"{what} {path} is a file, not a folder; pass the dataset's folder"


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
    mask_encoding: str = "threshold128"   # threshold128 (binary), nonzero (palette/index > 0), index: read_mask
    num_classes: int = 2
    expected_counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    val_folds: list[list[str]] = field(default_factory=list)   # keys held out per fold, when the dataset ships folds
    # samples left out by a recorded rule (e.g. MSD's known-bad mask): {"split", "key", "image", "reason"} each
    excluded: list[dict] = field(default_factory=list)
    expected_groups: dict[str, int] = field(default_factory=dict)   # official videos per split (video datasets)
    # official samples over all splits, when only that is known
    expected_total: int | None = None
    # mask files that pair with no image (`unpaired`): named in the missing-mask error and by `data check`
    unpaired_masks: list[Path] = field(default_factory=list)
    mask_suffix: str = ""   # a mask's stem is its image's stem + this (ISIC's `_segmentation`); the pairing rule
    # the class count the masks give without data.num_classes (None where they give none: a gap in the indices)
    inferred_classes: int | None = 2

    def read_image(self, ref: SampleRef) -> np.ndarray:
        return read_image(ref.image)

    def read_mask(self, ref: SampleRef, skip_hint: bool = True) -> np.ndarray:
        """`skip_hint`: a mask's error mentions --skip-bad (training has it; `score` has not)."""
        if ref.mask is None:
            raise DataError(self.no_mask_message(ref))
        return read_mask(ref.mask, self.mask_encoding, skip_hint)

    def no_mask_message(self, ref: SampleRef) -> str:
        """Why `ref` has no mask and what to do; when mask files pair with no image, the pairing rule, since
        skipping would skip every sample of a dataset whose masks follow another naming convention. A video's frame
        is judged by its own video's unpaired masks (a stray file of another video says nothing of its naming)."""
        unpaired = self.unpaired_masks
        if ref.group and ref.group != ref.key:
            unpaired = [m for m in unpaired if ref.group in Path(m).parent.parts]
        if not unpaired:
            return f"no mask for {ref.image}: restore it, or skip such samples with --skip-bad"
        first, n = unpaired[0], len(unpaired)
        files = f"{n} file{'s' * (n != 1)} with no image" + ("" if self.mask_suffix else " of the same stem")
        folders = {p.parent for p in unpaired}
        where = (f"{first.parent} has {files} (e.g. {first.name})" if len(folders) == 1 else
                 f"{len(folders)} mask folders hold {files} (e.g. {first})")
        rule = f"stem + `{self.mask_suffix}`" if self.mask_suffix else "identical stem"
        return (f"no mask for {ref.image}, and {where}; {self.name} datasets pair an image and its mask by {rule} "
                f"({ref.image.name} with {ref.image.stem}{self.mask_suffix}{first.suffix}): rename them")


def _open(path: Path, skip_hint: bool = True) -> Image.Image:
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, UnidentifiedImageError) and path.suffix.lower() not in IMAGE_SUFFIXES:
            # notes.txt passed among the images: nothing to re-extract
            what = f"a {path.suffix} file" if path.suffix else "no suffix, and of no format PIL knows"
            raise DataError(f"cannot read {path}: not an image ({what}); give image files "
                            f"({', '.join(IMAGE_SUFFIXES)})") from None
        raise DataError(f"cannot read image {path} ({exc}); re-extract or replace this file"
                        + (", or skip unreadable samples with --skip-bad" if skip_hint else "")) from None
    return img


def read_image(path: Path, skip_hint: bool = True) -> np.ndarray:
    """uint8 H x W x 3 RGB. `skip_hint`: an unreadable file's error mentions --skip-bad (training and data
    commands have it; `predict` has not). A 16-bit or float grey image (medical exports) is stretched from its own
    minimum to its maximum onto 0..255 (PIL's convert("RGB") would clip it to white)."""
    img = _open(Path(path), skip_hint)
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        grey = np.asarray(img).astype(np.float64)
        lo, hi = (float(grey.min()), float(grey.max())) if grey.size else (0.0, 0.0)
        grey = np.round((grey - lo) * (255.0 / (hi - lo))) if hi > lo else np.zeros_like(grey)
        return np.repeat(grey.astype(np.uint8)[..., None], 3, axis=2)
    return np.asarray(img.convert("RGB"))


MASK_ENCODINGS = ("threshold128", "nonzero", "index")
_LOSSY_FORMATS = ("JPEG", "MPO", "JPEG2000", "WEBP")   # formats whose stored values may carry compression noise
_COLOUR_MODES = ("RGB", "RGBA", "CMYK", "YCbCr")


def _mask_channel(img: Image.Image, path: Path, encoding: str, skip_hint: bool = False) -> np.ndarray:
    """The one channel a mask stores, before any binarisation: palette ("P") indices, 0/1 for "1"-mode, the stored
    grey for "L" and 16-bit ("I;16", "I") masks, ITU-R 601 luma (PIL's convert("L"), the grey that reference
    pipelines' convert('L') / cv2 grayscale reading sees) for colour masks, whose channels must agree for `index`.
    Fully transparent pixels (alpha 0 in "LA"/"RGBA") are 0; other alpha is ignored. A `nonzero` colour mask of
    more than one colour besides black is refused (`several_foregrounds`)."""
    mode, alpha = img.mode, None
    if mode == "1":
        arr = np.asarray(img, dtype=np.uint8)
    elif mode in ("P", "L"):
        arr = np.asarray(img)
    elif mode == "I" or mode.startswith("I;16"):
        arr = np.asarray(img).astype(np.int64)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise DataError(f"mask {path} holds values outside 0..65535; save it as an 8-bit grey or palette PNG")
    elif mode == "LA":
        arr, alpha = np.asarray(img)[..., 0], np.asarray(img)[..., 1]
    elif mode in _COLOUR_MODES:
        rgb = np.asarray(img if mode in ("RGB", "RGBA") else img.convert("RGB"))
        alpha = rgb[..., 3] if mode == "RGBA" else None
        rgb = rgb[..., :3]
        if encoding == "index":
            if (rgb[..., 0] != rgb[..., 1]).any() or (rgb[..., 0] != rgb[..., 2]).any():
                raise DataError(f"mask {path} is a colour image; save class-index masks as grey or palette PNGs")
            arr = rgb[..., 0]
        else:
            if encoding == "nonzero" and (why := several_foregrounds(packed_colours(rgb, alpha), path, True,
                                                                     skip_hint)):
                raise DataError(why)
            arr = np.asarray(img.convert("L"))
    else:
        raise DataError(f"mask {path} has unsupported image mode {mode}; save it as an 8-bit grey (0/255) or "
                        "palette PNG")
    if alpha is not None:
        arr = np.where(alpha == 0, 0, arr).astype(arr.dtype)
    return arr


def mask_from_image(img: Image.Image, path: Path, encoding: str = "threshold128",
                    skip_hint: bool = False) -> np.ndarray:
    """read_mask's rule applied to an opened image (`path` names the file in errors and gives its format;
    `skip_hint` as read_mask's)."""
    if encoding not in MASK_ENCODINGS:
        raise ValueError(f"unknown mask encoding '{encoding}'")
    arr = _mask_channel(img, path, encoding, skip_hint)
    if encoding == "index":
        if arr.size and arr.max() > 255:
            raise DataError(f"mask {path} holds index {int(arr.max())}; class indices must be 0..255")
        return arr.astype(np.uint8)
    if encoding == "nonzero" or img.mode in ("P", "1"):
        if why := several_foregrounds(arr, path, skip_hint=skip_hint):
            raise DataError(why)
        return (arr > 0).astype(np.uint8)
    # threshold128: a binary grey mask on the 8-bit scale
    if arr.size and arr.max() > 255:   # a 16-bit mask that uses the 16-bit range: 0..65535 -> 0..255
        arr = arr >> 8
    lossless = (img.format or "").upper() not in _LOSSY_FORMATS and Path(path).suffix.lower() not in (".jpg", ".jpeg")
    if lossless and arr.size and arr.max() <= 1:   # a 0/1 mask (a 0/255 one always reaches 255)
        return (arr > 0).astype(np.uint8)
    return (arr > 127).astype(np.uint8)


def packed_colours(rgb: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
    """Each pixel's RGB colour as one integer (R << 16 | G << 8 | B): 0 for black, and for fully transparent pixels."""
    packed = rgb[..., 0].astype(np.uint32) << 16 | rgb[..., 1].astype(np.uint32) << 8 | rgb[..., 2]
    return packed if alpha is None else np.where(alpha == 0, 0, packed)


def several_foregrounds(arr: np.ndarray, path: Path, colour: bool = False, skip_hint: bool = False) -> str | None:
    """Why a mask whose foreground is every non-zero value (`nonzero`, and palette masks under any binary encoding)
    cannot be read so, or None: it holds two indices besides 0 (`colour`: two colours besides black, `arr` being
    `packed_colours`). A multi-class mask, or a mislabelled one dropped in, would otherwise train and score as one
    class, silently. Cheap, since it runs on every mask training decodes: one pass (the maximum) for a 0/1 mask
    (VMD-D's palette indices), a few more and no sort for others."""
    top = arr.max() if arr.size else 0
    if top <= 1 or not ((arr != 0) & (arr != top)).any():
        return None
    values = np.unique(arr)
    skip = ", or skip such samples with --skip-bad" if skip_hint else ""
    if colour:
        found = [((int(c) >> 16) & 255, (int(c) >> 8) & 255, int(c) & 255) for c in values[values > 0]]
        shown = ", ".join(map(str, found[:4])) + (", ..." if len(found) > 4 else "")
        return (f"mask {path} is a colour image with {len(found)} colours besides black ({shown}); this dataset's "
                "masks hold black and one foreground colour, and every other colour would read as foreground too "
                "(a multi-class or mislabelled mask?): re-export it as a palette PNG (index 0 background, index 1 "
                f"foreground){skip}")
    return (f"mask {path} holds indices {describe_values(values, values > 0)}; this dataset's masks hold 0 and one "
            "foreground index, and every other index would read as foreground too (a multi-class or mislabelled "
            f"mask?): re-export it with index 0 background and index 1 foreground{skip}")


def describe_values(values: np.ndarray, bad: np.ndarray) -> str:
    """The distinct values of a mask, `{0, 1, 7}`; past 8 of them, the offending ones (`bad`, a boolean mask over
    `values`), first and last, so that the value at fault (often 255) shows."""
    def braces(v: np.ndarray) -> str:
        shown = [str(int(x)) for x in v] if len(v) <= 8 else [*(str(int(x)) for x in v[:6]), "...", str(int(v[-1]))]
        return "{" + ", ".join(shown) + "}"
    return braces(values) if len(values) <= 8 else f"{len(values)} values, among them {braces(values[bad])}"


def read_mask(path: Path, encoding: str = "threshold128", skip_hint: bool = True) -> np.ndarray:
    """A mask as uint8 H x W, the one reader for dataset loaders and `segbench score` (REFERENCE.md §4).

    `threshold128` (binary datasets, and every ground truth `segbench score` reads): palette ("P") masks by index
    (foreground = index > 0, whatever colour the palette draws it in: VMD's dark red, REFERENCE.md §4: never > 127);
    "1"-mode masks as stored; everything else on its single channel (grey, colour -> luma, 16-bit -> its top 8
    bits when it uses the 16-bit range, alpha 0 -> 0) is foreground where >= 128, so lossy JPEG masks (Kvasir-SEG,
    TN3K) lose their compression noise, except that a lossless mask holding only 0/1 is foreground where 1.
    `nonzero`: foreground = any non-zero stored index or grey value (palette datasets).
    Where foreground is any non-zero index or colour (`nonzero`, palette masks), a mask holding two of them besides
    0 or black is an error naming the file and what it holds (`several_foregrounds`), never read as one class.
    `index`: the stored class indices unchanged (multi-class and 0/1 `folder` datasets); a colour mask whose
    channels disagree, or an index > 255, is an error naming the file.
    """
    path = Path(path)
    return mask_from_image(_open(path, skip_hint), path, encoding, skip_hint)


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def sub_dirs(folder: Path) -> list[Path]:
    """The sub-folders of `folder`, sorted, without the ones archivers and tools leave behind (hidden folders such
    as .ipynb_checkpoints, and macOS's __MACOSX copy of a zip, which mirrors the real folders with ._ files)."""
    return sorted(c for c in folder.iterdir() if c.is_dir() and not c.name.startswith(".") and c.name != "__MACOSX")


def natural_key(name: str) -> tuple:
    """Sort key that orders numbered frames by number ('frame2' before 'frame10')."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name))


def nested_root(root: Path, holds: Callable[[Path], bool], *names: str) -> tuple[Path, list[str]]:
    """The folder to read a dataset from, and a note when it is not `root`: the folder of `root`'s own name (or one of
    `names`) inside it, when that one holds the dataset (`holds`: the loader's first test of its layout) and `root`
    does not. An archive extracted into a folder named after it (`unzip VMD.zip -d VMD` leaves VMD/VMD/train/...)
    is read where it is, as `find_dataset_root` reads a dataset folder inside the data root; `holds` failing for
    both leaves `root`, whose loader then names the folder it expected."""
    inner = child_dir(root, root.name, *names)
    if inner is None or holds(root) or not holds(inner):
        return root, []
    return inner, [f"read from {inner}, the dataset's folder inside {root} (an archive extracted into a folder "
                   "named after it)"]


def child_dir(folder: Path, *names: str) -> Path | None:
    """The sub-folder of `folder` called any of `names`, matched case-insensitively (first name wins)."""
    if not folder.is_dir():
        return None
    children = {c.name.lower(): c for c in sorted(folder.iterdir()) if c.is_dir()}
    return next((children[n.lower()] for n in names if n.lower() in children), None)
