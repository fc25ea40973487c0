"""Scoring under a named profile: a Scorer that keeps one row per image and reduces them, and folder scoring.

Count first, reduce second (DESIGN.md): `Scorer.add` turns an image into raw counts and per-image metrics (a
row of per_image.csv); `Scorer.summary` applies the profile's reductions (per-image means, HD95's inf rule,
curve-based max-F, accumulated or per-image BER) and returns them with the profile's conventions.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np

from benchmark.data import KNOWN_BAD_SAMPLES
from benchmark.data.base import mask_from_image
from benchmark.data.base import read_mask as _read_dataset_mask
from benchmark.metrics import counts as C
from benchmark.metrics import saliency as S
from benchmark.metrics import surface
from benchmark.metrics.profiles import (
    BER_METRICS,
    FBETA_METRICS,
    HD95_METRICS,
    SALIENCY_METRICS,
    ScoringProfile,
    get_profile,
)

_MEAN_OF_ROWS = ("dice", "iou", "acc", "acc_mirror", "precision", "recall", "mae", "mae_minmax", "hd95_penalised")


def _as_probability(prob, key: str) -> np.ndarray:
    """A float array in [0, 1]; bool/0-1 masks are accepted, logits and 0-255 maps are refused."""
    prob = np.asarray(prob)
    if prob.dtype.kind in "bui":
        prob = prob.astype(np.float32)
    elif prob.dtype.kind != "f":
        raise ValueError(f"{key}: prediction dtype {prob.dtype} is not a probability map")
    if prob.size:
        lo, hi = prob.min(), prob.max()
        if not (lo >= 0.0 and hi <= 1.0):
            raise ValueError(
                f"{key}: probabilities must lie in [0, 1], got {lo}..{hi}; apply sigmoid/softmax to logits "
                "and divide 8-bit maps by 255"
            )
    return prob


def _as_binary_mask(gt, key: str) -> np.ndarray:
    """A bool mask from bool or 0/1 values; anything else (e.g. 0/255) is refused rather than guessed."""
    gt = np.asarray(gt)
    if gt.dtype == bool:
        return gt
    if gt.dtype.kind in "iu" and gt.size:
        zero_one = gt.min() >= 0 and gt.max() <= 1  # two reductions instead of a set lookup per pixel
    else:
        zero_one = np.isin(gt, (0, 1)).all()
    if not zero_one:
        raise ValueError(f"{key}: ground truth must be bool or 0/1 (binarise 0/255 masks with > 127 first)")
    return gt.astype(bool)


def _fbeta_curves(prob: np.ndarray, gt: np.ndarray, profile: ScoringProfile):
    """This image's precision, recall and F curves over the profile's thresholds."""
    p, r = S.pr_curve(prob, gt, profile.fbeta_thresholds, profile.fbeta_eps)
    return {"precision": p, "recall": r, "fbeta": S.fbeta_curve(p, r, profile.fbeta_beta2)}


def _counts(prob: np.ndarray, gt: np.ndarray, threshold: float):
    pred = C.binarise(prob, threshold)
    return pred, C.confusion_counts(pred, gt)


def binary_row(prob: np.ndarray, gt: np.ndarray, profile: ScoringProfile,
               memo: dict | None = None) -> tuple[dict, dict]:
    """Raw counts and the profile's per-image metrics of one binary image, and what the summary needs besides
    (`curves`: its Fβ curves or None; `hd95_inf`: whether its HD95 is inf).

    Per-image max_fbeta/mean_fbeta come from the image's own F curve; the summary uses the set's curve.
    `memo`: a dict shared by several profiles scoring the same (prob, gt) pair, so the work they have in common
    (counts, Fβ curves, HD95, MAE, keyed by the conventions they depend on) is done once.
    """
    memo = {} if memo is None else memo

    def shared(key, compute):
        if key not in memo:
            memo[key] = compute()
        return memo[key]

    m = set(profile.metrics)
    pred, (tp, fp, fn, tn) = shared(("counts", profile.threshold), lambda: _counts(prob, gt, profile.threshold))
    row: dict = {"tp": tp, "fp": fp, "fn": fn, "tn": tn}
    rule, eps = profile.empty_rule, profile.eps
    ratios = {
        "dice": lambda: C.dice(tp, fp, fn, rule, eps),
        "iou": lambda: C.iou(tp, fp, fn, rule, eps),
        "precision": lambda: C.precision(tp, fp, rule, eps),
        "recall": lambda: C.recall(tp, fn, rule, eps),
        "acc": lambda: C.accuracy(tp, fp, fn, tn),
        "mae": lambda: shared(("mae",), lambda: S.mae(prob, gt)),
        "mae_minmax": lambda: S.mae(S.minmax(prob), gt),
        "acc_mirror": lambda: tp / (tp + fn) if tp + fn else math.nan,
    }
    extra: dict = {}
    aux: dict = {"curves": None, "hd95_inf": False}
    if m & HD95_METRICS:
        both = shared(("hd95", profile.threshold, profile.hd95_boundary), lambda: surface.hd95_all(pred, gt))
        extra["hd95"] = both[profile.hd95]
        extra["hd95_monai"] = both["monai"]
        extra["hd95_penalised"] = surface.penalise_inf(both[profile.hd95], gt.shape)
        aux["hd95_inf"] = math.isinf(both[profile.hd95])
    if m & BER_METRICS:
        extra.update(S.ber(tp, fp, fn, tn, profile.ber_absent_class))
    if m & FBETA_METRICS:
        curve_key = ("curves", profile.fbeta_thresholds, profile.fbeta_eps, profile.fbeta_beta2)
        aux["curves"] = curves = shared(curve_key, lambda: _fbeta_curves(prob, gt, profile))
        extra["max_fbeta"] = float(curves["fbeta"].max())
        extra["mean_fbeta"] = float(curves["fbeta"].mean())
    for name in profile.metrics:
        row[name] = ratios[name]() if name in ratios else extra[name]
    return row, aux


def multiclass_row(prob: np.ndarray, gt: np.ndarray, profile: ScoringProfile, num_classes: int):
    """Counts and metrics of an index-map image: argmax prediction, each foreground class scored as a binary
    mask under the profile's rules, `<metric>_c<k>` per class and `<metric>` their mean over the foreground classes
    where the metric is defined: recall over the classes the mask holds, precision over those the prediction holds,
    the others (Dice, IoU, HD95) over those either holds. Under the `eps` rule an undefined class would score 1 and
    reward predicting nothing (Dice, precision) or predicting stray classes (recall); a metric defined for no class
    of the image keeps the rule's value. tp/fp/fn/tn are summed over the foreground classes; acc is the plain pixel
    accuracy (argmax == gt). HD95 follows the profile's inf rule per class: under "drop" a class with an infinite
    HD95 (predicted where the mask has none, or missed) leaves the image's mean, not the whole image, so one stray
    pixel cannot drop an image's finite distances; the image is inf (and dropped) only when no class is finite.
    Returns (row, aux) like binary_row; `hd95_inf` is true when the image's HD95 is infinite as a whole (every class
    infinite; under "keep" any), so the count says how many images the rule left out or penalised.
    """
    pred = prob.argmax(axis=0)
    per_class = C.class_counts(pred, gt, num_classes)
    fg = per_class[1:]
    tp, fp, fn, tn = (int(v) for v in fg.sum(axis=0))
    row: dict = {"tp": tp, "fp": fp, "fn": fn, "tn": tn}
    aux: dict = {"curves": None, "hd95_inf": False}
    rule, eps = profile.empty_rule, profile.eps
    values = {
        "dice": C.dice(fg[:, 0], fg[:, 1], fg[:, 2], rule, eps),
        "iou": C.iou(fg[:, 0], fg[:, 1], fg[:, 2], rule, eps),
        "precision": C.precision(fg[:, 0], fg[:, 1], rule, eps),
        "recall": C.recall(fg[:, 0], fg[:, 2], rule, eps),
    }
    if set(profile.metrics) & HD95_METRICS:
        both = [surface.hd95_all(pred == k, gt == k) for k in range(1, num_classes)]
        values["hd95"] = np.array([b[profile.hd95] for b in both])
        values["hd95_monai"] = np.array([b["monai"] for b in both])
        values["hd95_penalised"] = np.array([surface.penalise_inf(v, gt.shape) for v in values["hd95"]])
    tp_, fp_, fn_ = fg[:, 0], fg[:, 1], fg[:, 2]
    defined = {"recall": tp_ + fn_ > 0, "precision": tp_ + fp_ > 0}   # in the mask; in the prediction
    either = tp_ + fp_ + fn_ > 0
    if "hd95" in values:   # an image the inf rule acts on as a whole, as the binary count: under "keep" one
        inf = np.isinf(values["hd95"][either])   # infinite class makes it infinite; else only all of them do
        aux["hd95_inf"] = bool(inf.any() if profile.hd95_inf == "keep" else inf.size and inf.all())
    for name in profile.metrics:
        if name == "acc":
            row["acc"] = float(per_class[:, 0].sum() / max(gt.size, 1))
            continue
        keep = defined.get(name, either)
        if name in ("hd95", "hd95_monai") and keep.any():   # the profile's inf rule, per class (see the docstring)
            v = np.asarray(values[name])[keep]
            if profile.hd95_inf == "drop" and np.isfinite(v).any():
                v = v[np.isfinite(v)]
            elif profile.hd95_inf == "penalise":
                v = np.where(np.isinf(v), surface.image_diagonal(gt.shape), v)
            row[name] = float(np.mean(v))
        else:
            row[name] = float(np.mean(np.asarray(values[name])[keep if keep.any() else slice(None)]))
        for k, v in enumerate(values[name], start=1):
            row[f"{name}_c{k}"] = float(v)
    return row, aux


def _mean(values) -> float:
    """Mean of a list (NaN entries skipped); NaN when nothing is left."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if arr.size else math.nan


class Scorer:
    """Accumulates per-image rows under one scoring profile and reduces them the profile's way.

    Binary (num_classes=2): `prob` is an HxW foreground probability map (1xHxW or a 2xHxW softmax also work)
    and `gt` an HxW bool or 0/1 mask. Multi-class: `prob` is CxHxW softmax probabilities, `gt` an HxW index map
    (saliency metrics are binary-only). Arrays are scored as given: resizing to the profile's resolution is the
    caller's job.
    """

    def __init__(self, profile: ScoringProfile | str, num_classes: int = 2):
        self.profile = get_profile(profile)
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2 (2 = binary), got {num_classes}")
        binary_only = sorted(SALIENCY_METRICS & set(self.profile.metrics))
        if num_classes > 2 and binary_only:
            raise ValueError(f"profile '{self.profile.name}' has binary-only metrics {binary_only}; score a "
                             f"{num_classes}-class model with 'segdino' or 'medical-native'")
        self.num_classes = num_classes
        self._rows: list[dict] = []
        self._keys: set[str] = set()
        self._diagonals: list[float] = []
        self._curve_sums: dict[str, np.ndarray] = {}
        self._hd95_inf = 0

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, key: str, prob: np.ndarray, gt: np.ndarray, memo: dict | None = None) -> dict:
        """Score one image; returns its row (key, tp, fp, fn, tn, per-image metrics), raw and unrounded.
        `memo`: one dict per (prob, gt) pair passed to every Scorer scoring that pair (binary only), so their
        common work is done once (see binary_row)."""
        key = str(key)
        self._check_new(key)
        return self.record(*self.compute(key, prob, gt, memo))

    def compute(self, key: str, prob: np.ndarray, gt: np.ndarray, memo: dict | None = None):
        """`add`'s work without recording it: (row, aux, gt shape), for `record` here or in another process (a
        scoring worker computes, the main process records in order, so the sums are the same)."""
        key = str(key)
        if self.num_classes == 2:
            prob, gt = self._binary_inputs(key, prob, gt)
            metrics, aux = binary_row(prob, gt, self.profile, memo)
        else:
            prob, gt = self._multiclass_inputs(key, prob, gt)
            metrics, aux = multiclass_row(prob, gt, self.profile, self.num_classes)
        return {"key": key, **metrics}, aux, tuple(gt.shape)

    def record(self, row: dict, aux: dict, shape: tuple[int, ...]) -> dict:
        """Keep one image's computed row; returns a copy."""
        self._check_new(row["key"])
        for name, curve in (aux["curves"] or {}).items():
            self._curve_sums[name] = self._curve_sums.get(name, 0.0) + curve
        self._keys.add(row["key"])
        self._rows.append(row)
        self._diagonals.append(surface.image_diagonal(shape))
        self._hd95_inf += bool(aux["hd95_inf"])
        return dict(row)

    def _check_new(self, key: str) -> None:
        if key in self._keys:
            raise ValueError(f"image key {key!r} was already scored; keys must be unique")

    @staticmethod
    def _binary_inputs(key: str, prob, gt):
        prob, gt = np.asarray(prob), np.asarray(gt)
        if prob.ndim == 3 and prob.shape[0] in (1, 2):
            prob = prob[-1]  # a single channel, or the foreground channel of a 2-class softmax
        if gt.ndim == 3 and gt.shape[0] == 1:
            gt = gt[0]
        if prob.ndim != 2 or prob.shape != gt.shape:
            raise ValueError(f"{key}: prediction shape {prob.shape} and ground truth shape {gt.shape} must be "
                             "the same HxW (resize the prediction to the ground truth's grid first)")
        return _as_probability(prob, key), _as_binary_mask(gt, key)

    def _multiclass_inputs(self, key: str, prob, gt):
        prob, gt = _as_probability(prob, key), np.asarray(gt)
        if prob.ndim != 3 or prob.shape[0] != self.num_classes or prob.shape[1:] != gt.shape:
            raise ValueError(f"{key}: expected prob {self.num_classes}xHxW and gt HxW, got {prob.shape} and "
                             f"{gt.shape}")
        if gt.dtype.kind not in "biu":
            raise ValueError(f"{key}: multi-class ground truth must be an integer index map, got {gt.dtype}")
        return prob, gt

    def rows(self) -> list[dict]:
        """One dict per image in the order added: key, tp, fp, fn, tn, per-image metrics (raw, unrounded)."""
        return [dict(r) for r in self._rows]

    def summary(self) -> dict:
        """{"profile", "convention", "metrics": {name: float}, "counts": {"n_images", "hd95_inf", ...}}."""
        if not self._rows:
            raise ValueError("no images were scored; add at least one image before summarising")
        metrics = {name: self._reduce(name) for name in self.profile.metrics}
        convention = self.profile.as_dict()
        if self.num_classes > 2:   # what the profile's binary fields mean for an index map (multiclass_row)
            convention.update(threshold=f"argmax over {self.num_classes} classes",
                              description=convention["description"].replace(">0.5", "argmax"),
                              class_mean="per image, over the foreground classes where each metric is defined: "
                                         "recall in the mask, precision in the prediction, the others in either")
        return {
            "profile": self.profile.name,
            "convention": convention,
            "metrics": metrics,
            "counts": self._counts(),
        }

    def _column(self, name: str) -> np.ndarray:
        return np.array([r[name] for r in self._rows], dtype=np.float64)

    def _reduce(self, name: str) -> float:
        """The profile's reduction of one metric over the scored images."""
        p = self.profile
        if name in _MEAN_OF_ROWS:
            return _mean(self._column(name))
        if name in ("hd95", "hd95_monai"):
            values = self._column(name)
            if p.hd95_inf == "drop":  # the public code's mean: inf images left out (REFERENCE.md §5)
                values = values[np.isfinite(values)]
            elif p.hd95_inf == "penalise":
                values = np.where(np.isinf(values), self._diagonals, values)
            return float(values.mean()) if values.size else math.nan
        if name in FBETA_METRICS:
            return self._curve_metric(name)
        if name in BER_METRICS:
            if p.ber_reduction == "per-image":
                return _mean(self._column(name))
            tp, fp, fn, tn = (int(self._column(c).sum()) for c in ("tp", "fp", "fn", "tn"))
            return S.ber(tp, fp, fn, tn, p.ber_absent_class)[name]
        raise ValueError(f"no reduction for metric {name!r}")

    def _curve_metric(self, name: str) -> float:
        """max/mean over thresholds of the set's F curve ("mean-pr": F of mean P and R; "mean-f": mean F)."""
        n = len(self._rows)
        if self.profile.fbeta_curve == "mean-pr":
            curve = S.fbeta_curve(self._curve_sums["precision"] / n, self._curve_sums["recall"] / n,
                                  self.profile.fbeta_beta2)
        else:
            curve = self._curve_sums["fbeta"] / n
        return float(curve.max() if name == "max_fbeta" else curve.mean())

    def _counts(self) -> dict:
        """Image counts that explain the numbers: empty masks, and HD95's inf cases."""
        tp, fp, fn = (self._column(c) for c in ("tp", "fp", "fn"))
        gt_empty, pred_empty = (tp + fn) == 0, (tp + fp) == 0
        out = {
            "n_images": len(self._rows),
            "gt_empty": int(gt_empty.sum()),
            "pred_empty": int(pred_empty.sum()),
            "both_empty": int((gt_empty & pred_empty).sum()),
        }
        if HD95_METRICS & set(self.profile.metrics):
            out["hd95_inf"] = self._hd95_inf
        return out


# ---- scoring folders of mask files (`segbench score PRED_DIR GT_DIR`) ----

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _index_folder(folder, role: str) -> dict:
    """Image files under `folder` (recursively) by key = relative path without suffix, e.g. "video1/00012"."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"{role} folder {root} does not exist or is not a folder")
    found: dict = {}
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file() or path.name.startswith("."):
            continue
        key = path.relative_to(root).with_suffix("").as_posix()
        if key in found:
            raise ValueError(f"{role} folder {root} has two files for '{key}': {found[key].name} and {path.name}")
        found[key] = path
    if not found:
        raise ValueError(f"{role} folder {root} holds no {'/'.join(IMAGE_SUFFIXES)} files")
    return found


def _some_files(files: dict, keys: list[str], limit: int = 5) -> str:
    """The first few of `keys` as relative file names, for an error message."""
    names = [f"{k}{files[k].suffix}" for k in keys[:limit]]
    return ", ".join(names) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def pair_files(pred_dir, gt_dir, exclude=(), dropped: set | None = None) -> list[tuple[str, Path, Path]]:
    """(key, prediction path, ground-truth path) for every key, paired by relative path and stem; keys whose file
    stem is in `exclude` are left out on both sides (and added to `dropped`).

    Any file without a partner is an error naming the files, so a partial prediction folder can never be
    scored as if it were complete.
    """
    preds, gts = _index_folder(pred_dir, "prediction"), _index_folder(gt_dir, "ground-truth")
    image_keys = [k for k in gts if f"/{k}".lower().split("/")[-2:-1] in (["jpegimages"], ["images"], ["image"])]
    for files in (preds, gts):
        for key in [k for k in files if k.rsplit("/", 1)[-1] in exclude]:
            del files[key]
            if dropped is not None:
                dropped.add(key)
    missing_gt = sorted(set(preds) - set(gts))
    missing_pred = sorted(set(gts) - set(preds))
    if missing_gt or missing_pred:
        parts = []
        if missing_gt:
            parts.append(f"{len(missing_gt)} prediction(s) without ground truth in {gt_dir}: "
                         + _some_files(preds, missing_gt))
        if missing_pred:
            parts.append(f"{len(missing_pred)} ground-truth mask(s) without prediction in {pred_dir}: "
                         + _some_files(gts, missing_pred))
        raise ValueError("unpaired files: " + "; ".join(parts) + ". Name each prediction like its mask "
                         "(same relative path and stem; .png/.jpg may differ)" + _layout_hint(Path(gt_dir), image_keys))
    return [(k, preds[k], gts[k]) for k in sorted(preds)]


def _layout_hint(gt_dir: Path, image_keys: list[str]) -> str:
    """When the ground-truth folder is (part of) a dataset in its downloaded layout, say how to score against it."""
    from benchmark.data.check import detect_datasets

    for folder in (gt_dir, gt_dir.parent):
        try:
            found = detect_datasets(folder)
        except OSError:
            continue
        if found:
            key, root = found[0]
            if key == "folder":
                return (f". {root} is a folder dataset (images/ + masks/): score against its test split with "
                        f"`segbench score PRED {root} --dataset folder` (its split, keys and class count)")
            return (f". {root} holds the {key} dataset in its downloaded layout: score against it with "
                    f"`segbench score PRED {root} --dataset {key}` (its official split, keys and mask rule)")
    if image_keys:
        return f". {gt_dir} also holds images ({image_keys[0]}): point at a folder of masks only"
    return "."


def _open_image(path):
    """A PIL image with its pixels loaded; a corrupt or unreadable file becomes a ValueError naming it."""
    from PIL import Image

    try:
        img = Image.open(path)
        img.load()
    except (OSError, ValueError, SyntaxError) as err:  # what PIL raises for unreadable, corrupt, truncated files
        raise ValueError(f"cannot read image {path}: {err}") from None
    return img


def _is_index_png(path, values: np.ndarray) -> bool:
    """An 8-bit PNG whose values are all 0/1 is an index mask (lossless; a 0/255 mask always reaches 255)."""
    return str(path).lower().endswith(".png") and values.size > 0 and int(values.max()) <= 1


def read_mask(path) -> np.ndarray:
    """A ground-truth mask as bool HxW, by the dataset loaders' binary rule (benchmark.data.base.read_mask,
    `threshold128`), so that `segbench score` and segbench's own evaluation read a mask alike: palette PNGs by index
    > 0 (REFERENCE.md §4, VMD: never > 127); "1"-mode as stored; 0/1 lossless masks where 1; everything else
    (grey 0/255, lossy JPEGs, colour -> luma, 16-bit on its own scale) where >= 128 (REFERENCE.md §4)."""
    path = Path(path)
    img = _open_image(path)
    if img.mode in ("L", "I") or img.mode.startswith("I;16"):
        values = np.asarray(img)
        top = int(values.max()) if values.size else 0
        if 1 < top < 128 and (img.format or "").upper() == "PNG":   # 0/255 masks reach 255, 0/1 masks stop at 1
            raise ValueError(f"mask {path} holds the values {_values(values)}: class indices, not a binary mask "
                             "(0/255 or 0/1), and read as binary they would all be background. Score a multi-class "
                             f"model's maps against its dataset: {MULTICLASS_HINT}")
    return mask_from_image(img, path).astype(bool)


MULTICLASS_HINT = ("`segbench score PRED_DIR DATA_ROOT --dataset folder --split test`, which reads masks and maps as "
                   "class indices")


def _values(arr: np.ndarray, limit: int = 6) -> str:
    found = np.unique(arr)
    return "{" + ", ".join(map(str, found[:limit])) + (", ..." if len(found) > limit else "") + "}"


PREDICTIONS_META = "segbench_predictions.json"   # what `segbench predict` leaves beside its maps


def probability_folder(pred_dir) -> bool:
    """Whether `segbench predict` wrote `pred_dir`: its binary maps are then all probability x 255, and a map whose
    largest value is 1 (a confident background, p < 0.006) must not be read as a 0/1 mask. A folder that predict
    did not finish (stopped by an unreadable image, Ctrl-C or a killed job) is refused: it lacks maps that scoring
    would report one at a time as missing, or, for `score_split`, its other maps could be stale."""
    meta_path = Path(pred_dir) / PREDICTIONS_META
    if not meta_path.is_file():
        return False
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return True   # damaged; its maps are still predict's
    if isinstance(meta, dict) and meta.get("complete") is False:   # written before the maps; older files lack it
        done, total = meta.get("maps_written", "some"), meta.get("maps", "?")
        stopped = f" at {meta['stopped_at']}" if meta.get("stopped_at") else ""
        reason = f" ({meta['reason']})" if meta.get("reason") else ""
        raise ValueError(f"{pred_dir} holds {done} of the {total} maps of a `segbench predict` that stopped"
                         f"{stopped}{reason}, as {meta_path.name} records; run segbench predict again")
    return True


def predictions_meta(pred_dir) -> dict:
    """What `segbench predict` recorded beside its maps ({} for other folders, or an unreadable record)."""
    try:
        meta = json.loads((Path(pred_dir) / PREDICTIONS_META).read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


MAP_CHOICES = ("auto", "probability", "binary")   # `segbench score --maps`

# A 0/1 mask saved as JPEG decodes to 0..2 (qualities 40-100, any content, grey or colour; at lower quality to all
# 0): a JPEG map shows probability x 255 (or a 0/255 mask) only above this, a PNG map above 1
JPEG_MAP_NOISE = 4


def _is_jpeg(path) -> bool:
    return str(path).lower().endswith((".jpg", ".jpeg"))


def _lossy(img) -> bool:
    """Whether a decoded image's pixels carry compression noise (JPEG, whatever its file name)."""
    return (img.format or "").upper() in ("JPEG", "MPO")


def _maps_reading(maps: str, recorded: bool, paths) -> bool:
    """Whether to read the grey maps as probability x 255: as `--maps` says, else as `segbench predict` recorded,
    else as the folder's maps show (`maps_are_probabilities`). "binary" reads a map holding only 0 and 1 as a
    0/1 mask (0/255 maps are the same either way), and a JPEG map as a binary mask with its noise (read_prediction)."""
    if maps not in MAP_CHOICES:
        raise ValueError(f"--maps {maps!r}: use one of {', '.join(MAP_CHOICES)}")
    if maps != "auto":
        return maps == "probability"
    return recorded or maps_are_probabilities(paths)


def maps_text(probability: bool, maps: str, paths) -> str:
    """How a folder's maps were read, as the summary's `maps` says it: the reading read_prediction applied, why, and
    the rule for each file type the folder holds (PNG, JPEG)."""
    kinds = {"JPEG" if _is_jpeg(p) else "PNG" for p in paths}
    both = len(kinds) > 1
    if probability:
        return "probability x 255" + (" (--maps probability)" if maps == "probability" else "") + (
            " (PNG and JPEG maps alike)" if both else "")
    if maps == "binary":
        why = "--maps binary"
    elif kinds == {"JPEG"}:
        why = f"no JPEG map holds a value above {JPEG_MAP_NOISE}"
    elif both:
        why = f"no PNG map holds a value above 1, no JPEG map above {JPEG_MAP_NOISE}"
    else:
        why = "no grey map holds a value above 1"
    jpeg = ""
    if "JPEG" in kinds:
        jpeg = ("; JPEG maps: foreground where >= 1 (0/1 masks and their compression noise)" if maps != "binary" else
                f"; JPEG maps: foreground where >= 1 in 0/1 masks (no value above {JPEG_MAP_NOISE}), where >= 128 "
                "in 0/255 ones")
    return f"binary masks ({why}{jpeg})"


def maps_are_probabilities(paths) -> bool:
    """Whether a folder's grey maps are probability x 255, decided once for the folder: when any PNG map holds a
    value above 1, or any JPEG map one above JPEG_MAP_NOISE (a 0/1 mask saved as JPEG holds 0..2). A map judged
    alone would read as a 0/1 mask where it holds only 0 and 1, which is how a confident background (p < 0.006,
    saved as p x 255) looks, so an empty frame's faint 1s would score as foreground. A folder whose maps all hold
    only 0/1 (JPEGs: with their noise) is a folder of 0/1 masks."""
    for path in paths:
        img = _open_image(path)
        if img.mode in ("L", "RGB", "RGBA", "LA"):
            grey = img if img.mode == "L" else img.convert("L")
            if grey.getextrema()[1] > (JPEG_MAP_NOISE if _lossy(img) else 1):
                return True
    return False


def read_prediction(path, probability: bool = False) -> np.ndarray:
    """A prediction as float32 HxW in [0, 1]: an 8-bit probability map is value/255; binary masks saved as
    "1"-mode, palette or 0/1 PNGs are read as 0/1 (same rule as read_mask), unless `probability` says every map
    is probability x 255 (probability_folder, `--maps`); colour maps are converted to grey. A JPEG map read as a
    binary mask (`probability` false) is 0/1 with its compression noise: foreground where >= 1 when it holds no
    value above JPEG_MAP_NOISE (a 0/1 mask), else where >= 128 (a 0/255 mask, read_mask's rule for lossy masks).
    """
    img = _open_image(path)
    if img.mode in ("1", "P"):
        return mask_from_image(img, Path(path)).astype(np.float32)
    if img.mode not in ("L", "RGB", "RGBA", "LA"):
        raise ValueError(f"prediction {path} has unsupported image mode {img.mode}; save 8-bit grey (p x 255)")
    arr = np.asarray(img.convert("L") if img.mode != "L" else img)
    if not probability and _lossy(img):
        top = int(arr.max()) if arr.size else 0
        return (arr >= (1 if top <= JPEG_MAP_NOISE else 128)).astype(np.float32)
    if not probability and _is_index_png(path, arr):
        return arr.astype(np.float32)
    return arr.astype(np.float32) / np.float32(255.0)


def write_rows_csv(rows: list[dict], path, profile_name: str) -> None:
    """per_image.csv layout (docs/run_records.md): profile, key, raw counts, per-image metrics; written to a
    temporary file and renamed, so a reader never sees half a table."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = ["profile"] + (list(rows[0]) if rows else ["key"])
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            for row in rows:
                writer.writerow({"profile": profile_name, **{k: repr(v) if isinstance(v, float) else v
                                                             for k, v in row.items()}})
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def to_network_grid(prob: np.ndarray, gt: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Both maps on the square network grid, as segbench's own evaluation sees them: the probability bilinearly,
    the mask nearest (REFERENCE.md §2, §5)."""
    from PIL import Image

    p = np.asarray(Image.fromarray(prob.astype(np.float32), mode="F").resize((size, size), Image.BILINEAR))
    g = np.asarray(Image.fromarray(gt.astype(np.uint8)).resize((size, size), Image.NEAREST))
    return np.clip(p, 0.0, 1.0), g


def score_directories(pred_dir, gt_dir, profile_name: str | ScoringProfile, out_csv=None,
                      network_size: int = 256, maps: str = "auto", workers: int = 0) -> tuple[dict, list[dict]]:
    """Score a folder of predicted maps against a folder of masks under a named profile.

    Files pair by relative path and stem (read_prediction/read_mask give the reading rules); a prediction must
    have its mask's size. Samples the dataset loaders leave out by a recorded rule (KNOWN_BAD_SAMPLES, e.g. MSD's
    `1751_512x640`) are left out here too, on both sides, and listed in the summary's `excluded`.
    Native-resolution profiles score at that size; network-resolution ones (`segdino`) first put both on the
    `network_size` square grid, as the public code scores at 256 x 256.
    `maps` (MAP_CHOICES) says how grey maps are read: "auto" decides for the folder (`maps_are_probabilities`).
    Returns (summary, rows) as Scorer does, and writes the rows as per_image.csv to `out_csv` if given.
    `workers`: processes reading and scoring the pairs (0: one per core but one, at most 8; 1: this process).
    """
    scorer = Scorer(get_profile(profile_name))
    probability = probability_folder(pred_dir)
    values = predictions_meta(pred_dir).get("map_values", "")
    if values.startswith("class index"):   # a multi-class run's maps, read here as binary, would all be background
        raise ValueError(f"{pred_dir} holds class-index maps ({values}, as {PREDICTIONS_META} records): a "
                         f"multi-class model's; score them against its dataset: {MULTICLASS_HINT}")
    dropped: set = set()
    pairs = pair_files(pred_dir, gt_dir, exclude=KNOWN_BAD_SAMPLES, dropped=dropped)
    excluded = [{"key": key, "reason": KNOWN_BAD_SAMPLES[key.rsplit("/", 1)[-1]]} for key in sorted(dropped)]
    probability = _maps_reading(maps, probability, (p for _, p, _ in pairs))
    _score_pairs(scorer, PairScores(scorer, probability, network_size), pairs, workers)
    return _finish(scorer, out_csv, network_size, excluded=excluded,
                   maps=maps_text(probability, maps, [p for _, p, _ in pairs]))


def _pair_row(scorer: Scorer, key: str, prob: np.ndarray, gt: np.ndarray, pred_path, gt_path,
              network_size: int) -> tuple:
    """One prediction and its mask scored on the profile's grid (`Scorer.compute`'s result): a prediction must have
    its mask's size, or (network-resolution profiles) the network size. Binary: `prob` in [0, 1], `gt` bool;
    multi-class: both are HxW class index maps (what `segbench predict` writes for a multi-class model)."""
    network = scorer.profile.resolution == "network"
    on_grid = network and prob.shape == (network_size, network_size)   # saved at the network size already
    if prob.shape != gt.shape and not on_grid:
        raise ValueError(
            f"prediction {pred_path} is {prob.shape[1]}x{prob.shape[0]} (WxH) but its ground truth {gt_path} "
            f"is {gt.shape[1]}x{gt.shape[0]}; resize the prediction to the ground truth's size"
            + (f" (or save it at the {network_size}x{network_size} network size: profile "
               f"'{scorer.profile.name}' scores there)" if network else
               f" (profile '{scorer.profile.name}' scores at the masks' native size)"))
    if scorer.num_classes > 2:
        if network:
            prob, gt = (_nearest(a, network_size) for a in (prob, gt))
        if int(prob.max()) >= scorer.num_classes:
            raise ValueError(f"prediction {pred_path} holds class {int(prob.max())}; the dataset has "
                             f"{scorer.num_classes} classes (0-{scorer.num_classes - 1})")
        return scorer.compute(key, np.eye(scorer.num_classes, dtype=np.float32)[prob].transpose(2, 0, 1), gt)
    if network:
        prob, gt = to_network_grid(prob, gt, network_size)
    return scorer.compute(key, prob, gt)


class PairScores:
    """A prediction file and its mask, read and scored (`_pair_row`): the job of the folder scorers' worker
    processes. Items are (key, prediction path, mask path), or (key, prediction path, SampleRef) with `source`."""

    def __init__(self, scorer: Scorer, probability: bool, network_size: int, source=None):
        self.scorer, self.probability, self.network_size, self.source = scorer, probability, network_size, source

    def __call__(self, item) -> tuple:
        key, pred_path, gt = item
        multiclass = self.scorer.num_classes > 2
        if self.source is None:
            mask, gt_path = read_mask(gt), gt
        else:
            mask, gt_path = self.source.read_mask(gt, skip_hint=False), gt.mask   # score has no --skip-bad
            mask = mask if multiclass else mask.astype(bool)
        prob = (_read_dataset_mask(pred_path, "index", skip_hint=False) if multiclass
                else read_prediction(pred_path, self.probability))
        return _pair_row(self.scorer, key, prob, mask, pred_path, gt_path, self.network_size)


def _score_pairs(scorer: Scorer, job: PairScores, items: list, workers: int) -> None:
    """Every item scored by `job`, in `workers` processes (workers.processes_for), recorded in order."""
    from benchmark.workers import ordered_map, processes_for

    for computed in ordered_map(job, items, processes_for(len(items), workers)):
        scorer.record(*computed)


def _nearest(index_map: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(index_map.astype(np.uint8)).resize((size, size), Image.NEAREST))


def _finish(scorer: Scorer, out_csv, network_size: int, **extra) -> tuple[dict, list[dict]]:
    rows = scorer.rows()
    if out_csv is not None:
        write_rows_csv(rows, out_csv, scorer.profile.name)
    summary = scorer.summary()
    summary["scored_size"] = f"{network_size}x{network_size}" if scorer.profile.resolution == "network" else "native"
    summary.update(extra)
    return summary, rows


def score_split(pred_dir, source, split: str, profile_name: str | ScoringProfile, out_csv=None,
                network_size: int = 256, maps: str = "auto", workers: int = 0) -> tuple[dict, list[dict]]:
    """Score a folder of predicted maps against one split of a dataset as its loader reads it
    (`benchmark.registry.open_dataset`): the official split's samples and masks, in the layout users download
    (Kvasir-SEG's val.txt, ISIC's `_segmentation` masks, VMD-D's JPEGImages/SegmentationClassPNG videos), masks
    read by the dataset's own rule, samples the loader leaves out left out and listed.

    A prediction pairs with a sample by the sample's key, as a relative path without suffix (`<stem>`, or
    `<video>/<frame stem>` for video datasets: what `segbench predict RUN --out DIR` writes), by its mask's
    file stem in the same place (`ISIC_0000000_segmentation`), or for VMD-D by its image's place in the video
    (`<video>/JPEGImages/<frame stem>`). Every sample needs a prediction; predictions that pair with no sample
    (another split's images, files named otherwise) are not scored and are counted in the summary's `ignored`, a few
    named in `ignored_examples`. The split is defined by its masks: a mask of the split whose image is missing (a
    sample the loader cannot read, so it is in none of its splits) is an error naming it, as a missing prediction is.
    """
    if split not in source.splits:
        raise ValueError(f"{source.name} has no '{split}' split (it has {', '.join(source.splits)})")
    refs = source.splits[split]
    if not refs:
        raise ValueError(f"{source.name}'s {split} split under {source.root} is empty")
    probability = probability_folder(pred_dir)
    preds = _index_folder(pred_dir, "prediction")
    folded = {k.lower(): k for k in preds}   # mask names vary in case (ISIC's _Segmentation / _segmentation)
    pairs, missing, no_mask, used = [], [], [], set()
    for ref in refs:
        names = [ref.key]
        if ref.mask is not None:
            names.append(f"{ref.key.rsplit('/', 1)[0]}/{ref.mask.stem}" if "/" in ref.key else ref.mask.stem)
        video = ref.key.rsplit("/", 1)[0] if "/" in ref.key else None
        if video is not None and ref.image.parent.name != video:   # VMD-D: <video>/JPEGImages/<frame>
            names.append(f"{video}/{ref.image.parent.name}/{ref.image.stem}")
        found = list(dict.fromkeys(n if n in preds else folded[n.lower()] for n in names if n.lower() in folded))
        if len(found) > 1:
            raise ValueError(f"two predictions for {source.name} sample {ref.key}: {preds[found[0]]} and "
                             f"{preds[found[1]]}; keep one")
        if not found:
            missing.append(ref.key)
        elif ref.mask is None:
            no_mask.append(ref)
        else:
            used.add(found[0])
            pairs.append((ref, preds[found[0]]))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ValueError(f"{len(missing)} of the {len(refs)} {source.name} {split} samples have no prediction in "
                         f"{pred_dir}: {shown}. Name each prediction `<key>.png` (`segbench predict RUN --split "
                         f"{split} --out DIR` does), or after its mask file")
    if no_mask:   # the loader's own words: with the pairing rule when mask files pair with no image
        raise ValueError(f"{len(no_mask)} {source.name} {split} images have no mask: "
                         + source.no_mask_message(no_mask[0]).replace(", or skip such samples with --skip-bad", ""))
    orphans = masks_without_image(source, split)
    if orphans:
        raise ValueError(_orphans_message(orphans, source, split, pred_dir, folded))
    scorer = Scorer(get_profile(profile_name), source.num_classes)
    probability = scorer.num_classes == 2 and _maps_reading(maps, probability, (p for _, p in pairs))
    _score_pairs(scorer, PairScores(scorer, probability, network_size, source),
                 [(ref.key, pred_path, ref) for ref, pred_path in pairs], workers)
    excluded = [{"key": e["key"], "reason": KNOWN_BAD_SAMPLES.get(e["key"], f"{source.name}: {e['reason']}")}
                for e in source.excluded if e.get("split", split) == split]
    ignored = sorted(set(preds) - used - {e["key"] for e in excluded})
    return _finish(scorer, out_csv, network_size, excluded=excluded, ignored=len(ignored),
                   ignored_examples=[f"{k}{preds[k].suffix}" for k in ignored[:3]],
                   maps="class indices" if scorer.num_classes > 2 else maps_text(probability, maps,
                                                                                 [p for _, p in pairs]),
                   dataset=source.name, split=split, root=str(source.root))


def _split_folder(refs, video: bool) -> Path | None:
    """The deepest folder holding every mask of `refs` (for a video dataset, every video's mask folder: ViSha's
    `test/labels`, VMD-D's `test`), None when they have no mask."""
    folders = [ref.mask.parents[1 if video else 0] for ref in refs if ref.mask is not None]
    return Path(os.path.commonpath(folders)) if folders else None


def masks_without_image(source, split: str) -> list[Path]:
    """The masks of `split` that pair with no image (`source.unpaired_masks` in the folder holding the split's
    masks and in no other split's): labelled samples of the split that its loader cannot read. Masks in a folder
    that several splits share (Kvasir-SEG's, whose split is a list) belong to no split in particular."""
    if not source.unpaired_masks:
        return []
    refs = source.splits[split]
    video = any(ref.group and ref.group != ref.key for ref in refs)
    own = _split_folder(refs, video)
    if own is None:
        return []
    others = [f for name, other in source.splits.items() if name != split
              if (f := _split_folder(other, video)) is not None]
    return [m for m in source.unpaired_masks
            if m.is_relative_to(own) and not any(m.is_relative_to(f) for f in others)]


def _orphans_message(orphans: list[Path], source, split: str, pred_dir, folded: dict) -> str:
    """The error for masks of the scored split without an image: the masks by folder, how many have a prediction,
    and the fix."""
    by_folder: dict[Path, list[Path]] = {}
    for mask in orphans:
        by_folder.setdefault(mask.parent, []).append(mask)
    shown = []
    for folder, masks in list(by_folder.items())[:3]:
        names = ", ".join(m.name for m in masks[:3]) + (f" and {len(masks) - 3} more" if len(masks) > 3 else "")
        shown.append(f"{folder}/ ({names})")
    if len(by_folder) > 3:
        shown.append(f"{len(by_folder) - 3} more folders")
    suffix = source.mask_suffix.lower()

    def has_prediction(mask: Path) -> bool:
        stem = mask.stem.lower()
        stems = {stem, stem[:-len(suffix)] if suffix and stem.endswith(suffix) else stem}
        return any(n in folded for s in stems for n in (s, f"{mask.parent.name.lower()}/{s}",
                                                        f"{mask.parents[1].name.lower()}/{s}"))

    predicted = sum(map(has_prediction, orphans))
    n = len(orphans)
    return (f"{n} {source.name} {split} mask{'s' * (n != 1)} ha{'ve' if n != 1 else 's'} no image: "
            + "; ".join(shown) + f". The {split} split is every labelled sample, and segbench reads a sample only with "
            f"its image, so {'these' if n != 1 else 'this one'} would be left out of the scores"
            + (f" ({'it has' if n == 1 else f'{predicted} of them have'} a prediction in {pred_dir})"
               if predicted else "")
            + f": restore the missing images (re-extract the {split} images of the download) and score again")


# ---- which dataset a folder belongs to (defaults and hints for `score` and `predict` without --dataset) ----

def dataset_around(path, levels: int = 3) -> tuple[str, Path] | None:
    """(key, root) of the dataset layout (benchmark.data.check.SIGNATURES) that `path` is, or lies inside within
    `levels` parents (ViSha's `test/labels`, VMD-D's `test/<video>/SegmentationClassPNG`); None outside any. The
    signatures of MSD (`test/image`) and ViSha (`test/images` + `test/labels`, as in YOLO-style layouts) are common
    to many layouts, so they count only under the dataset's folder name, or for ViSha with one folder per video."""
    from benchmark.data.base import child_dir, sub_dirs
    from benchmark.data.check import SIGNATURES
    from benchmark.registry import DATASETS

    def plausible(key: str, d: Path) -> bool:
        if key not in ("msd", "visha") or d.name.lower() in {n.lower() for n in DATASETS[key][1]}:
            return True
        return key == "visha" and any(
            (images := child_dir(split, "images")) is not None and sub_dirs(images)
            for split in (child_dir(d, "train"), child_dir(d, "test")) if split is not None)

    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        folder = folder.parent
    for d in [folder, *list(folder.parents)[:levels]]:
        for key, signature in SIGNATURES.items():
            if key not in DATASETS:
                continue
            try:
                if not signature(d):
                    continue
            except OSError:   # an unreadable parent
                continue
            if plausible(key, d):
                return key, d
    return None


def _run_dataset(run_dir) -> str | None:
    """The dataset a run was trained on, from its config.yaml (None when unreadable)."""
    from benchmark.records import read_config_yaml

    try:
        data = read_config_yaml(Path(run_dir))
        return str(data["data"]["dataset"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def dataset_of(pred_dir, gt_dir) -> tuple[str, str, Path | None] | None:
    """(dataset key, why, the dataset's folder or None) of the masks in `gt_dir` when it can be told: the dataset
    layout the folder lies in, else what `segbench predict` recorded beside the maps (the dataset split it
    predicted, or its run's dataset). The masks decide first: they define the benchmark, whatever the model was
    trained on."""
    found = dataset_around(gt_dir)
    if found is not None:
        key, root = found
        return key, f"{gt_dir} lies in the {key} dataset's layout at {root}", root
    meta = predictions_meta(pred_dir)
    if meta.get("dataset"):
        return str(meta["dataset"]), f"{PREDICTIONS_META} records them as {meta['dataset']} maps", None
    key = meta.get("run_dataset") or (_run_dataset(meta["run_dir"]) if meta.get("run_dir") else None)
    if key:
        why = f"{PREDICTIONS_META} names the run that predicted them, {meta.get('run_dir')}, a {key} run"
        return str(key), why, None
    return None
