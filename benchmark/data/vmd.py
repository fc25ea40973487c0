"""VMD-D, the video mirror dataset, as downloaded: `VMD/{train,test}/<video>/JPEGImages/*.jpg` with masks in
`.../<video>/SegmentationClassPNG/*.png` (REFERENCE.md §4: 143 / 126 videos, 7,835 / 7,152 frames).

Masks are palette PNGs whose foreground is palette index 1 (drawn in a dark colour): binarise by index > 0, never
by grey > 127, which would read every mask as empty. Each frame's key is `<video>/<frame stem>` and its group is the
video, so a validation split carved from train never splits a video.
"""
from __future__ import annotations

from pathlib import Path

from benchmark.data.base import (DataError, DatasetSource, SampleRef, by_stem, child_dir, list_images, natural_key,
                                 sub_dirs, unpaired)

EXPECTED = {"train": 7835, "test": 7152}
EXPECTED_VIDEOS = {"train": 143, "test": 126}


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


def open_vmd(root: Path) -> DatasetSource:
    root = Path(root)
    splits, notes, extra = {}, [], []
    for split in ("train", "test"):
        # some copies of the archive unzip the training videos as train_origin/ (train_origin.zip)
        folder = child_dir(root, split, *(("train_origin",) if split == "train" else ()))
        if folder is not None and folder.name.lower() != split:
            notes.append(f"{split} split read from {folder.name}/")
        if folder is None:
            raise DataError(f"VMD: expected folder {root / split} holding one folder per video (the data root "
                            "should be the unzipped VMD folder)")
        videos = sorted(sub_dirs(folder), key=lambda v: natural_key(v.name))
        splits[split] = []
        for video in videos:
            refs, unmatched = _video_refs(video)
            splits[split] += refs
            extra += unmatched
    return DatasetSource("vmd", root, splits, "nonzero", 2, dict(EXPECTED),
                         ["masks are palette PNGs: foreground = palette index > 0", *notes],
                         expected_groups=dict(EXPECTED_VIDEOS), unpaired_masks=extra)
