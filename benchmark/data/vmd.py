"""VMD-D, the video mirror dataset, as downloaded: `VMD/{train,test}/<video>/JPEGImages/*.jpg` with masks in
`.../<video>/SegmentationClassPNG/*.png` (REFERENCE.md §4: 143 / 126 videos, 7,835 / 7,152 frames).

Masks are palette PNGs whose foreground is palette index 1 (drawn in a dark colour): binarise by index > 0, never
by grey > 127, which would read every mask as empty. Each frame's key is `<video>/<frame stem>` and its group is the
video, so a validation split carved from train never splits a video.

The training videos unzip as `train_origin/` from some copies of the archive (train_origin.zip). VMD-Net workflows
then split it into `train/` (80% of the videos) and `val/` beside it: with both `train/` and `train_origin/`, the one
holding the official 143 videos is read (a note names it and what was ignored), and neither holding them is an error.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from benchmark.data.base import (DataError, DatasetSource, SampleRef, by_stem, child_dir, list_images, natural_key,
                                 nested_root, sub_dirs, unpaired)

EXPECTED = {"train": 7835, "test": 7152}
EXPECTED_VIDEOS = {"train": 143, "test": 126}


def nested_split(folder: Path, holds_split: Callable[[Path], bool]) -> Path | None:
    """The folder of `folder`'s own name inside it, when `folder` does not hold its split but that one does: an
    archive extracted into a folder named after it (`unzip train_origin.zip -d VMD/train_origin`)."""
    inner = child_dir(folder, folder.name)
    return inner if inner is not None and holds_split(inner) and not holds_split(folder) else None


def nested_message(dataset: str, inner: Path) -> str:
    return (f"{dataset}: {inner} is nested in a folder of its own name (an archive extracted into a folder named after "
            f"it): move its contents up one level (mv {inner}/* {inner.parent}/ && rmdir {inner})")


def _is_video(folder: Path) -> bool:
    return child_dir(folder, "JPEGImages") is not None


def holds_videos(folder: Path) -> bool:
    return any(_is_video(v) for v in sub_dirs(folder))


def _videos(folder: Path) -> list[Path]:
    return sorted(sub_dirs(folder), key=lambda v: natural_key(v.name))


def _video_refs(video: Path) -> tuple[list[SampleRef], list[Path]]:
    """One video's frames in order, and the masks that pair with none of them."""
    images, masks = child_dir(video, "JPEGImages"), child_dir(video, "SegmentationClassPNG")
    if images is None:
        raise DataError(f"VMD: video folder {video} has no JPEGImages/ folder; re-extract this video")
    image_by_stem = by_stem(list_images(images))
    mask_by_stem = by_stem(list_images(masks)) if masks is not None else {}
    refs = [SampleRef(f"{video.name}/{stem}", p, mask_by_stem.get(stem), group=video.name)
            for stem, p in sorted(image_by_stem.items(), key=lambda item: natural_key(item[0]))]
    return refs, unpaired(mask_by_stem, image_by_stem)


def _split_folder(root: Path, name: str) -> Path | None:
    folder = child_dir(root, name)
    if folder is not None and (inner := nested_split(folder, holds_videos)) is not None:
        raise DataError(nested_message("VMD", inner))
    return folder


def _n_videos(folder: Path) -> str:
    n = len(sub_dirs(folder))
    return f"{n} video{'s' * (n != 1)}"


def _pick_training(root: Path, train: Path, origin: Path) -> tuple[Path, str]:
    """Which of `train/` and `train_origin/` holds the official training split, and why."""
    names = {f: {v.name.lower() for v in sub_dirs(f)} for f in (train, origin)}
    if names[train] == names[origin]:
        return train, f"the same as {origin.name}/"
    official = [f for f in (train, origin) if len(names[f]) == EXPECTED_VIDEOS["train"]]
    if len(official) == 1:
        return official[0], "the official count"
    n = EXPECTED_VIDEOS["train"]
    why = (f"both hold {n} videos, but not the same ones" if official else
           f"neither holds the official {n} training videos")
    raise DataError(f"VMD: {root} holds both {train.name}/ ({_n_videos(train)}) and {origin.name}/ "
                    f"({_n_videos(origin)}), and {why}, so which one to train on is unclear: keep that one and move "
                    f"the other out of {root} ({origin.name}/ is what train_origin.zip unpacks to; a {train.name}/ "
                    "beside it, with a val/, is usually a train/val split of it made by another workflow)")


def _training_folder(root: Path) -> tuple[Path | None, list[str]]:
    """The folder of the official training videos, and a note naming it when it is not plainly `train/` alone."""
    train, origin = _split_folder(root, "train"), _split_folder(root, "train_origin")
    if train is None or origin is None:
        folder, why, ignored = train or origin, "", []
    else:
        folder, why = _pick_training(root, train, origin)
        ignored = [origin if folder == train else train]
    val = child_dir(root, "val")
    ignored += [val] if val is not None and sub_dirs(val) else []
    if folder is None or (folder.name.lower() == "train" and not ignored):
        return folder, []
    note = f"train split read from {folder.name}/" + (f" ({_n_videos(folder)}, {why})" if why else "")
    if ignored:
        note += ("; ignored: " + ", ".join(f"{f.name}/ ({_n_videos(f)})" for f in ignored)
                 + (" (VMD-D's official splits are train and test; validation is carved from the training videos)"
                    if val in ignored else ""))
    return folder, [note]


def open_vmd(root: Path) -> DatasetSource:
    root, nested = nested_root(Path(root), lambda d: any(child_dir(d, n) for n in ("train", "train_origin", "test")))
    splits, extra = {}, []
    train, notes = _training_folder(root)
    for split, folder in (("train", train), ("test", _split_folder(root, "test"))):
        if folder is None:
            also = " (or train_origin/)" if split == "train" else ""
            why = (f"{root} holds video folders itself, so it is a split folder; the data root is the VMD folder "
                   "holding train/ and test/" if holds_videos(root) else
                   "the data root should be the unzipped VMD folder")
            raise DataError(f"VMD: expected folder {root / split}{also} holding one folder per video ({why})")
        splits[split] = []
        for video in _videos(folder):
            refs, unmatched = _video_refs(video)
            splits[split] += refs
            extra += unmatched
    return DatasetSource("vmd", root, splits, "nonzero", 2, dict(EXPECTED),
                         [*nested, "masks are palette PNGs: foreground = palette index > 0", *notes],
                         expected_groups=dict(EXPECTED_VIDEOS), unpaired_masks=extra)
