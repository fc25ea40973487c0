"""Probability maps for a folder of images from a finished (or imported) run, at each image's native size."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from benchmark.data.base import DataError, list_images, read_image, sub_dirs
from benchmark.evaluate import native_probability, probabilities, to_input
from benchmark.progress import bars_off
from benchmark.records import load_run_model


def predict_folder(run_dir: str | Path, images: str | Path, out: str | Path, device: str = "cpu",
                   progress: bool = True) -> list[Path]:
    """Writes `<out>/<relative path>.png` for every image under `images` (sub-folders too, e.g. one per video, kept
    in `out` so `segbench score` pairs them with masks by relative path): the foreground probability x 255 (binary)
    or the class index map (multi-class)."""
    images, out = Path(images), Path(out)
    files = [images] if images.is_file() else (_images_below(images) if images.is_dir() else None)
    if files is None:
        raise DataError(f"image folder not found: {images}")
    if not files:
        raise DataError(f"no images (.jpg, .png, ...) in {images} or its sub-folders")
    cfg, model = load_run_model(run_dir, device)
    size = cfg.data.size
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in tqdm(files, desc="predict", disable=bars_off(progress)):
        image = read_image(path)
        resized = np.array(Image.fromarray(image).resize((size, size), Image.BICUBIC))
        with torch.no_grad():
            prob = probabilities(
                model(to_input(torch.from_numpy(resized[None]), torch.device(device))))[0].cpu().numpy()
        native = native_probability(prob, image.shape[:2])
        pixels = np.round(native * 255) if native.ndim == 2 else native.argmax(0)
        target = out / (path.relative_to(images).with_suffix(".png") if path != images else f"{path.stem}.png")
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels.astype(np.uint8)).save(target)
        written.append(target)
    return written


def _images_below(folder: Path) -> list[Path]:
    """Image files in `folder` and its sub-folders (not hidden ones, nor macOS's __MACOSX), sorted."""
    return list_images(folder) + [p for sub in sub_dirs(folder) for p in _images_below(sub)]
