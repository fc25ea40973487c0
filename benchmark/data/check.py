"""`segbench data check ROOT [--dataset KEY]`: is a dataset on disk what the benchmark expects, and if not, what exactly
is wrong, file by file.

It opens each dataset through its own loader (the code path training uses), decodes every image and mask fully,
and reports
- errors (`ok` is False): a layout the loader refuses, two files of one stem (which the loaders refuse: a silent
  pick of either would train on the wrong one), a missing mask, a mask without an image (a video with no mask at
  all, or a video's masks without its images, as one line naming the folder), an unreadable or truncated image or
  mask, a mask whose size differs from its image's, mask values that are not the dataset's binary encoding as
  training reads it, beyond JPEG noise or a folder dataset's soft edges (`non_binary_mask`; a palette dataset's
  colour mask of black and one colour reads right), class indices beyond the folder dataset's class count or,
  inferred, with an index below the largest in no mask (`mask_index`), an empty split;
- count deviations (warnings): samples or videos per split, or in all, differing from the official counts of
  REFERENCE.md §4. They fail the check too unless `expect_counts=False` (`--miniature`: a subset or a synthetic
  replica is checked for everything but its size); `train` and `run` warn of them in one line (`count_warning`);
- information: the known-bad samples a loader leaves out by a recorded rule, the loaders' notes, and the videos
  whose masks are all empty (normal for a few; most of them would point at masks read by the wrong rule).

Exit rule for the CLI: `raise typer.Exit(report.exit_code)`, 0 when `report.ok`, else 1.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from benchmark.data.base import (IMAGE_SUFFIXES, DataError, DatasetSource, DuplicateStemError, SampleRef, child_dir,
                                 describe_values, duplicate_message, mask_from_image, not_a_folder, packed_colours,
                                 several_foregrounds, sub_dirs)
from benchmark.data.folder import open_folder, soft_edges
from benchmark.data.isic2017 import MASK_SUFFIX
from benchmark.data.vmd import holds_videos, nested_split

JPEG = (".jpg", ".jpeg")
JPEG_NOISE = (30, 225)        # grey values a lossy JPEG mask may hold near edges ...
JPEG_NOISE_FRACTION = 0.02    # ... on at most this fraction of its pixels


@dataclass
class Problem:
    """One thing wrong, naming the file (or folder) it concerns. `severity` is "error" or "warning"."""

    kind: str       # layout, duplicate_stem, missing_mask, extra_mask, unreadable_image, unreadable_mask,
    path: str       # size_mismatch, non_binary_mask, mask_index (class indices), empty_split, count_deviation
    message: str
    severity: str = "error"


@dataclass
class SplitCount:
    split: str
    found: int                      # samples on disk, the known-bad excluded ones included
    expected: int | None = None     # the official count (REFERENCE.md §4), None when not recorded
    videos: int | None = None
    expected_videos: int | None = None
    used: int | None = None         # samples trained or scored: found minus the known-bad excluded ones


@dataclass
class DatasetReport:
    key: str
    root: Path
    mask_encoding: str = ""
    counts: list[SplitCount] = field(default_factory=list)
    total: int = 0
    expected_total: int | None = None
    problems: list[Problem] = field(default_factory=list)
    known_bad: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class CheckReport:
    root: Path
    expect_counts: bool = True
    datasets: list[DatasetReport] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)    # not tied to one dataset (e.g. nothing recognised)

    @property
    def all_problems(self) -> list[Problem]:
        return self.problems + [p for d in self.datasets for p in d.problems]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.all_problems if p.severity == "error"]

    @property
    def deviations(self) -> list[Problem]:
        return [p for p in self.all_problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        """No errors, at least one dataset checked, and (unless `expect_counts` is off) the official counts."""
        return bool(self.datasets) and not self.errors and not (self.expect_counts and self.deviations)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_dict(self) -> dict:
        return {"root": str(self.root), "ok": self.ok, "expect_counts": self.expect_counts,
                "problems": [asdict(p) for p in self.problems],
                "datasets": [{**asdict(d), "root": str(d.root)} for d in self.datasets]}

    def to_text(self) -> str:
        return render_text(self)

    def __rich__(self):
        return render_rich(self)


# --- detection ---------------------------------------------------------------------------------------------------

def _sub(folder: Path, *path: str) -> Path | None:
    for name in path:
        folder = child_dir(folder, name) if folder is not None else None
    return folder


def _split(d: Path, name: str, holds: Callable[[Path], bool]) -> bool:
    """Whether `d/name` holds a split, itself or nested in a folder of its own name (`train_origin/train_origin/`,
    which the loader refuses with the fix): a VMD or ViSha folder so extracted is still one dataset, not its split
    folders taken for datasets of their own."""
    folder = _sub(d, name)
    return folder is not None and (holds(folder) or nested_split(folder, holds) is not None)


def _visha_split(split: Path) -> bool:
    return bool(_sub(split, "images") and _sub(split, "labels"))


def _kvasir_like(d: Path) -> bool:
    return (d / "kavsir_bboxes.json").is_file() or d.name.lower() in ("kvasir-seg", "kvasir")


# key -> does folder `d` look like that dataset's native layout? Order matters: kvasir before folder.
SIGNATURES = {
    "tn3k": lambda d: bool(_sub(d, "trainval-image") or _sub(d, "test-image")),
    "isic2017": lambda d: any(c.is_dir() and c.name.lower().startswith("isic-2017_")
                              and c.name.lower().endswith("_data")
                              for c in d.iterdir())
                          and any(c.name.lower().endswith("_groundtruth") for c in d.iterdir()),
    "msd": lambda d: bool(_sub(d, "train", "image") or _sub(d, "test", "image")),
    "vmd": lambda d: any(_split(d, name, holds_videos) for name in ("train", "train_origin", "test")),
    "visha": lambda d: any(_split(d, name, _visha_split) for name in ("train", "test")),
    "kvasir": lambda d: bool(_sub(d, "images") and _sub(d, "masks")) and _kvasir_like(d),
    "folder": lambda d: bool(_sub(d, "images") and _sub(d, "masks")) and not _kvasir_like(d),
}


def detect_datasets(root: Path) -> list[tuple[str, Path]]:
    """(key, folder) for each dataset found at `root` or in its sub-folders, by layout, else by usual folder name;
    runs folders (a runs directory written into the data root) are passed over."""
    from benchmark.registry import DATASETS, is_runs_folder

    def match(d: Path) -> str | None:
        return next((k for k, sig in SIGNATURES.items() if k in DATASETS and sig(d)), None)

    root = Path(root)
    own = match(root)
    if own is not None and own != "isic2017":
        return [(own, root)]
    found = [("isic2017", root)] if own == "isic2017" else []
    for child in (c for c in sub_dirs(root) if not is_runs_folder(c)):
        key = match(child) or next((k for k, (_, names) in DATASETS.items()
                                    if child.name.lower() in {n.lower() for n in names}), None)
        if key is not None:
            found.append((key, child))
    return found


# --- one sample ----------------------------------------------------------------------------------------------------

def _decode(path: Path) -> Image.Image:
    img = Image.open(path)
    img.load()     # decodes every byte: a truncated JPEG fails here
    return img


def _mask_problems(source: DatasetSource, mask: Image.Image, path: Path) -> list[Problem]:
    """Values outside the dataset's encoding (palette masks judged by index, JPEG masks allowed their noise, a folder
    dataset's 0/255 masks their soft edges)."""
    encoding = source.mask_encoding
    if mask.mode in ("RGB", "RGBA"):
        rgba = np.asarray(mask.convert("RGBA"))
        if (rgba[..., 0] != rgba[..., 1]).any() or (rgba[..., 0] != rgba[..., 2]).any():
            return _colour_problems(source, rgba, path)
    # the values read_mask sees before it binarises: stored indices for palettes and index encodings, else grey
    keep = ("P", "L", "I", "I;16") if encoding != "threshold128" else ("P", "L")
    arr = np.asarray(mask if mask.mode in keep else mask.convert("L"))
    values = np.unique(arr)
    if encoding == "index":   # class indices, palette ones included
        if values.max() >= source.num_classes:
            return [Problem("mask_index", str(path), f"mask {path} holds "
                            f"{describe_values(values, values >= source.num_classes)}, beyond class indices "
                            f"0..{source.num_classes - 1}")]
    elif encoding == "nonzero" or mask.mode == "P":   # index > 0 is foreground: a binary mask holds 0 and one index
        if why := several_foregrounds(arr, path):   # the loader's own test and words: training refuses such a mask
            return [Problem("non_binary_mask", str(path), why)]
    elif path.suffix.lower() in JPEG:
        lo, hi = JPEG_NOISE
        fraction = float(((arr >= lo) & (arr <= hi)).mean())
        if fraction > JPEG_NOISE_FRACTION:
            return [Problem("non_binary_mask", str(path), f"mask {path} has {fraction:.1%} of its pixels at grey "
                            f"{lo}..{hi}; a binary JPEG mask has at most {JPEG_NOISE_FRACTION:.0%} (edge noise)")]
    elif not set(values.tolist()) <= {0, 255} and not (source.name == "folder" and soft_edges(arr)):
        extra = ("; it reads as foreground where 1, but this dataset ships 0/255 masks: a converted or foreign file?"
                 if set(values.tolist()) <= {0, 1} else "")
        return [Problem("non_binary_mask", str(path), f"mask {path} holds "
                        f"{describe_values(values, (values != 0) & (values != 255))}, not 0/255{extra}")]
    return []


def _colour_problems(source: DatasetSource, rgba: np.ndarray, path: Path) -> list[Problem]:
    """A colour mask, judged as the loader reads it (`base._mask_channel`): by luma for binary encodings, so a
    palette dataset's (`nonzero`) mask of black and one colour reads right (of more colours, it is refused there),
    while a grey 0/255 dataset reads a dark colour as background; `index` refuses colour."""
    if source.mask_encoding == "nonzero":   # foreground = luma > 0: fine with one foreground colour
        why = several_foregrounds(packed_colours(rgba[..., :3], rgba[..., 3]), path, colour=True)
        return [Problem("non_binary_mask", str(path), why)] if why else []
    if source.mask_encoding == "index":
        return [Problem("non_binary_mask", str(path), f"mask {path} is a colour image, which training refuses: "
                        "re-export it as a grey or palette PNG of class indices")]
    return [Problem("non_binary_mask", str(path), f"mask {path} is a colour image; {source.name} masks are grey "
                    "0/255, and training reads a colour mask by its brightness (foreground where >= 128), so a dark "
                    "colour would read as background: re-export it as a grey 0/255 PNG")]


def _check(source: DatasetSource, ref: SampleRef) -> tuple[list[Problem], bool | None]:
    """The sample's problems, and whether its mask has foreground as training reads it (None: not read)."""
    problems, size = [], None
    try:
        size = _decode(ref.image).size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        problems.append(Problem("unreadable_image", str(ref.image), f"cannot decode image {ref.image} ({exc}); "
                                "re-extract or replace it"))
    if ref.mask is None:   # the loader's own words (train and score say the same)
        return problems + [Problem("missing_mask", str(ref.image), source.no_mask_message(ref))], None
    try:
        mask = _decode(ref.mask)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return problems + [Problem("unreadable_mask", str(ref.mask), f"cannot decode mask {ref.mask} ({exc})")], None
    if size is not None and mask.size != size:
        problems.append(Problem("size_mismatch", str(ref.mask), f"mask {ref.mask} is {mask.size[0]}x{mask.size[1]} "
                                f"but its image {ref.image} is {size[0]}x{size[1]}"))
    problems += _mask_problems(source, mask, ref.mask)
    foreground = None
    if ref.group:   # video datasets: for the note on videos without foreground
        try:
            foreground = bool(mask_from_image(mask, ref.mask, source.mask_encoding).any())
        except DataError:
            pass
    return problems, foreground


def check_sample(source: DatasetSource, ref: SampleRef) -> list[Problem]:
    return _check(source, ref)[0]


# --- one dataset ---------------------------------------------------------------------------------------------------

def _stem(path: Path) -> str:
    return path.stem.lower().removesuffix(MASK_SUFFIX)


def extra_masks(source: DatasetSource) -> list[Path]:
    """Mask files in the loader's mask folders with no image of the same stem in the matching image folders, and
    those the loader found pairing with no image (`unpaired_masks`: a mask folder none of whose files pairs)."""
    refs = [r for refs in source.splits.values() for r in refs] + \
           [SampleRef(e["key"], Path(e["image"]), None) for e in source.excluded]
    image_dirs: dict[Path, set[Path]] = {}
    for r in refs:
        if r.mask is not None:
            image_dirs.setdefault(r.mask.parent, set()).add(r.image.parent)
    extra = []
    for mask_dir, dirs in sorted(image_dirs.items()):
        stems = {_stem(p) for d in dirs for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
        extra += sorted(p for p in mask_dir.iterdir()
                        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and _stem(p) not in stems)
    return sorted(set(extra) | set(source.unpaired_masks))


def _video_examples(source: DatasetSource) -> list[SampleRef]:
    """One frame with a mask per video: the layouts `_twin` reads."""
    examples: dict[str, SampleRef] = {}
    for ref in (r for refs in source.splits.values() for r in refs):
        if ref.mask is not None and ref.group:
            examples.setdefault(ref.group, ref)
    return list(examples.values())


def _twin(examples: list[SampleRef], folder: Path, have: str, want: str) -> tuple[str, Path] | None:
    """For a video that lacks its `want` folder ("image" or "mask"), given its `have` folder: (the video, where its
    `want` folder belongs), by the layout of a video with both (the one path component naming the video differs).
    None where no video's layout matches `folder`'s."""
    for ref in examples:
        known = getattr(ref, have).parent.parts
        differ = [i for i, (a, b) in enumerate(zip(known, folder.parts)) if a != b]
        if len(known) == len(folder.parts) and len(differ) == 1 and known[differ[0]] == ref.group:
            video, parts = folder.parts[differ[0]], list(getattr(ref, want).parent.parts)
            at = len(parts) - 1 - parts[::-1].index(ref.group)
            twin = Path(*parts[:at], video, *parts[at + 1:])
            return video, child_dir(twin.parent, twin.name) or twin   # its folder as spelt on disk, if there
    return None


def _missing_mask_folders(source: DatasetSource) -> dict[tuple[str, str], Problem]:
    """One missing_mask problem per video none of whose frames has a mask (its mask folder missing or emptied),
    naming the folder and the fix, in place of one line per frame; keyed by (split, video)."""
    found, examples = {}, None
    for split, refs in source.splits.items():
        videos: dict[str, list[SampleRef]] = {}
        for ref in refs:
            if ref.group:
                videos.setdefault(ref.group, []).append(ref)
        for video, frames in videos.items():
            if any(r.mask is not None for r in frames):
                continue
            frames_n = _n(len(frames), "frame")
            examples = _video_examples(source) if examples is None else examples
            twin = _twin(examples, frames[0].image.parent, "image", "mask")
            folder = twin[1] if twin else None
            if folder is None:
                message = (f"no frame of video {video} has a mask ({frames_n}, e.g. {frames[0].image}): restore its "
                           "masks, or skip such samples with --skip-bad")
            elif not folder.is_dir():
                message = (f"mask folder {folder} is missing, so no frame of video {video} has a mask ({frames_n}): "
                           "restore it (re-extract the video's masks), or skip such samples with --skip-bad")
            else:
                stray = [m for m in source.unpaired_masks if Path(m).parent == folder]
                message = f"no frame of video {video} has a mask in {folder} ({frames_n})" + (
                    f"; it holds {_n(len(stray), 'file')} with no frame of the same stem (e.g. {stray[0].name}): "
                    f"{source.name} pairs a frame and its mask by identical stem ({frames[0].image.name} with "
                    f"{frames[0].image.stem}{stray[0].suffix}): rename them" if stray else
                    ": restore its masks, or skip such samples with --skip-bad")
            found[(split, video)] = Problem("missing_mask", str(folder or frames[0].image.parent), message)
    return found


def _extra_mask_problems(source: DatasetSource) -> list[Problem]:
    """One extra_mask problem per mask file with no image, except that a video's mask folder whose video has no
    image at all (ViSha's `labels/<video>/` without `images/<video>/`) is one problem naming the folder."""
    rule = (f"pairs with no image ({source.name} names a mask <image stem>{source.mask_suffix})"
            if source.mask_suffix else "has no image of the same stem")
    videos = {r.group.lower() for refs in source.splits.values() for r in refs if r.group}
    examples = _video_examples(source) if videos else []
    by_folder: dict[Path, list[Path]] = {}
    for path in extra_masks(source):
        by_folder.setdefault(path.parent, []).append(path)
    problems = []
    for folder, files in by_folder.items():
        twin = _twin(examples, folder, "mask", "image")
        held = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
        if twin is not None and twin[0].lower() not in videos and len(held) == len(files):
            video, images = twin
            where = "holds no image" if images.is_dir() else "is missing"
            problems.append(Problem("extra_mask", str(folder), f"mask folder {folder} holds {_n(len(files), 'mask')} "
                                    f"of video {video}, which has no image ({images} {where}): the split loses these "
                                    f"labelled frames; restore the video's images (re-extract it), or move {folder} "
                                    "out of the dataset"))
        else:
            problems += [Problem("extra_mask", str(p), f"mask {p} {rule}") for p in files]
    return problems


def _empty_videos(source: DatasetSource, foreground: dict[SampleRef, bool]) -> list[str]:
    """A note per split naming the videos whose every read mask is empty: not an error (VMD-D and ViSha hold such
    videos), but many of them point at masks read by the wrong rule."""
    notes = []
    for split, refs in source.splits.items():
        seen: dict[str, bool] = {}
        for ref in refs:
            if foreground.get(ref) is not None:
                seen[ref.group] = seen.get(ref.group, False) or foreground[ref]
        empty = [video for video, any_fg in seen.items() if not any_fg]
        if empty:
            shown = ", ".join(empty[:8]) + (f" and {len(empty) - 8} more" if len(empty) > 8 else "")
            verb = "has" if len(empty) == 1 else "have"
            notes.append(f"{split}: {len(empty)} of {_n(len(seen), 'video')} {verb} no foreground in any mask: {shown} "
                         f"(a few are normal; if most videos are listed, check the mask rule: {source.mask_encoding})")
    return notes


def split_counts(source: DatasetSource) -> list[SplitCount]:
    """Samples (and videos) per split as the loader listed them, beside the official counts; nothing is decoded."""
    counts = []
    for split in list(source.splits) + [s for s in source.expected_counts if s not in source.splits]:
        refs = source.splits.get(split, [])
        found = len(refs) + sum(e["split"] == split for e in source.excluded)
        videos = len({r.group_id for r in refs}) if source.expected_groups else None
        counts.append(SplitCount(split, found, source.expected_counts.get(split), videos,
                                 source.expected_groups.get(split), len(refs)))
    return counts


def count_deviations(source: DatasetSource) -> list[str]:
    """How the samples and videos `source` holds differ from the official counts (REFERENCE.md §4), one line each
    ([] when they match): the count deviations `data check` reports, and what `train` and `run` warn of before any
    work (`count_warning`). From the loader's listing alone, so it costs nothing at the start of a run."""
    counts, lines = split_counts(source), []
    for row in counts:
        if row.expected is not None and row.found != row.expected:
            lines.append(f"{row.split}: {row.found:,} samples, the official count is {row.expected:,}")
        if row.expected_videos is not None and row.videos != row.expected_videos:
            lines.append(f"{row.split}: {row.videos:,} videos, the official count is {row.expected_videos:,}")
    total = sum(row.found for row in counts)
    if source.expected_total is not None and total != source.expected_total:
        lines.append(f"{total:,} samples in all, the official count is {source.expected_total:,}")
    return lines


def count_warning(source: DatasetSource) -> str:
    """`count_deviations` as the one line `train` and `run` print ("" when the counts are the official ones): a
    partial copy trains and scores without an error, on numbers that do not compare with the paper's."""
    lines = count_deviations(source)
    if not lines:
        return ""
    return (f"{'; '.join(lines)} (in {source.root}): a partial or altered copy trains and scores on what it holds, "
            f"and its numbers do not compare with the paper's; `segbench data check {source.root}` shows the counts "
            "and checks every file")


def _open_source(key: str, folder: Path, num_classes: int | None = None) -> DatasetSource:
    from benchmark.registry import DATASETS
    if key == "folder":   # report masks that fit no encoding one by one instead of refusing the whole dataset
        return open_folder(folder, num_classes=num_classes, strict=False)
    return DATASETS[key][0](folder)


def _sample_problems(source: DatasetSource, workers: int | None) -> tuple[list[Problem], dict[SampleRef, bool]]:
    """Every sample decoded and checked, in order, a video with no mask at all as one line (`_missing_mask_folders`);
    and whether each video frame's mask has foreground."""
    refs = [(split, r) for split, refs in source.splits.items() for r in refs]
    whole = _missing_mask_folders(source)
    found, foreground, shown = [], {}, set()
    truncated = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False     # a truncated file must fail, whatever another module set
    try:
        with ThreadPoolExecutor(workers or min(8, os.cpu_count() or 1)) as pool:   # PIL decodes without the GIL
            for (split, ref), (problems, has_fg) in zip(refs, pool.map(lambda r: _check(source, r[1]), refs)):
                video = (split, ref.group)
                if ref.mask is None and video in whole:   # the video's one line, at its first frame
                    if video not in shown:
                        found.append(whole[video])
                        shown.add(video)
                    problems = [p for p in problems if p.kind != "missing_mask"]
                found += problems
                foreground[ref] = has_fg
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = truncated
    return found, foreground


def check_source(key: str, folder: Path, workers: int | None = None, num_classes: int | None = None) -> DatasetReport:
    report = DatasetReport(key, Path(folder))
    try:
        source = _open_source(key, folder, num_classes)
    except DuplicateStemError as exc:
        report.problems += [Problem("duplicate_stem", str(second), duplicate_message(first, second, k, exc.what))
                            for first, second, k in exc.pairs]
        return report
    except DataError as exc:
        report.problems.append(Problem("layout", str(folder), str(exc)))
        return report
    report.root, report.mask_encoding, report.notes = source.root, source.mask_encoding, list(source.notes)
    report.known_bad = list(source.excluded)
    report.counts = split_counts(source)
    report.total = sum(c.found for c in report.counts)
    report.expected_total = source.expected_total
    problems, foreground = _sample_problems(source, workers)
    report.problems += problems
    report.notes += _empty_videos(source, foreground)
    report.problems += _extra_mask_problems(source)
    report.problems += [Problem("empty_split", str(source.root), f"split '{c.split}' is empty: no samples found for "
                                f"it under {source.root}") for c in report.counts if c.found == 0]
    report.problems += [Problem("count_deviation", str(source.root), line, "warning")
                        for line in count_deviations(source)]
    if key == "folder":
        try:   # what `train` reads: masks the encoding check refuses there fail the check here too
            open_folder(folder, num_classes=num_classes)
        except DataError as exc:
            # unless the mask it names is reported above, file by file (a misfit; an index gap names no such mask)
            if not any(f"mask {p.path} " in str(exc) for p in report.problems
                       if p.kind in ("non_binary_mask", "mask_index")):
                report.notes = [n for n in report.notes if n != str(exc)]   # now an error, not a note
                kind = "mask_index" if source.mask_encoding == "index" else "non_binary_mask"
                report.problems.append(Problem(kind, str(folder), f"{exc} (train refuses this dataset)"))
    return report


def check_dataset(root: str | Path, key: str | None = None, expect_counts: bool = True,
                  workers: int | None = None, num_classes: int | None = None) -> CheckReport:
    """Check the dataset `key` under `root` (its own folder or a folder holding several), or, with no key, every
    dataset recognised there. `expect_counts=False` (`--miniature`) keeps count deviations from failing the check.
    `num_classes` is the folder dataset's option (inferred from the masks when None); `workers` decode in parallel."""
    from benchmark.registry import DATASETS, check_key, find_dataset_root
    root = Path(root).expanduser()
    report = CheckReport(root, expect_counts)
    if not root.is_dir():
        why = not_a_folder(root) if root.exists() else f"folder not found: {root}"
        report.problems.append(Problem("layout", str(root), why))
        return report
    if key is not None:
        check_key("dataset", key, DATASETS)
        targets = [(key, find_dataset_root(key, root))]
    else:
        targets = detect_datasets(root)
        if not targets:
            report.problems.append(Problem("layout", str(root), f"no dataset layout recognised in {root} or its "
                                           f"sub-folders; name one with --dataset ({', '.join(DATASETS)})"))
    report.datasets = [check_source(k, folder, workers, num_classes) for k, folder in targets]
    return report


# --- rendering -----------------------------------------------------------------------------------------------------

def _fmt(n: int | None) -> str:
    return "-" if n is None else f"{n:,}"


def _notes(d: DatasetReport) -> list[str]:
    """The loader's notes less those that repeat a known-bad line."""
    repeated = {f"excluded {b['split']}/{b['key']}: {b['reason']}" for b in d.known_bad}
    return [n for n in d.notes if n not in repeated]


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' * (count != 1)}"


def _verdict(report: CheckReport) -> str:
    n_err, n_dev = len(report.errors), len(report.deviations)
    if report.ok:
        note = f" ({_n(n_dev, 'count deviation')} ignored: --miniature)" if n_dev else ""
        return f"OK{note}"
    hint = ""
    if n_dev:   # a subset or miniature copy differs on purpose; a truncated download does not
        hint = (" (ignored)" if not report.expect_counts else
                " (a subset or miniature copy differs on purpose: --miniature keeps counts from failing the check)")
    return f"FAILED: {_n(n_err, 'error')}, {_n(n_dev, 'count deviation')}{hint}"


def render_text(report: CheckReport) -> str:
    lines = [f"data check: {report.root}"]
    lines += [f"  {p.severity.upper():8s}{p.kind:18s}{p.message}" for p in report.problems]
    for d in report.datasets:
        lines += ["", f"{d.key}  {d.root}" + (f"  (masks: {d.mask_encoding})" if d.mask_encoding else "")]
        if d.counts:
            used = bool(d.known_bad)   # a "used" column only where files are left out
            lines.append(f"  {'split':8s}{'found':>10s}{'official':>10s}{'videos':>8s}{'official':>10s}"
                         + (f"{'used':>8s}" if used else ""))
            lines += [f"  {c.split:8s}{_fmt(c.found):>10s}{_fmt(c.expected):>10s}{_fmt(c.videos):>8s}"
                      f"{_fmt(c.expected_videos):>10s}" + (f"{_fmt(c.used):>8s}" if used else "") for c in d.counts]
            if d.expected_total is not None:
                lines.append(f"  {'all':8s}{_fmt(d.total):>10s}{_fmt(d.expected_total):>10s}"
                             + (f"{'':18s}{_fmt(sum(c.used or 0 for c in d.counts)):>8s}" if used else ""))
        lines += [f"  known bad, excluded: {b['split']}/{b['key']} ({b['reason']})" for b in d.known_bad]
        lines += [f"  note: {n}" for n in _notes(d)]
        lines += [f"  {p.severity.upper():8s}{p.kind:18s}{p.message}" for p in d.problems]
    lines += ["", _verdict(report)]
    return "\n".join(lines)


def render_rich(report: CheckReport):
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts = [Text(f"data check: {report.root}", style="bold")]
    parts += [Text(f"{p.severity.upper()} {p.kind}: {p.message}", style="red") for p in report.problems]
    for d in report.datasets:
        table = Table(title=f"{d.key}  {d.root}", title_justify="left")
        used = bool(d.known_bad)   # a "used" column only where files are left out
        for name in ("split", "found", "official", "videos", "official videos") + (("used",) if used else ()):
            table.add_column(name, justify="left" if name == "split" else "right")
        for c in d.counts:
            bad = ((c.expected is not None and c.found != c.expected)
                   or (c.expected_videos is not None and c.videos != c.expected_videos))
            table.add_row(c.split, _fmt(c.found), _fmt(c.expected), _fmt(c.videos), _fmt(c.expected_videos),
                          *([_fmt(c.used)] if used else []), style="yellow" if bad else None)
        if d.expected_total is not None:
            table.add_row("all", _fmt(d.total), _fmt(d.expected_total), "", "",
                          *([_fmt(sum(c.used or 0 for c in d.counts))] if used else []))
        parts.append(table)
        parts += [Text(f"  known bad, excluded: {b['split']}/{b['key']} ({b['reason']})", style="cyan")
                  for b in d.known_bad]
        parts += [Text(f"  note: {n}", style="dim") for n in _notes(d)]
        parts += [Text(f"  {p.severity.upper()} {p.kind}: {p.message}",
                       style="red" if p.severity == "error" else "yellow") for p in d.problems]
    parts.append(Text(_verdict(report), style="bold green" if report.ok else "bold red"))
    return Group(*parts)
