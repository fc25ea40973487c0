"""VMD-D, the video mirror dataset, as downloaded: `VMD/{train,test}/<video>/JPEGImages/*.jpg` with masks in
`.../<video>/SegmentationClassPNG/*.png` (REFERENCE.md §4: 143 / 126 videos, 7,835 / 7,152 frames).

Masks are palette PNGs whose foreground is palette index 1 (drawn in a dark colour): binarise by index > 0, never
by grey > 127, which would read every mask as empty. Each frame's key is `<video>/<frame stem>` and its group is the
video, so a validation split carved from train never splits a video.
"""
from __future__ import annotations

from pathlib import Path

from benchmark.data.base import DataError, DatasetSource, SampleRef, child_dir, list_images, natural_key, sub_dirs

EXPECTED = {"train": 7835, "test": 7152}
EXPECTED_VIDEOS = {"train": 143, "test": 126}


def _video_refs(video: Path) -> list[SampleRef]:
    images, masks = child_dir(video, "JPEGImages"), child_dir(video, "SegmentationClassPNG")
    if images is None:
        raise DataError(f"VMD: video folder {video} has no JPEGImages/ folder; re-extract this video")
    mask_by_stem = {p.stem: p for p in list_images(masks)} if masks is not None else {}
    return [SampleRef(f"{video.name}/{p.stem}", p, mask_by_stem.get(p.stem), group=video.name)
            for p in sorted(list_images(images), key=lambda p: natural_key(p.stem))]


def open_vmd(root: Path) -> DatasetSource:
    root = Path(root)
    splits, notes = {}, []
    for split in ("train", "test"):
        # some copies of the archive unzip the training videos as train_origin/ (train_origin.zip)
        folder = child_dir(root, split, *(("train_origin",) if split == "train" else ()))
        if folder is not None and folder.name.lower() != split:
            notes.append(f"{split} split read from {folder.name}/")
        if folder is None:
            raise DataError(f"VMD: expected folder {root / split} holding one folder per video (point --data-root "
                            "at the unzipped VMD folder)")
        videos = sorted(sub_dirs(folder), key=lambda v: natural_key(v.name))
        splits[split] = [ref for video in videos for ref in _video_refs(video)]
    return DatasetSource("vmd", root, splits, "nonzero", 2, dict(EXPECTED),
                         ["masks are palette PNGs: foreground = palette index > 0", *notes],
                         expected_groups=dict(EXPECTED_VIDEOS))
