"""Probability maps for a folder of images from a finished (or imported) run, at each image's native size."""
from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from benchmark.data.base import IMAGE_SUFFIXES, DataError, list_images, read_image, sub_dirs
from benchmark.evaluate import native_probability, probabilities, to_input
# beside the maps: which run made them and at which network size (`segbench score` takes its --size from it)
from benchmark.metrics.score import PREDICTIONS_META
from benchmark.progress import bars_off
from benchmark.records import atomic_write_bytes, load_run_model, now, write_json


def predict_folder(run_dir: str | Path, images: str | Path, out: str | Path, device: str = "cpu",
                   progress: bool = True) -> list[Path]:
    """Writes `<out>/<relative path>.png` for every image under `images` (sub-folders too, e.g. one per video, kept
    in `out` so `segbench score` pairs them with masks by relative path): the foreground probability x 255 (binary)
    or the class index map (multi-class)."""
    images, out = Path(images), Path(out)
    files = [images] if images.is_file() else (_images_below(images) if images.is_dir() else None)
    if files is None:
        raise DataError(f"image folder not found: {images}")
    if images.is_file() and images.suffix.lower() not in IMAGE_SUFFIXES:   # before any folder is made
        raise DataError(f"{images} is not an image ({images.suffix or 'no suffix'}); give an image file "
                        f"({', '.join(IMAGE_SUFFIXES)}) or a folder of them")
    if not files:
        raise DataError(f"no images (.jpg, .png, ...) in {images} or its sub-folders")
    if images.is_dir() and (out.resolve() == images.resolve() or images.resolve() in out.resolve().parents):
        raise DataError(f"--out {out} is inside the image folder {images}: the maps would overwrite images of the "
                        "same name or be read as images next time; give a folder outside it")
    if images.is_dir():
        check_no_mask_folders(run_dir, images, out, files)
    targets = [out / (path.relative_to(images).with_suffix(".png") if path != images else f"{path.stem}.png")
               for path in files]
    seen: dict[Path, Path] = {}
    for path, target in zip(files, targets):
        if target in seen:
            raise DataError(f"{seen[target]} and {path} would both write {target}; rename one of them")
        seen[target] = path
    cfg, model = load_run_model(run_dir, device)
    return _predict(model, run_dir, cfg.data.size, list(zip(files, targets)), out,
                    {"images": str(images.resolve()), "run_dataset": cfg.data.dataset}, device, progress)


# folders of masks (and mask renderings) in the datasets' layouts: ViSha's labels/, VMD-D's SegmentationClassPNG/ and
# SegmentationClassVisualization/, Kvasir's masks/, MSD's mask/, ISIC's *_GroundTruth/, TN3K's test-mask/, GT/
MASK_FOLDER_NAMES = ("labels", "label", "masks", "mask", "gt", "groundtruth", "ground_truth", "annotations")
MASK_FOLDER_PREFIXES = ("segmentationclass", "segmentationobject")
MASK_FOLDER_SUFFIXES = ("_groundtruth", "-groundtruth", "-mask", "_mask", "-masks", "_masks")


def is_mask_folder(name: str) -> bool:
    name = name.lower()
    return name in MASK_FOLDER_NAMES or name.startswith(MASK_FOLDER_PREFIXES) or name.endswith(MASK_FOLDER_SUFFIXES)


def check_no_mask_folders(run_dir, images: Path, out: Path, files: list[Path]) -> None:
    """Refuses an image folder with mask folders below it (VMD-D's `test/`, whose videos hold JPEGImages/ beside
    SegmentationClassPNG/; ViSha's `test/`, with images/ beside labels/): predict would run the model on every mask
    too and name the maps after their folders, which `segbench score` pairs with nothing. Names the dataset's
    `--split` command when the folder lies in a dataset layout, else a folder of images only. Pointing at a mask
    folder itself is the user's choice."""
    from benchmark.metrics.score import dataset_around

    masks: dict[Path, int] = {}
    for path in files:
        parts = path.relative_to(images).parts[:-1]
        hit = next((i for i, part in enumerate(parts) if is_mask_folder(part)), None)
        if hit is not None:
            folder = images.joinpath(*parts[:hit + 1])
            masks[folder] = masks.get(folder, 0) + 1
    if not masks:
        return
    n = sum(masks.values())
    shown = ", ".join(f"{f.relative_to(images).as_posix()}/" for f in list(masks)[:3]) + (
        f" and {len(masks) - 3} more" if len(masks) > 3 else "")
    message = (f"{images} holds mask folders ({shown}: {n} of its {len(files)} images): predict would run the model on "
               "the masks as if they were images")
    plain = sorted({p.parent for p in files if not any(is_mask_folder(part) for part in
                                                       p.relative_to(images).parts[:-1])})
    only = f"give a folder of images only{f' (e.g. {plain[0]})' if plain else ''}"
    found = dataset_around(images)
    if found is not None:
        key, root = found
        inside = images.resolve().relative_to(root) if images.resolve() != root else Path()
        first = inside.parts[0].lower() if inside.parts else ""
        split = next((s for s in ("train", "val", "test") if first.startswith(s)), "test")   # train_origin: train
        message += (f". It lies in the {key} dataset at {root}: "
                    f"`segbench predict {run_dir} --split {split} --dataset {key} --data-root {root} --out {out}` "
                    f"predicts its {split} images as `<key>.png`, the names `segbench score {out} {root} --dataset "
                    f"{key}` pairs with the masks; or {only}")
    else:
        message += f"; {only}"
    raise DataError(message)


def predict_split(run_dir: str | Path, out: str | Path, split: str = "test", data_root: str | None = None,
                  dataset: str | None = None, device: str = "cpu", progress: bool = True) -> tuple[list[Path], str]:
    """Writes `<out>/<key>.png` for every sample of a dataset split, read by its loader from the layout users
    download (the run's recorded dataset and data root unless given): e.g. `<video>/<frame>.png` for VMD-D and
    ViSha, the official test split only for Kvasir-SEG. `segbench score OUT DATA --dataset NAME` pairs them.
    Returns the files written and which split of which folder they are."""
    from benchmark.registry import open_dataset

    cfg, model = load_run_model(run_dir, device)
    name, root = dataset or cfg.data.dataset, data_root or cfg.data.root
    if root is None or not Path(root).expanduser().is_dir():
        raise DataError(f"data root {root} is not there" + ("" if data_root else
                        f" (recorded in {Path(run_dir) / 'config.yaml'})") + "; pass --data-root")
    source = open_dataset(name, root, model.num_classes)
    if split not in source.splits:
        carved = (f"; a run's validation split is carved from its training split: predict --split train, and "
                  f"take the keys listed under \"val\" in {Path(run_dir) / 'split.json'}" if split == "val" else "")
        raise DataError(f"{source.name} has no '{split}' split (it has {', '.join(source.splits)}){carved}")
    refs = source.splits[split]
    if not refs:
        raise DataError(f"{source.name}'s {split} split under {source.root} is empty")
    out = Path(out)
    written = _predict(model, run_dir, cfg.data.size, [(ref.image, out / f"{ref.key}.png") for ref in refs], out,
                       {"dataset": source.name, "split": split, "root": str(source.root),
                        "run_dataset": cfg.data.dataset}, device, progress)
    return written, f"{source.name} {split} split in {source.root}"


def _predict(model, run_dir, size: int, jobs: list[tuple[Path, Path]], out: Path, what: dict, device: str,
             progress: bool) -> list[Path]:
    """The maps of `jobs`, with PREDICTIONS_META beside them: written first with `complete: false`, so that a
    predict stopped part-way (an unreadable image, Ctrl-C, a killed job) leaves a folder `segbench score` refuses
    instead of scoring what is there, or the older maps of another predict, as if they were the whole set."""
    meta_path = Path(out) / PREDICTIONS_META
    meta = {"run_dir": str(Path(run_dir).resolve()), "network_size": size, **what, "maps": len(jobs),
            "map_values": map_values(getattr(model, "num_classes", 2))}
    write_json(meta_path, {**meta, "complete": False, "started": now()})
    written: list[Path] = []
    try:
        for target in _write_maps(model, size, jobs, device, progress):
            written.append(target)
    except BaseException as err:
        reason = "interrupted" if isinstance(err, KeyboardInterrupt) else f"{type(err).__name__}: {err}"
        write_json(meta_path, {**meta, "complete": False, "maps_written": len(written),
                               "stopped_at": str(jobs[len(written)][0]), "reason": reason, "stopped": now()})
        if isinstance(err, DataError):
            raise DataError(f"{err} ({len(written)} of the {len(jobs)} maps were written to {out} before it; "
                            f"segbench score refuses the folder until a predict finishes)") from err
        raise
    write_json(meta_path, {**meta, "complete": True, "written": now()})
    return written


def map_values(num_classes: int) -> str:
    """What the pixels of a run's maps hold."""
    return "foreground probability x 255" if num_classes <= 2 else f"class index (0-{num_classes - 1})"


def predictions_size(pred_dir: str | Path) -> int | None:
    """The network size of the run whose `segbench predict` wrote `pred_dir`, None for other folders."""
    import json

    try:
        return int(json.loads((Path(pred_dir) / PREDICTIONS_META).read_text())["network_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_maps(model, size: int, jobs: list[tuple[Path, Path]], device: str, progress: bool) -> Iterator[Path]:
    """For each (image, target): the foreground probability x 255 (binary) or the class index map (multi-class)
    at the image's native size, saved as 8-bit PNG; yields each target once written."""
    for path, target in tqdm(jobs, desc="predict", disable=bars_off(progress)):
        image = read_image(path, skip_hint=False)
        resized = np.array(Image.fromarray(image).resize((size, size), Image.BICUBIC))
        with torch.no_grad():
            prob = probabilities(
                model(to_input(torch.from_numpy(resized[None]), torch.device(device))))[0].cpu().numpy()
        native = native_probability(prob, image.shape[:2])
        pixels = np.round(native * 255) if native.ndim == 2 else native.argmax(0)
        target.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
        atomic_write_bytes(target, buffer.getvalue(), fsync=False)   # an interrupted predict leaves no half-written map
        yield target


def _images_below(folder: Path) -> list[Path]:
    """Image files in `folder` and its sub-folders (not hidden ones, nor macOS's __MACOSX), sorted."""
    return list_images(folder) + [p for sub in sub_dirs(folder) for p in _images_below(sub)]
