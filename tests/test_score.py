"""The Scorer's rows and reductions, and scoring folders of PNG/JPG masks."""

import csv
import dataclasses
import math
import re

import numpy as np
import pytest
from PIL import Image

from benchmark.data.msd import KNOWN_BAD
from benchmark.metrics import Scorer, get_profile, read_mask, score_directories


def _two_images():
    """Image 1: a 2x2 object found exactly. Image 2: empty ground truth, one false-positive pixel. Grid 3x4."""
    gt1 = np.zeros((3, 4), bool)
    gt1[:2, :2] = True
    prob2 = np.full((3, 4), 0.1)
    prob2[2, 3] = 0.9
    return [("one", np.where(gt1, 0.9, 0.1), gt1), ("two", prob2, np.zeros((3, 4), bool))]


def test_segdino_rows_and_summary_hand_computed():
    # image 1: TP=4, TN=8 -> dice = iou = 1, hd95 = 0
    # image 2: TP=0, FP=1 -> dice = 1e-6/(1+1e-6), hd95 = inf (one side empty), penalised = diagonal sqrt(9+16) = 5
    # summary: dice = mean of rows; hd95 drops the inf (public code) -> 0; hd95_penalised = (0+5)/2; hd95_inf = 1
    scorer = Scorer(get_profile("segdino"))
    rows = [scorer.add(k, p, g) for k, p, g in _two_images()]
    assert rows[0] == {"key": "one", "tp": 4, "fp": 0, "fn": 0, "tn": 8, "dice": 1.0, "iou": 1.0, "hd95": 0.0,
                       "hd95_monai": 0.0, "hd95_penalised": 0.0, "precision": 1.0, "recall": 1.0}
    assert rows[1]["hd95"] == math.inf and rows[1]["hd95_penalised"] == 5.0
    assert rows[1]["dice"] == pytest.approx(1e-6 / (1 + 1e-6))
    assert scorer.rows() == rows
    s = scorer.summary()
    assert s["profile"] == "segdino" and s["convention"]["hd95"] == "pooled"
    assert s["metrics"]["dice"] == pytest.approx((1 + 1e-6 / (1 + 1e-6)) / 2)
    assert s["metrics"]["hd95"] == 0.0 and s["metrics"]["hd95_monai"] == 0.0
    assert s["metrics"]["hd95_penalised"] == 2.5
    assert s["counts"] == {"n_images": 2, "gt_empty": 1, "pred_empty": 0, "both_empty": 0, "hd95_inf": 1}


@pytest.mark.parametrize("rule, expected", [("drop", 0.0), ("keep", math.inf), ("penalise", 2.5)])
def test_hd95_inf_rules(rule, expected):
    # the same two images: mean of [0, inf] under each rule (penalise: inf -> diagonal 5)
    scorer = Scorer(dataclasses.replace(get_profile("segdino"), hd95_inf=rule))
    for k, p, g in _two_images():
        scorer.add(k, p, g)
    assert scorer.summary()["metrics"]["hd95"] == expected


def test_threshold_edge_in_the_scorer():
    # a ground-truth pixel predicted at exactly 0.5 is a miss (> 0.5 is foreground): TP=0, FN=1
    gt = np.zeros((2, 2), bool)
    gt[0, 0] = True
    row = Scorer("segdino").add("edge", np.where(gt, 0.5, 0.0), gt)
    assert (row["tp"], row["fn"], row["fp"]) == (0, 1, 0)


def test_binary_input_forms_agree():
    # HxW, 1xHxW and a 2xHxW softmax (foreground = channel 1) score identically; 0/1 ints equal bool gt
    _, prob, gt = _two_images()[0]
    a = Scorer("mirror").add("a", prob, gt)
    b = Scorer("mirror").add("a", prob[None], gt.astype(np.uint8))
    c = Scorer("mirror").add("a", np.stack([1 - prob, prob]), gt[None])
    assert a == b == c


def test_input_errors():
    scorer = Scorer("segdino")
    prob, gt = np.full((4, 4), 0.2), np.zeros((4, 4), bool)
    with pytest.raises(ValueError, match="no images"):
        scorer.summary()
    scorer.add("k", prob, gt)
    with pytest.raises(ValueError, match="already scored"):
        scorer.add("k", prob, gt)
    with pytest.raises(ValueError, match="shape"):
        scorer.add("s", np.zeros((4, 5)), gt)
    with pytest.raises(ValueError, match=r"\[0, 1\].*logits"):
        scorer.add("logits", prob * 10 - 5, gt)
    gt_255 = np.zeros((4, 4), np.uint8)
    gt_255[1, 1] = 255
    with pytest.raises(ValueError, match="0/255"):
        scorer.add("255", prob, gt_255)
    with pytest.raises(ValueError, match="binary-only"):
        Scorer("mirror", num_classes=3)


def test_multiclass_hand_computed():
    # gt [[0,1,1],[2,2,2]], argmax prediction [[0,1,2],[2,2,0]]
    # class 1: TP=1, FP=0, FN=1 -> dice 2/3, iou 1/2; class 2: TP=2, FP=1, FN=1 -> dice 4/6, iou 2/4
    # row dice = mean over classes 1..2 = 2/3; tp/fp/fn summed over classes 1..2 = 3/1/2
    # acc: argmax == gt at (0,0), (0,1), (1,0), (1,1) -> 4/6
    gt = np.array([[0, 1, 1], [2, 2, 2]])
    pred = np.array([[0, 1, 2], [2, 2, 0]])
    prob = np.eye(3)[pred].transpose(2, 0, 1) * 0.8 + 0.2 / 3
    profile = dataclasses.replace(get_profile("segdino"), metrics=("dice", "iou", "acc", "hd95"))
    row = Scorer(profile, num_classes=3).add("m", prob, gt)
    assert (row["tp"], row["fp"], row["fn"]) == (3, 1, 2)
    assert row["dice_c1"] == pytest.approx(2 / 3) and row["dice_c2"] == pytest.approx(4 / 6)
    assert row["dice"] == pytest.approx(2 / 3) and row["iou"] == pytest.approx(0.5)
    assert row["acc"] == pytest.approx(4 / 6)
    assert math.isfinite(row["hd95"])



def test_multiclass_hd95_drops_an_infinite_class_not_the_image():
    """One stray pixel of a class the mask lacks makes that class's HD95 infinite. Under "drop" the class leaves the
    image's mean, so the image keeps its class-1 distance (before, the whole image left the HD95 mean, and the
    stray pixel made the table's HD95 better); under "penalise" the class takes the image diagonal."""
    gt = np.zeros((40, 40), int)
    gt[5:15, 5:15] = 1
    pred = np.zeros_like(gt)
    pred[8:18, 8:18] = 1                       # class 1 shifted by 3 pixels: a finite HD95
    stray = pred.copy()
    stray[35, 35] = 2                          # and one pixel of class 2, which the mask does not hold
    for profile in ("segdino", "medical-native"):
        scorer = Scorer(profile, num_classes=3)
        clean = scorer.add("clean", np.eye(3)[pred].transpose(2, 0, 1), gt)
        noisy = scorer.add("noisy", np.eye(3)[stray].transpose(2, 0, 1), gt)
        assert math.isinf(noisy["hd95_c2"]) and noisy["hd95_c1"] == pytest.approx(clean["hd95_c1"])
        assert noisy["hd95"] == pytest.approx(clean["hd95"]) and math.isfinite(noisy["hd95"])
        empty = scorer.add("empty", np.eye(3)[np.zeros_like(gt)].transpose(2, 0, 1), gt)   # every class inf
        assert math.isinf(empty["hd95"])
        summary = scorer.summary()   # the count is of images left out as a whole: the empty one, not the noisy one
        assert summary["metrics"]["hd95"] == pytest.approx(clean["hd95"]) and summary["counts"]["hd95_inf"] == 1
    penalised = dataclasses.replace(get_profile("segdino"), hd95_inf="penalise")
    row = Scorer(penalised, num_classes=3).add("noisy", np.eye(3)[stray].transpose(2, 0, 1), gt)
    assert row["hd95"] == pytest.approx((row["hd95_c1"] + math.hypot(40, 40)) / 2)

def test_multiclass_mean_leaves_out_classes_absent_from_mask_and_prediction():
    # 4 classes; the image holds only class 1 (2 pixels) and the model predicts background everywhere.
    # class 1: TP=0, FN=2 -> dice ~0; classes 2, 3: absent from both -> dice 1 under eps, left out of the mean.
    # row dice = 0 (not (0 + 1 + 1) / 3 = 2/3, which would reward the empty prediction); per-class values kept.
    gt = np.array([[0, 1, 1], [0, 0, 0]])
    prob = np.eye(4)[np.zeros_like(gt)].transpose(2, 0, 1)
    row = Scorer("medical-native", num_classes=4).add("empty", prob, gt)
    assert row["dice"] == pytest.approx(0.0, abs=1e-5) and row["precision"] == pytest.approx(1.0)
    assert row["dice_c2"] == pytest.approx(1.0) and row["dice_c3"] == pytest.approx(1.0)
    # an image where no foreground class appears on either side keeps the rule's value (1 under eps)
    # recall is over the classes the mask holds, precision over the predicted ones: one stray class-2 pixel
    # (mask: class 1 only; half of it found) lowers precision and Dice and leaves recall at 0.5 (not (0.5 + 1) / 2)
    half = np.array([[0, 1, 0], [0, 0, 0]])
    stray = np.array([[0, 1, 0], [0, 0, 2]])
    rows = [Scorer("medical-native", num_classes=4).add("p", np.eye(4)[p].transpose(2, 0, 1), gt)
            for p in (half, stray)]
    assert [r["recall"] for r in rows] == pytest.approx([0.5, 0.5])
    assert [r["precision"] for r in rows] == pytest.approx([1.0, 0.5])
    assert [r["dice"] for r in rows] == pytest.approx([2 / 3, 1 / 3], abs=1e-5)
    scorer = Scorer("medical-native", num_classes=4)
    row = scorer.add("bg", prob, np.zeros_like(gt))
    assert row["dice"] == pytest.approx(1.0) and row["iou"] == pytest.approx(1.0)
    assert scorer.summary()["convention"]["threshold"] == "argmax over 4 classes"   # not the binary 0.5


# ---- folders ----

def _save(path, array, mode="L", **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(array.astype(np.uint8))  # 2-D uint8 -> mode "L"
    if mode == "P":
        img = img.convert("P")
    img.save(path, **kwargs)


def _folders(tmp_path):
    """Three pairs in three file conventions; returns the folders and the arrays they should read back as."""
    rng = np.random.default_rng(0)
    gt = np.zeros((3, 16, 16), bool)
    gt[0, 2:9, 3:12] = True
    gt[1, 8:, 8:] = True
    gt[2, :4, :] = True
    prob_u8 = rng.integers(0, 256, (16, 16))
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    _save(gt_dir / "a.png", gt[0] * 255)  # 0/255 grey: > 127
    _save(pred_dir / "a.png", prob_u8)  # 8-bit probability map: value/255
    _save(gt_dir / "b.png", gt[1], mode="P")  # palette index 0/1: > 0
    _save(pred_dir / "b.jpg", gt[1] * 255, quality=100)  # a binary prediction saved as JPEG
    _save(gt_dir / "vid" / "c.png", gt[2])  # a 0/1 index PNG: > 0
    _save(pred_dir / "vid" / "c.png", gt[2])  # 0/1 beside a probability map: a faint map, p x 255 (a 0/1 mask alone)
    expected = {"a": (prob_u8 / 255, gt[0]), "b": (None, gt[1]), "vid/c": (gt[2] / 255, gt[2])}
    return pred_dir, gt_dir, expected


def test_score_directories_matches_the_scorer(tmp_path):
    pred_dir, gt_dir, expected = _folders(tmp_path)
    out = tmp_path / "out" / "per_image.csv"
    summary, rows = score_directories(pred_dir, gt_dir, "mirror", out_csv=out)
    assert [r["key"] for r in rows] == ["a", "b", "vid/c"]
    by_key = {r["key"]: r for r in rows}
    ref = Scorer("mirror")
    for key in ("a", "vid/c"):
        prob, gt = expected[key]
        assert by_key[key] == ref.add(key, prob.astype(np.float32), gt)
    assert by_key["b"]["tp"] == expected["b"][1].sum() and by_key["b"]["iou"] == pytest.approx(1.0)
    assert summary["counts"]["n_images"] == 3 and summary["profile"] == "mirror"
    with open(out, newline="") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0])[:6] == ["profile", "key", "tp", "fp", "fn", "tn"]
    assert table[0]["profile"] == "mirror" and float(table[0]["iou"]) == by_key["a"]["iou"]


def test_read_mask_rules(tmp_path):
    # JPEG masks are lossy: 0/255 blocks aligned to JPEG's 8x8 grid come back exactly at > 127
    mask = np.zeros((16, 16), bool)
    mask[:8, 8:] = True
    _save(tmp_path / "m.jpg", mask * 255, quality=90)
    assert (read_mask(tmp_path / "m.jpg") == mask).all()
    # a palette mask with index 2 (e.g. a second instance) is still foreground (> 0, never > 127)
    _save(tmp_path / "p.png", mask * 2, mode="P")
    assert (read_mask(tmp_path / "p.png") == mask).all()


def _mask_files(folder, mask):
    """The same binary mask in the file forms masks ship in: {name: (path, expected foreground)}; JPEGs expect the
    mask too, but up to their compression noise (see the test)."""
    folder.mkdir(parents=True, exist_ok=True)
    grey = mask.astype(np.uint8) * 255
    rgb = np.stack([grey] * 3, axis=-1)
    opaque = np.full_like(grey, 255)[..., None]
    colour = np.zeros_like(rgb)
    colour[mask] = (40, 220, 90)            # channels disagree: luma 159 (> 127), though red alone is not
    red = np.zeros_like(rgb)
    red[mask] = (255, 0, 0)                 # pure red: luma 76, so background (as convert('L') reads it)
    palette = Image.fromarray(mask.astype(np.uint8), mode="P")
    palette.putpalette([0, 0, 0, 128, 0, 0] + [0, 0, 0] * 254)   # VMD-style: index 1 drawn dark red (grey 38)
    images = {
        "grey.png": Image.fromarray(grey),
        "zero_one.png": Image.fromarray(mask.astype(np.uint8)),
        "rgb.png": Image.fromarray(rgb),
        "rgba.png": Image.fromarray(np.concatenate([rgb, opaque], axis=-1)),
        # white everywhere, the mask drawn in alpha: transparent pixels are background
        "rgba_transparent.png": Image.fromarray(np.concatenate([np.full_like(rgb, 255), grey[..., None]], axis=-1)),
        "la.png": Image.fromarray(np.concatenate([grey[..., None], opaque], axis=-1), mode="LA"),
        "palette.png": palette,
        "one_bit.png": Image.fromarray(mask),
        "sixteen.png": Image.fromarray(mask.astype(np.uint16) * 65535),
        "sixteen_zero_one.png": Image.fromarray(mask.astype(np.uint16)),
        "colour.png": Image.fromarray(colour),
        "red.png": Image.fromarray(red),
        "grey.jpg": Image.fromarray(grey),   # lossy, as Kvasir-SEG (RGB) and TN3K (grey) ship their masks
        "rgb.jpg": Image.fromarray(rgb),
    }
    expected = {}
    for name, img in images.items():
        img.save(folder / name, **({"quality": 75} if name.endswith(".jpg") else {}))
        expected[name] = np.zeros_like(mask) if name == "red.png" else mask
    return {name: (folder / name, expected[name]) for name in images}


def test_dataset_and_score_readers_agree_on_every_mask_form(tmp_path):
    """`segbench score` reads ground truth with the dataset loaders' reader: one rule, so they cannot drift apart."""
    from benchmark.data.base import read_mask as dataset_read_mask

    yy, xx = np.mgrid[:40, :48]
    mask = (yy - 19) ** 2 + (xx - 25) ** 2 < 13**2   # a disc: edges off JPEG's 8x8 grid, so the JPEGs are noisy
    files = _mask_files(tmp_path / "masks", mask)
    modes = {name: Image.open(path).mode for name, (path, _) in files.items()}
    assert modes["sixteen.png"].startswith("I") and modes["sixteen_zero_one.png"].startswith("I")
    assert (modes["palette.png"], modes["one_bit.png"], modes["la.png"], modes["rgb.jpg"]) == ("P", "1", "LA", "RGB")
    assert len(np.unique(np.asarray(Image.open(files["grey.jpg"][0])))) > 2   # the noise is really there
    for name, (path, expected) in files.items():
        loader, scored = dataset_read_mask(path, "threshold128"), read_mask(path)
        assert loader.dtype == np.uint8 and scored.dtype == bool, name
        np.testing.assert_array_equal(loader, scored.astype(np.uint8), err_msg=name)
        if name.endswith(".jpg"):
            assert (scored != expected).mean() < 0.01, name
        else:
            np.testing.assert_array_equal(scored, expected, err_msg=name)
    # and `segbench score` scores a prediction equal to what the loader read as perfect, in every form
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    gt.mkdir()
    for name, (path, _) in files.items():
        stem = name.replace(".", "_")   # grey.png and grey.jpg must not pair with the same prediction
        (gt / f"{stem}{path.suffix}").write_bytes(path.read_bytes())
        _save(pred / f"{stem}.png", dataset_read_mask(path) * 255)
    _, rows = score_directories(pred, gt, "mirror")
    assert len(rows) == len(files) and all(r["fp"] == 0 and r["fn"] == 0 for r in rows)


def test_unreadable_or_unsupported_masks_name_the_file(tmp_path):
    from benchmark.data.base import read_mask as dataset_read_mask

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="bad.png"):
        read_mask(bad)
    Image.fromarray(np.zeros((4, 4), np.float32)).save(tmp_path / "float.tif")
    for reader in (read_mask, dataset_read_mask):
        with pytest.raises(ValueError, match=r"float\.tif has unsupported image mode F"):
            reader(tmp_path / "float.tif")
    Image.fromarray(np.full((4, 4, 3), (200, 0, 0), np.uint8)).save(tmp_path / "colour.png")
    with pytest.raises(ValueError, match=r"colour\.png is a colour image"):
        dataset_read_mask(tmp_path / "colour.png", "index")


def test_unpaired_files_are_named(tmp_path):
    pred_dir, gt_dir, _ = _folders(tmp_path)
    _save(pred_dir / "extra.png", np.zeros((16, 16)))
    _save(pred_dir / "vid" / "d.png", np.zeros((16, 16)))
    with pytest.raises(ValueError, match=r"without ground truth.*extra\.png, vid/d\.png"):
        score_directories(pred_dir, gt_dir, "mirror")
    (pred_dir / "extra.png").unlink()
    (pred_dir / "vid" / "d.png").unlink()
    (pred_dir / "a.png").unlink()
    with pytest.raises(ValueError, match=r"without prediction.*a\.png"):
        score_directories(pred_dir, gt_dir, "mirror")


def test_missized_prediction_names_both_files(tmp_path):
    pred_dir, gt_dir, _ = _folders(tmp_path)
    _save(pred_dir / "a.png", np.zeros((8, 10)))
    with pytest.raises(ValueError, match=r"a\.png is 10x8 \(WxH\).*a\.png is 16x16.*resize"):
        score_directories(pred_dir, gt_dir, "segdino")


def test_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        score_directories(tmp_path / "nope", tmp_path, "segdino")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no"):
        score_directories(tmp_path / "empty", tmp_path / "empty", "segdino")
    with pytest.raises(ValueError, match="unknown scoring profile"):
        score_directories(tmp_path, tmp_path, "nope")


def test_network_profiles_score_on_the_network_grid(tmp_path):
    """`segdino` scores at 256 x 256 (REFERENCE.md §5): HD95 is in pixels of that grid, not of the file's."""
    import numpy as np
    from PIL import Image

    from benchmark.metrics import score_directories

    pred, gt = tmp_path / "p", tmp_path / "g"
    pred.mkdir()
    gt.mkdir()
    mask = np.zeros((512, 512), np.uint8)
    mask[100:300, 100:300] = 255
    shifted = np.zeros_like(mask)
    shifted[100:300, 140:340] = 255              # 40 px off at 512 -> 20 px on the 256 grid
    Image.fromarray(mask).save(gt / "a.png")
    Image.fromarray(shifted).save(pred / "a.png")
    net, _ = score_directories(pred, gt, "segdino")
    native, _ = score_directories(pred, gt, "medical-native")
    assert net["scored_size"] == "256x256" and native["scored_size"] == "native"
    assert net["metrics"]["hd95"] == pytest.approx(20, abs=1.5)
    assert native["metrics"]["hd95"] == pytest.approx(40, abs=1.5)
    assert net["metrics"]["dice"] == pytest.approx(native["metrics"]["dice"], abs=0.01)
    # the public code saves its predictions at 256 x 256: `segdino` takes them as they are, native profiles do not
    Image.fromarray(shifted[::2, ::2]).save(pred / "a.png")
    small, _ = score_directories(pred, gt, "segdino")
    assert small["metrics"] == pytest.approx(net["metrics"], abs=0.02)
    with pytest.raises(ValueError, match="masks' native size"):
        score_directories(pred, gt, "medical-native")


def test_score_leaves_out_the_samples_the_loaders_leave_out(tmp_path):
    """MSD's known-bad `1751_512x640` (its mask does not fit its image) is out of the loader's test split; `score`
    leaves it out too, whether the prediction folder has it (at the image's size) or not, and says so."""
    from benchmark.data import synthetic
    from benchmark.data.msd import open_msd

    root = synthetic.write_msd(tmp_path / "MSD", n_train=2, n_test=3)
    kept = open_msd(root).splits["test"]
    pred = tmp_path / "pred"
    for ref in kept:
        _save(pred / f"{ref.key}.png", np.asarray(Image.open(ref.mask)))
    summary, rows = score_directories(pred, root / "test" / "mask", "mirror")
    assert [r["key"] for r in rows] == sorted(ref.key for ref in kept)
    assert summary["excluded"] == [{"key": "1751_512x640", "reason": f"MSD: {KNOWN_BAD['1751_512x640']}"}]
    assert summary["metrics"]["iou"] == 1.0
    _save(pred / "1751_512x640.png", np.zeros((256, 320)))    # a prediction at the image's size is ignored as well
    (root / "test" / "mask" / "1751_512x640.png").unlink()     # and named, even when only the prediction has it
    summary, again = score_directories(pred, root / "test" / "mask", "mirror")
    assert again == rows and [e["key"] for e in summary["excluded"]] == ["1751_512x640"]


def _perfect_predictions(refs, pred_dir, name=lambda ref: ref.key, read=None):
    """Each sample's own mask saved as a 0/255 prediction under `name(ref)`."""
    for ref in refs:
        _save(pred_dir / f"{name(ref)}.png", read(ref).astype(np.uint8) * 255)


@pytest.mark.parametrize("dataset", ["vmd", "isic2017", "msd", "kvasir", "visha"])
def test_score_split_reads_the_native_layout(tmp_path, dataset):
    """`score PRED ROOT --dataset NAME`: the loader's official split, keys and mask rule. VMD-D (palette masks
    beside JPEGImages/ in each video), ISIC (masks named `_segmentation`), MSD (known-bad sample), Kvasir (test =
    val.txt, masks for all 1000 images in one folder), ViSha (one folder per video)."""
    from benchmark.data import synthetic
    from benchmark.metrics import score_split
    from benchmark.registry import open_dataset

    root = getattr(synthetic, f"write_{dataset}")(tmp_path / dataset, n_train=4, n_test=3)
    source = open_dataset(dataset, root)
    test = source.splits["test"]
    mask_stem = dataset == "isic2017"   # published ISIC predictions are often named after the mask file,
    # whose suffix varies in case (_Segmentation / _segmentation): matched case-insensitively
    _perfect_predictions(test, tmp_path / "pred",
                         (lambda ref: ref.mask.stem.lower()) if mask_stem else (lambda ref: ref.key),
                         lambda ref: source.read_mask(ref) > 0)
    _perfect_predictions(source.splits["train"][:2], tmp_path / "pred", read=lambda ref: source.read_mask(ref) > 0)
    summary, rows = score_split(tmp_path / "pred", source, "test", "mirror")
    assert [r["key"] for r in rows] == [ref.key for ref in test]
    assert summary["metrics"]["iou"] == 1.0 and summary["counts"]["n_images"] == len(test)
    assert summary["ignored"] == 2 and summary["dataset"] == dataset and summary["split"] == "test"
    assert [e["key"] for e in summary["excluded"]] == (["1751_512x640"] if dataset == "msd" else [])
    if dataset == "vmd":   # the folder scorer would index the JPEGImages frames as masks: unpaired files
        with pytest.raises(ValueError, match=re.escape("unpaired files") + ".*" + re.escape(
                f"holds the vmd dataset in its downloaded layout: score against it with `segbench score PRED {root} "
                "--dataset vmd`")):
            score_directories(tmp_path / "pred", root / "test", "mirror")
    assert any(ref.mask.stem != ref.mask.stem.lower() for ref in test) or not mask_stem
    missing = tmp_path / "pred" / f"{(test[0].mask.stem.lower() if mask_stem else test[0].key)}.png"
    missing.unlink()
    with pytest.raises(ValueError, match=f"1 of the {len(test)} {dataset} test samples have no prediction"):
        score_split(tmp_path / "pred", source, "test", "mirror")


def test_score_split_refuses_two_predictions_for_one_sample_and_unknown_splits(tmp_path):
    from benchmark.data import synthetic
    from benchmark.metrics import score_split
    from benchmark.registry import open_dataset

    source = open_dataset("isic2017", synthetic.write_isic2017(tmp_path / "isic", n_train=2, n_test=2))
    ref = source.splits["test"][0]
    _perfect_predictions(source.splits["test"], tmp_path / "pred", read=lambda r: source.read_mask(r) > 0)
    _save(tmp_path / "pred" / f"{ref.mask.stem}.png", np.zeros(source.read_mask(ref).shape))
    with pytest.raises(ValueError, match=f"two predictions for isic2017 sample {ref.key}"):
        score_split(tmp_path / "pred", source, "test", "medical-native")
    with pytest.raises(ValueError, match="isic2017 has no 'dev' split \\(it has train, val, test\\)"):
        score_split(tmp_path / "pred", source, "dev", "medical-native")


def test_score_split_scores_class_index_maps_of_a_multiclass_folder_dataset(tmp_path):
    """A multi-class `folder` dataset: predictions are class index maps (what `segbench predict` writes); a perfect
    one scores IoU 1, one with a class out of range is an error naming the file."""
    from benchmark.data import synthetic
    from benchmark.metrics import score_split
    from benchmark.registry import open_dataset

    source = open_dataset("folder", synthetic.write_folder(tmp_path / "mine", 4, 3, num_classes=3))
    assert source.num_classes == 3
    for ref in source.splits["test"]:
        _save(tmp_path / "pred" / f"{ref.key}.png", source.read_mask(ref))
    summary, rows = score_split(tmp_path / "pred", source, "test", "medical-native")
    assert summary["metrics"]["iou"] == 1.0 and len(rows) == 3
    bad = source.splits["test"][1]
    _save(tmp_path / "pred" / f"{bad.key}.png", np.full(source.read_mask(bad).shape, 7))
    with pytest.raises(ValueError, match=f"{bad.key}.png holds class 7; the dataset has 3 classes"):
        score_split(tmp_path / "pred", source, "test", "medical-native")


def test_score_of_folders_refuses_class_index_masks_and_maps(tmp_path):
    """Without --dataset, masks and maps are read as binary: class-index masks (0..3) and a multi-class predict's
    maps would all be background (Dice 1.0 for every image); both are refused, pointing at --dataset folder."""
    import json

    from benchmark.data import synthetic
    from benchmark.registry import open_dataset

    source = open_dataset("folder", synthetic.write_folder(tmp_path / "mine", 4, 3, num_classes=4))
    for ref in source.splits["test"]:
        _save(tmp_path / "gt" / f"{ref.key}.png", source.read_mask(ref))
        _save(tmp_path / "pred" / f"{ref.key}.png", (source.read_mask(ref) > 0) * 255)
    with pytest.raises(ValueError, match=r"holds the values \{0, 1, 2(, 3)?\}: class indices, not a binary mask"):
        score_directories(tmp_path / "pred", tmp_path / "gt", "segdino")
    (tmp_path / "pred" / "segbench_predictions.json").write_text(json.dumps(
        {"complete": True, "network_size": 64, "map_values": "class index (0-3)"}))
    with pytest.raises(ValueError, match=r"holds class-index maps .* --dataset folder --split test"):
        score_directories(tmp_path / "pred", tmp_path / "pred", "segdino")
    for ref in source.splits["test"]:   # binary 0/1 masks are still binary
        _save(tmp_path / "gt01" / f"{ref.key}.png", source.read_mask(ref) > 0)
    (tmp_path / "pred" / "segbench_predictions.json").unlink()
    summary, _ = score_directories(tmp_path / "pred", tmp_path / "gt01", "medical-native")
    assert summary["metrics"]["dice"] == 1.0


def test_score_split_names_masks_that_pair_with_no_image(tmp_path):
    """Masks renamed `<stem>_mask.png` in a folder dataset: the error gives the pairing rule, not "restore"."""
    from benchmark.data import synthetic
    from benchmark.metrics import score_split
    from benchmark.registry import open_dataset

    root = synthetic.write_folder(tmp_path / "mine", 4, 3)
    source = open_dataset("folder", root)
    _perfect_predictions(source.splits["test"], tmp_path / "pred", read=lambda r: source.read_mask(r) > 0)
    for mask in (root / "masks").glob("*.png"):
        mask.rename(mask.with_name(f"{mask.stem}_mask.png"))
    with pytest.raises(ValueError, match=r"3 folder test images have no mask: no mask for .*masks has 7 files with "
                                         r"no image of the same stem .*identical stem .*rename them"):
        score_split(tmp_path / "pred", open_dataset("folder", root), "test", "segdino")


def test_a_folder_of_probability_maps_is_read_as_one(tmp_path):
    """An empty frame's map saved as p x 255 holds only 0 and a few 1s (p ~ 1/255): judged alone it would read as a
    0/1 mask, its 1s as confident foreground. The folder decides: one map above 1 makes every map a probability."""
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir(), gt.mkdir()
    g = np.zeros((60, 80), np.uint8)
    g[20:40, 30:50] = 255
    p = np.zeros((60, 80), np.uint8)
    p[20:40, 30:50] = 230
    Image.fromarray(g).save(gt / "a.png"), Image.fromarray(p).save(pred / "a.png")
    faint = np.zeros((60, 80), np.uint8)
    faint[np.random.default_rng(0).random((60, 80)) < 0.3] = 1
    Image.fromarray(np.zeros((60, 80), np.uint8)).save(gt / "b.png"), Image.fromarray(faint).save(pred / "b.png")
    summary, rows = score_directories(pred, gt, "mirror")
    b = next(r for r in rows if r["key"] == "b")
    assert b["fp"] == 0 and b["ber"] == 0.0 and b["mae"] == pytest.approx(faint.mean() / 255)
    assert summary["maps"] == "probability x 255"
    summary, rows = score_directories(pred, gt, "mirror", maps="binary")   # as the user says (segbench score --maps)
    assert next(r for r in rows if r["key"] == "b")["fp"] == int((faint == 1).sum())
    with pytest.raises(ValueError, match="--maps 'prob'"):
        score_directories(pred, gt, "mirror", maps="prob")
    (pred / "a.png").unlink(), (gt / "a.png").unlink()   # alone, the 0/1 map is a 0/1 mask
    summary, rows = score_directories(pred, gt, "mirror")
    assert rows[0]["fp"] == int((faint == 1).sum()) and summary["maps"].startswith("binary masks")


# ---- JPEG maps (walk15 finding 3): the printed reading is the one used, and --maps binary holds for JPEGs ----

def _jpeg_case(tmp_path):
    """Ground truth 0/255 PNGs with an object each, and the same masks as 0/1 JPEG maps (grey and colour)."""
    gt = tmp_path / "gt"
    masks = {}
    for i in range(3):
        m = np.zeros((48, 64), np.uint8)
        m[8 + 4 * i:30, 10:40 + 5 * i] = 1
        masks[f"f{i}"] = m
        _save(gt / f"f{i}.png", m * 255)
    return gt, masks


@pytest.mark.parametrize("quality", [75, 95, 100])
@pytest.mark.parametrize("colour", [False, True])
def test_zero_one_masks_saved_as_jpeg_score_as_masks(tmp_path, quality, colour):
    """0/1 masks saved as JPEG decode to 0..2: the folder is read as binary masks (it was read as p = value/255,
    every frame empty, while the summary said "binary masks"), the same under --maps auto and binary."""
    from benchmark.metrics.score import maps_are_probabilities

    gt, masks = _jpeg_case(tmp_path)
    for key, m in masks.items():
        img = Image.fromarray(m)
        (img.convert("RGB") if colour else img).save(_mkdir(tmp_path / "pred") / f"{key}.jpg", quality=quality)
        # what the file holds, as a lossless 0/1 mask: the JPEG's best reading (>= 1; JPEG loses some of a 0/1 mask)
        decoded = np.asarray(Image.open(tmp_path / "pred" / f"{key}.jpg").convert("L"))
        _save(tmp_path / "png" / f"{key}.png", decoded >= 1)
    paths = sorted((tmp_path / "pred").glob("*.jpg"))
    assert 1 <= max(np.asarray(Image.open(p).convert("L")).max() for p in paths) <= 4   # within the noise margin
    assert not maps_are_probabilities(paths)
    lossless, _ = score_directories(tmp_path / "png", gt, "mirror")
    for maps in ("auto", "binary"):
        summary, rows = score_directories(tmp_path / "pred", gt, "mirror", maps=maps)
        assert summary["counts"]["pred_empty"] == 0, maps
        assert summary["metrics"] == lossless["metrics"] and summary["metrics"]["iou"] > (0.95 if quality > 90 else 0.6)
        assert summary["maps"].startswith("binary masks") and "JPEG maps: foreground where >= 1" in summary["maps"]


def _mkdir(path):
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_jpeg_probability_maps_are_read_and_reported_as_probabilities(tmp_path):
    """JPEG copies of probability maps: `maps_are_probabilities` looks at JPEGs too (it looked at PNGs only, so the
    summary said "binary masks" while the maps were read as p x 255)."""
    from benchmark.metrics.score import maps_are_probabilities, read_prediction

    gt, masks = _jpeg_case(tmp_path)
    for key, m in masks.items():
        Image.fromarray(np.where(m > 0, 220, 20).astype(np.uint8)).save(_mkdir(tmp_path / "pred") / f"{key}.jpg",
                                                                        quality=95)
    paths = sorted((tmp_path / "pred").glob("*.jpg"))
    assert maps_are_probabilities(paths)
    summary, rows = score_directories(tmp_path / "pred", gt, "mirror")
    assert summary["maps"] == "probability x 255"
    decoded = np.asarray(Image.open(paths[0])).astype(np.float32) / 255
    assert np.array_equal(read_prediction(paths[0], True), decoded)
    assert rows[0]["mae"] == pytest.approx(float(np.abs(decoded - masks["f0"]).mean()), abs=1e-6)
    assert summary["metrics"]["iou"] > 0.95


def test_maps_binary_reads_0_255_jpegs_as_clean_masks(tmp_path):
    """`--maps binary` is honoured for JPEGs: a 0/255 JPEG is foreground where >= 128 (the rule for lossy masks),
    without its compression noise (MAE 0 against its own mask), a 0/1 JPEG where >= 1; under auto a 0/255 JPEG is
    read as p x 255 as before (the same masks at 0.5, its noise in MAE)."""
    from benchmark.metrics.score import read_prediction

    gt, masks = _jpeg_case(tmp_path)
    for key, m in masks.items():
        Image.fromarray(m * 255).save(_mkdir(tmp_path / "pred") / f"{key}.jpg", quality=90)
    summary, rows = score_directories(tmp_path / "pred", gt, "mirror", maps="binary")
    path = tmp_path / "pred" / "f0.jpg"
    noisy = np.asarray(Image.open(path))
    assert set(np.unique(noisy)) - {0, 255}   # the JPEG does hold noise
    assert np.array_equal(read_prediction(path, False), (noisy >= 128).astype(np.float32))
    assert summary["metrics"]["iou"] == 1.0 and summary["metrics"]["mae"] == 0.0
    assert summary["maps"].startswith("binary masks (--maps binary") and ">= 128" in summary["maps"]
    auto, _ = score_directories(tmp_path / "pred", gt, "mirror")
    assert auto["maps"] == "probability x 255" and auto["metrics"]["iou"] == 1.0 and auto["metrics"]["mae"] > 0
    Image.fromarray(masks["f0"]).save(path, quality=90)   # one 0/1 JPEG among 0/255 ones: >= 1, per map
    assert np.array_equal(read_prediction(path, False), (np.asarray(Image.open(path)) >= 1).astype(np.float32))
    assert score_directories(tmp_path / "pred", gt, "mirror", maps="binary")[0]["metrics"]["iou"] > 0.95


def test_a_folder_mixing_png_and_jpeg_maps_says_how_each_was_read(tmp_path):
    gt, masks = _jpeg_case(tmp_path)
    pred = _mkdir(tmp_path / "pred")
    Image.fromarray(masks["f0"]).save(pred / "f0.png")
    for key in ("f1", "f2"):
        Image.fromarray(masks[key]).save(pred / f"{key}.jpg", quality=95)
    summary, _ = score_directories(pred, gt, "mirror")
    assert summary["maps"].startswith("binary masks (no PNG map holds a value above 1, no JPEG map above 4")
    assert summary["metrics"]["iou"] > 0.95
    Image.fromarray(masks["f0"] * 200).save(pred / "f0.png")
    summary, _ = score_directories(pred, gt, "mirror")
    assert summary["maps"] == "probability x 255 (PNG and JPEG maps alike)"
