"""Miniature synthetic datasets written to disk in native layouts, for the demo and the tests.

Each scene is a cluttered, noisy background with flat "distractor" blobs and one or two textured target blobs
(wobbly ellipses, striped at a random angle). Colour alone does not separate target from distractors (some
distractors take colours near the targets'), colour, texture and shape together do, so a decoder must learn
something, and an untrained one scores near chance. Everything is a pure function of (seed, index): the same
call writes the same bytes.
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
        r = rng.uniform(0.12, 0.21) * min(h, w)
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
    stems = ["c" + "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz0123456789"), 24))
             for _ in range(n_train + n_test)]
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


# ---------------------------------------------------------------------------------------------------------------
# The other native layouts (REFERENCE.md §4), each with its dataset's quirks, for tests, `data check` and the demo.
# `offset` keeps the scenes of different datasets apart; every writer is a pure function of its arguments.

def _save_pair(image: np.ndarray, image_path: Path, mask: Image.Image, mask_path: Path) -> None:
    image_path.parent.mkdir(parents=True, exist_ok=True)
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(image_path, quality=90)
    _save_mask(mask, mask_path)


def _save_mask(mask: Image.Image, path: Path) -> None:
    if path.suffix.lower() in (".jpg", ".jpeg"):
        mask.save(path, quality=90)   # lossy, as the JPEG-mask datasets ship
    else:
        mask.save(path)


def _grey(mask: np.ndarray) -> Image.Image:
    return Image.fromarray(mask * 255)   # mode L, 0/255


def _video_lengths(n_frames: int, per_video: int = 3) -> list[int]:
    return [min(per_video, n_frames - i) for i in range(0, n_frames, per_video)]


def write_tn3k(root: Path, n_train: int = 40, n_test: int = 10, seed: int = 0) -> Path:
    """TN3K: numbered JPEGs (0000.jpg up), grey lossy JPEG masks, and five fold files {"train": [ids], "val": [ids]}
    whose ids are the trainval image numbers."""
    root = Path(root)
    for split, n, offset in (("trainval", n_train, 1000), ("test", n_test, 2000)):
        for i in range(n):
            image, mask = make_scene(seed, offset + i)
            _save_pair(image, root / f"{split}-image" / f"{i:04d}.jpg",
                       _grey(mask), root / f"{split}-mask" / f"{i:04d}.jpg")
    order = np.random.default_rng([seed, 1]).permutation(n_train)
    for k, held in enumerate(np.array_split(order, 5)):
        val = sorted(int(i) for i in held)
        fold = {"train": [i for i in range(n_train) if i not in set(val)], "val": val}
        (root / f"tn3k-trainval-fold{k}.json").write_text(json.dumps(fold))
    return root


def write_isic2017(root: Path, n_train: int = 40, n_test: int = 10, seed: int = 0, n_val: int | None = None) -> Path:
    """ISIC 2017 Part 1: `ISIC-2017_{Training,Validation,Test_v2}_Data` with `*_superpixels.png` and a metadata CSV
    beside the JPEGs, and `..._Part1_GroundTruth/ISIC_<id>_segmentation.png` masks whose suffix varies in case."""
    root = Path(root)
    n_val = max(2, n_test // 2) if n_val is None else n_val
    suffixes = ("_segmentation.png", "_Segmentation.png", "_segmentation.PNG")
    next_id = 0
    for part, n, offset in (("Training", n_train, 3000), ("Validation", n_val, 4000), ("Test_v2", n_test, 5000)):
        data, truth = root / f"ISIC-2017_{part}_Data", root / f"ISIC-2017_{part}_Part1_GroundTruth"
        rows = ["image_id,age_approximate,sex"]
        for i in range(n):
            image, mask = make_scene(seed, offset + i)
            stem = f"ISIC_{next_id:07d}"
            next_id += 1
            _save_pair(image, data / f"{stem}.jpg", _grey(mask), truth / f"{stem}{suffixes[i % len(suffixes)]}")
            superpixels = np.random.default_rng([seed, offset + i]).integers(0, 255, (*mask.shape, 3), dtype=np.uint8)
            Image.fromarray(superpixels).save(data / f"{stem}_superpixels.png")
            rows.append(f"{stem},{40 + i % 30},{'male' if i % 2 else 'female'}")
        (data / f"ISIC-2017_{part}_Data_metadata.csv").write_text("\n".join(rows) + "\n")
    return root


def write_msd(root: Path, n_train: int = 40, n_test: int = 10, seed: int = 0) -> Path:
    """MSD: `{train,test}/image/<n>_<h>x<w>.jpg` and `{train,test}/mask/*.png` (mirror = 255), plus the known-bad test
    sample `1751_512x640` whose mask does not fit its image (the loader must leave it out by its recorded rule)."""
    root = Path(root)
    for split, n, offset in (("train", n_train, 6000), ("test", n_test, 7000)):
        for i in range(n):
            image, mask = make_scene(seed, offset + i)
            stem = f"{offset - 5000 + i}_{mask.shape[0]}x{mask.shape[1]}"
            _save_pair(image, root / split / "image" / f"{stem}.jpg",
                       _grey(mask), root / split / "mask" / f"{stem}.png")
    image, mask = make_scene(seed, 7999, size=(256, 320))
    _save_pair(image, root / "test" / "image" / "1751_512x640.jpg",
               _grey(mask.T.copy()), root / "test" / "mask" / "1751_512x640.png")
    return root


def _palette_mask(mask: np.ndarray) -> Image.Image:
    """A VOC-style palette PNG: index 0 black, index 1 dark red (grey ~38, so a > 127 threshold reads it as empty)."""
    img = Image.fromarray(mask.astype(np.uint8), mode="P")
    img.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] + [0, 0, 0] * 252)
    return img


def write_vmd(root: Path, n_train: int = 40, n_test: int = 10, seed: int = 0) -> Path:
    """VMD-D: `{train,test}/<video>/JPEGImages/<frame>.jpg` and `.../SegmentationClassPNG/<frame>.png`, palette masks
    with foreground index 1; frames are numbered every 5 (sparse annotation) and share their video's size."""
    root = Path(root)
    for split, n, offset in (("train", n_train, 8000), ("test", n_test, 9000)):
        index = 0
        for v, length in enumerate(_video_lengths(n)):
            rng = np.random.default_rng([seed, offset, v])
            size = (int(rng.integers(208, 320)), int(rng.integers(240, 384)))
            video = root / split / f"{offset // 1000 * 100 + v:04d}"
            for f in range(length):
                image, mask = make_scene(seed, offset + index, size=size)
                index += 1
                stem = f"{5 * f:05d}"
                _save_pair(image, video / "JPEGImages" / f"{stem}.jpg",
                           _palette_mask(mask), video / "SegmentationClassPNG" / f"{stem}.png")
    return root


def write_visha(root: Path, n_train: int = 40, n_test: int = 10, seed: int = 0) -> Path:
    """ViSha: `{train,test}/images/<video>/<frame>.jpg` and `{train,test}/labels/<video>/<frame>.png` (0/255)."""
    root = Path(root)
    for split, n, offset in (("train", n_train, 10000), ("test", n_test, 11000)):
        index = 0
        for v, length in enumerate(_video_lengths(n)):
            rng = np.random.default_rng([seed, offset, v])
            size = (int(rng.integers(208, 320)), int(rng.integers(240, 384)))
            video = f"{split}_video_{v:02d}"
            for f in range(length):
                image, mask = make_scene(seed, offset + index, size=size)
                index += 1
                stem = f"{f + 1:08d}"
                _save_pair(image, root / split / "images" / video / f"{stem}.jpg", _grey(mask),
                           root / split / "labels" / video / f"{stem}.png")
    return root


def write_folder(root: Path, n_train: int = 40, n_test: int = 10, seed: int = 0, num_classes: int = 2,
                 binary_values: int = 255, split_lists: bool = True) -> Path:
    """A user's folder dataset: `images/*.jpg`, `masks/*.png` paired by stem, `train.txt`/`test.txt` when
    `split_lists`. Binary masks store 0/`binary_values` (255 or 1); with `num_classes` > 2 a target pixel's class is
    1 + its horizontal position band, so every index 1..num_classes-1 occurs."""
    root = Path(root)
    stems = [f"sample_{i:03d}" for i in range(n_train + n_test)]
    for i, stem in enumerate(stems):
        image, mask = make_scene(seed, 12000 + i)
        if num_classes > 2:
            band = 1 + (np.arange(mask.shape[1]) * (num_classes - 1) // mask.shape[1])
            values = (mask * band[None, :]).astype(np.uint8)
        else:
            values = mask * binary_values
        _save_pair(image, root / "images" / f"{stem}.jpg",
                   Image.fromarray(values.astype(np.uint8)), root / "masks" / f"{stem}.png")
    if split_lists:
        (root / "train.txt").write_text("\n".join(stems[:n_train]) + "\n")
        (root / "test.txt").write_text("\n".join(stems[n_train:]) + "\n")
    return root


FOLDER_NAMES = {"tn3k": "tn3k", "kvasir": "Kvasir-SEG", "isic2017": "ISIC-2017", "msd": "MSD", "vmd": "VMD",
                "visha": "ViSha", "folder": "folder"}


WRITERS = {"tn3k": write_tn3k, "kvasir": write_kvasir, "isic2017": write_isic2017, "msd": write_msd,
           "vmd": write_vmd, "visha": write_visha, "folder": write_folder}


def write_all(root: Path, n_train: int = 8, n_test: int = 4, seed: int = 0) -> dict[str, Path]:
    """Every layout under `root`, each in its usual unzipped folder name: {dataset key: its folder}. Video datasets
    get `n_train` / `n_test` frames in videos of 3; ISIC 2017 also gets max(2, n_test // 2) validation images; MSD's
    test folder also holds the known-bad `1751_512x640`, which its loader leaves out."""
    root = Path(root)
    return {key: Path(writer(root / FOLDER_NAMES[key], n_train, n_test, seed)) for key, writer in WRITERS.items()}


# ---------------------------------------------------------------------------------------------------------------
# Defects, planted into a written replica so `data check` can be tested against a known list.

def _open_source(key: str, root: Path):
    from benchmark.data.folder import open_folder
    from benchmark.data.isic2017 import open_isic2017
    from benchmark.data.kvasir import open_kvasir
    from benchmark.data.msd import open_msd
    from benchmark.data.tn3k import open_tn3k
    from benchmark.data.visha import open_visha
    from benchmark.data.vmd import open_vmd
    loaders = {"tn3k": open_tn3k, "kvasir": open_kvasir, "isic2017": open_isic2017, "msd": open_msd, "vmd": open_vmd,
               "visha": open_visha, "folder": open_folder}
    return loaders[key](root)


def _rewrite_mask(path: Path, values: np.ndarray, like: Image.Image) -> None:
    img = Image.fromarray(values.astype(np.uint8), mode="P" if like.mode == "P" else "L")
    if like.mode == "P":
        img.putpalette(like.getpalette())
    _save_mask(img, path)


def _empty_split(key: str, root: Path) -> str:
    """Make one split empty in the way a botched download would; returns the split's name."""
    def clear(*folders: Path) -> None:
        for folder in folders:
            for p in sorted(folder.rglob("*"), reverse=True):   # files before the folders holding them
                if p.is_file():
                    p.unlink()
                else:
                    p.rmdir()
    if key == "kvasir":
        (root / "val.txt").write_text("")
    elif key == "folder":
        (root / "test.txt").write_text("")
        if not (root / "train.txt").is_file():
            (root / "train.txt").write_text("\n".join(sorted(p.stem for p in (root / "images").iterdir())) + "\n")
    elif key == "tn3k":
        clear(root / "test-image", root / "test-mask")
    elif key == "isic2017":
        clear(root / "ISIC-2017_Validation_Data", root / "ISIC-2017_Validation_Part1_GroundTruth")
        return "val"
    elif key == "visha":
        clear(root / "test" / "images", root / "test" / "labels")
    else:   # msd, vmd
        clear(root / "test")
        (root / "test").mkdir(exist_ok=True)
        if key == "msd":
            (root / "test" / "image").mkdir()
            (root / "test" / "mask").mkdir()
    return "test"


def plant_defects(root: Path, key: str) -> list[str]:
    """Damage a written replica of dataset `key` at `root` (training samples 0..4 and one split) and return what was
    planted, one "<problem kind>: <path relative to root> (...)" line each, in the kinds `data check` reports:
    missing_mask, extra_mask, unreadable_image (a truncated JPEG), size_mismatch, non_binary_mask, empty_split."""
    root = Path(root)
    source = _open_source(key, root)
    refs = [r for r in source.splits["train"] if r.mask is not None][:5]
    if len(refs) < 5:
        raise ValueError(f"plant_defects needs 5 training samples in {root}, found {len(refs)}")

    def rel(p: Path) -> str:
        return p.relative_to(source.root).as_posix()

    planted = []
    # 0: a mask deleted: the check names the image left without one
    refs[0].mask.unlink()
    planted.append(f"missing_mask: {rel(refs[0].image)} (its mask {rel(refs[0].mask)} deleted)")
    # 1: a mask whose image does not exist
    extra = refs[1].mask.with_name(refs[1].mask.name.replace(Path(refs[1].image).stem, "9999999"))
    extra.write_bytes(refs[1].mask.read_bytes())
    planted.append(f"extra_mask: {rel(extra)} (no image 9999999 beside it)")
    # 2: an image cut to half its bytes, as an interrupted download leaves it
    data = refs[2].image.read_bytes()
    refs[2].image.write_bytes(data[: len(data) // 2])
    planted.append(f"unreadable_image: {rel(refs[2].image)} (truncated to {len(data) // 2} of {len(data)} bytes)")
    # 3: a mask 16 pixels wider than its image
    like = Image.open(refs[3].mask)
    arr = np.asarray(like)
    _rewrite_mask(refs[3].mask, np.pad(arr, ((0, 0), (0, 16))), like)
    planted.append(f"size_mismatch: {rel(refs[3].mask)} (16 px wider than its image)")
    # 4: a mask with values outside its binary encoding (grey 128 for grey masks, extra indices for palette masks)
    like = Image.open(refs[4].mask)
    arr = np.asarray(like).copy()
    h = arr.shape[0]
    if like.mode == "P":
        arr[: h // 3] = 2
        arr[h // 3: h // 2] = 3
    else:
        arr[: h // 3] = 128
    _rewrite_mask(refs[4].mask, arr, like)
    planted.append(f"non_binary_mask: {rel(refs[4].mask)} "
                   f"(a third of it set to {'indices 2 and 3' if like.mode == 'P' else 'grey 128'})")
    split = _empty_split(key, source.root)
    planted.append(f"empty_split: {split} (all its samples removed)")
    return planted
