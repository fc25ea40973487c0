"""Miniature synthetic datasets written to disk in native layouts, for the demo and the tests.

Each scene is a cluttered, noisy background with flat "distractor" blobs and one or two textured target blobs
(wobbly ellipses, striped at a random angle). Colour alone does not separate target from distractors (some
distractors take colours near the targets'), colour, texture and shape together do, so a decoder must learn something, and an untrained one scores near
chance. Everything is a pure function of (seed, index): the same call writes the same bytes.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


# Targets are a pinkish red with stripes, distractors flat blobs of any colour, some of them near the target's.
TARGET_COLOUR = np.array([190.0, 80.0, 110.0])


def _blob(h: int, w: int, rng: np.random.Generator, cy: float, cx: float, radius: float) -> np.ndarray:
    """A wobbly ellipse: the radius varies with the angle by a few low harmonics."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    ratio = rng.uniform(0.6, 1.0)
    theta = np.arctan2(dy, dx)
    wobble = 1 + sum(rng.uniform(-0.12, 0.12) * np.cos(k * theta + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5))
    rot = rng.uniform(0, np.pi)
    u = dx * np.cos(rot) + dy * np.sin(rot)
    v = (-dx * np.sin(rot) + dy * np.cos(rot)) / ratio
    return np.sqrt(u * u + v * v) <= radius * wobble


def make_scene(seed: int, index: int, size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One (image uint8 HxWx3, mask uint8 HxW 0/1) pair; native sizes vary like real data unless `size` is given."""
    rng = np.random.default_rng([seed, index])
    h, w = size or (int(rng.integers(208, 336)), int(rng.integers(240, 400)))
    palette = rng.uniform(40, 215, size=(6, 3))
    # background: a smooth two-colour gradient plus coarse clutter and pixel noise
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    t = ((np.cos(angle) * xx / w + np.sin(angle) * yy / h) + 1) / 2
    c0, c1 = rng.uniform(70, 180, size=(2, 1)) + rng.normal(0, 15, size=(2, 3))   # greyish, lightly tinted
    image = (c0 * (1 - t[..., None]) + c1 * t[..., None]).astype(np.float32)
    coarse = rng.normal(0, 18, size=(h // 24 + 2, w // 24 + 2, 3)).astype(np.float32)
    image += np.kron(coarse, np.ones((24, 24, 1), np.float32))[:h, :w]
    # distractors: flat blobs in palette colours
    for _ in range(int(rng.integers(2, 5))):
        r = rng.uniform(0.08, 0.18) * min(h, w)
        region = _blob(h, w, rng, rng.uniform(0, h), rng.uniform(0, w), r)
        near = rng.random() < 0.15
        image[region] = TARGET_COLOUR + rng.normal(0, 55, size=3) if near else palette[rng.integers(len(palette))]
    # targets: striped blobs in palette colours
    mask = np.zeros((h, w), bool)
    for _ in range(int(rng.integers(1, 3))):
        r = rng.uniform(0.14, 0.24) * min(h, w)
        region = _blob(h, w, rng, rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w, r)
        period, phi = rng.uniform(5, 9), rng.uniform(0, np.pi)
        stripes = np.sin(2 * np.pi * (np.cos(phi) * xx + np.sin(phi) * yy) / period)[..., None]
        colour = TARGET_COLOUR + rng.normal(0, 12, size=3)
        image[region] = (colour + 35 * stripes)[region]
        mask |= region
    image += rng.normal(0, 10, size=image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), mask.astype(np.uint8)


def write_kvasir(root: Path, n_train: int = 48, n_test: int = 16, seed: int = 0) -> Path:
    """Kvasir-SEG's native layout (REFERENCE.md §4): images/ and masks/ as JPEG (masks lossy, 0/255),
    kavsir_bboxes.json (sic), and the authors' train.txt / val.txt split lists."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    stems = ["c" + "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz0123456789"), 24)) for _ in range(n_train + n_test)]
    bboxes = {}
    for i, stem in enumerate(stems):
        image, mask = make_scene(seed, i)
        Image.fromarray(image).save(root / "images" / f"{stem}.jpg", quality=90)
        Image.fromarray(mask * 255).save(root / "masks" / f"{stem}.jpg", quality=90)
        ys, xs = np.nonzero(mask)
        bboxes[stem] = {"height": int(mask.shape[0]), "width": int(mask.shape[1]),
                        "bbox": [{"label": "polyp", "xmin": int(xs.min()), "ymin": int(ys.min()),
                                  "xmax": int(xs.max()), "ymax": int(ys.max())}]}
    (root / "kavsir_bboxes.json").write_text(json.dumps(bboxes))
    (root / "train.txt").write_text("\n".join(stems[:n_train]) + "\n")
    (root / "val.txt").write_text("\n".join(stems[n_train:]) + "\n")
    return root
