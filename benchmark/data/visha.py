"""ViSha, the video shadow dataset, as downloaded: `ViSha/{train,test}/images/<video>/*.jpg` with masks in
`ViSha/{train,test}/labels/<video>/*.png` (0/255; REFERENCE.md §4: 50 / 70 videos, 11,685 frames in all; the
per-split frame counts are not recorded there, so only the total and the video counts are checked).

Each frame's key is `<video>/<frame stem>` and its group is the video, so validation never splits a video. A
split is defined by its ground truth (TVSD's evaluate.py walks `labels/<video>/*.png`), so label files without an
image, single ones or a whole video's folder, are `unpaired_masks`: `data check` reports them as errors, and a test
split missing labelled frames is refused rather than scored on fewer frames.
"""
from __future__ import annotations

from pathlib import Path

from benchmark.data.base import (DataError, DatasetSource, SampleRef, by_stem, child_dir, list_images, natural_key,
                                 nested_root, sub_dirs, unpaired)
from benchmark.data.vmd import nested_message, nested_split

EXPECTED_VIDEOS = {"train": 50, "test": 70}
EXPECTED_TOTAL = 11685


def _holds_split(folder: Path) -> bool:
    return child_dir(folder, "images") is not None and child_dir(folder, "labels") is not None


def open_visha(root: Path) -> DatasetSource:
    root, notes = nested_root(Path(root), lambda d: any(child_dir(d, n) for n in ("train", "test")))
    splits, extra = {}, []
    for split in ("train", "test"):
        folder = child_dir(root, split)
        if folder is not None and (inner := nested_split(folder, _holds_split)) is not None:
            raise DataError(nested_message("ViSha", inner))
        images, labels = ((child_dir(folder, "images") if folder else None),
                          (child_dir(folder, "labels") if folder else None))
        if images is None or labels is None:
            raise DataError(f"ViSha: expected folders {root / split / 'images'} and {root / split / 'labels'} (the "
                            "data root should be the unzipped ViSha folder)")
        refs = []
        videos = sorted(sub_dirs(images), key=lambda v: natural_key(v.name))
        for video in videos:
            label_dir = child_dir(labels, video.name)
            image_by_stem = by_stem(list_images(video))
            mask_by_stem = by_stem(list_images(label_dir)) if label_dir is not None else {}
            extra += unpaired(mask_by_stem, image_by_stem)
            refs += [SampleRef(f"{video.name}/{stem}", p, mask_by_stem.get(stem), group=video.name)
                     for stem, p in sorted(image_by_stem.items(), key=lambda item: natural_key(item[0]))]
        known = {v.name.lower() for v in videos}
        orphans = [d for d in sorted(sub_dirs(labels), key=lambda v: natural_key(v.name))
                   if d.name.lower() not in known]
        for label_dir in orphans:   # a whole video's labels without its images: its frames are lost to the split
            extra += list_images(label_dir)
        if orphans:
            notes.append(f"{split}: label folders without images: {', '.join(d.name for d in orphans)} (their frames "
                         f"are left out; restore the images under {images}/)")
        splits[split] = refs
    return DatasetSource("visha", root, splits, "threshold128", 2, {}, notes,
                         expected_groups=dict(EXPECTED_VIDEOS), expected_total=EXPECTED_TOTAL, unpaired_masks=extra)
