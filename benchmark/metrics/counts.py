"""Confusion counts and the ratios built from them (Dice, IoU, precision, recall, accuracy).

Count first, reduce second (DESIGN.md): an image becomes four integers, and every ratio is a pure function of
them plus a named rule for 0/0, so the same counts can be re-reduced under another profile. The ratio functions
work elementwise on numpy arrays too (per-class counts of a multi-class image).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Counts(NamedTuple):
    """Pixel confusion counts of one binary image: true/false positives/negatives."""

    tp: int
    fp: int
    fn: int
    tn: int


def binarise(prob: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Foreground where prob > threshold, strictly (REFERENCE.md §5: sigmoid > 0.5, so exactly 0.5 is background)."""
    return np.asarray(prob) > threshold


def confusion_counts(pred: np.ndarray, gt: np.ndarray) -> Counts:
    """TP, FP, FN, TN of two boolean masks of one shape (three popcounts, no float work)."""
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth shape {gt.shape}")
    tp = int(np.count_nonzero(pred & gt))
    n_pred = int(np.count_nonzero(pred))
    n_gt = int(np.count_nonzero(gt))
    fp, fn = n_pred - tp, n_gt - tp
    return Counts(tp, fp, fn, int(gt.size) - tp - fp - fn)


def class_counts(pred: np.ndarray, gt: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-class counts of two index maps as an int64 array (num_classes, 4) of tp, fp, fn, tn (one bincount)."""
    pred = np.asarray(pred).ravel().astype(np.int64)
    gt = np.asarray(gt).ravel().astype(np.int64)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction size {pred.size} differs from ground truth size {gt.size}")
    if gt.size and (gt.min() < 0 or gt.max() >= num_classes):
        raise ValueError(f"ground-truth index outside 0..{num_classes - 1}: {gt.min()}..{gt.max()}")
    confusion = np.bincount(gt * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)
    tp = np.diag(confusion)
    fp = confusion.sum(axis=0) - tp
    fn = confusion.sum(axis=1) - tp
    tn = gt.size - tp - fp - fn
    return np.stack([tp, fp, fn, tn], axis=1)


def safe_ratio(num, den, rule: str = "eps", eps: float = 1e-6):
    """num/den with a named rule for empty masks (see ScoringProfile.empty_rule).

    "eps": (num + eps) / (den + eps), as the SegDINO code (REFERENCE.md §5), so 0/0 scores 1.0;
    "zero": 0/0 is 0; "one": 0/0 is 1. Scalars give a float, arrays an array.
    """
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    if rule == "eps":
        out = (num + eps) / (den + eps)
    elif rule in ("zero", "one"):
        fill = 0.0 if rule == "zero" else 1.0
        out = np.where(den > 0, num / np.where(den > 0, den, 1.0), fill)
    else:
        raise ValueError(f"unknown empty-mask rule {rule!r}; valid: eps, zero, one")
    return float(out) if out.ndim == 0 else out


def dice(tp, fp, fn, rule: str = "eps", eps: float = 1e-6):
    """Dice = 2TP / (2TP + FP + FN)."""
    return safe_ratio(2 * np.asarray(tp), 2 * np.asarray(tp) + fp + fn, rule, eps)


def iou(tp, fp, fn, rule: str = "eps", eps: float = 1e-6):
    """IoU (Jaccard) = TP / (TP + FP + FN)."""
    return safe_ratio(tp, np.asarray(tp) + fp + fn, rule, eps)


def precision(tp, fp, rule: str = "eps", eps: float = 1e-6):
    """Precision = TP / (TP + FP); an empty prediction is 0/0 and follows the rule."""
    return safe_ratio(tp, np.asarray(tp) + fp, rule, eps)


def recall(tp, fn, rule: str = "eps", eps: float = 1e-6):
    """Recall = TP / (TP + FN); an empty ground truth is 0/0 and follows the rule."""
    return safe_ratio(tp, np.asarray(tp) + fn, rule, eps)


def accuracy(tp, fp, fn, tn):
    """Pixel accuracy = (TP + TN) / all pixels (REFERENCE.md §5 "Acc"); never 0/0 for a non-empty image."""
    return safe_ratio(np.asarray(tp) + tn, np.asarray(tp) + fp + fn + tn, "zero")
