"""Saliency-style metrics of the mirror and shadow literature: max-/mean-Fβ, MAE, BER (REFERENCE.md §5).

Fβ follows the evaluation code the mirror and shadow papers share (MirrorNet, ViSha/TVSD `misc.py`): at each of
256 thresholds k/255 a pixel is positive iff prob > k/255; per image P = (TP+eps)/(PP+eps) and
R = (TP+eps)/(Np+eps) with eps = 1e-4; P and R are averaged over images per threshold, and
F = (1+β²)PR / (β²P + R) with β² = 0.3. "max_fbeta" is the max of that curve over thresholds and "mean_fbeta"
its mean over thresholds (the "meanF" of saliency toolkits, but of the averaged-P/R curve; PySODMetrics instead
averages per-image F curves, ScoringProfile.fbeta_curve = "mean-f").

All 256 thresholds come from one bincount of quantised probabilities, not 256 passes over the image.
"""

from __future__ import annotations

import numpy as np

# A probability counts as above threshold k/(n-1) only when (n-1)·p exceeds k by more than this, so an 8-bit map
# stored as float32 (value/255, a few ulp off) scores exactly like the uint8 original in the reference code.
_GRID_TOLERANCE = 1e-4


def threshold_levels(prob: np.ndarray, n_thresholds: int = 256) -> np.ndarray:
    """Per pixel, how many of the thresholds k/(n-1), k = 0..n-1, it exceeds (prob > threshold): 0..n-1."""
    scaled = np.multiply(prob, n_thresholds - 1, dtype=np.float32)
    scaled -= _GRID_TOLERANCE
    levels = np.ceil(scaled, out=scaled).astype(np.int32)
    np.clip(levels, 0, n_thresholds - 1, out=levels)
    return levels


def pr_curve(prob: np.ndarray, gt: np.ndarray, n_thresholds: int = 256, eps: float = 1e-4):
    """Per-image precision and recall at the n thresholds k/(n-1), k = 0..n-1 (index k), float64 arrays.

    P = (TP + eps)/(PP + eps), R = (TP + eps)/(Np + eps) as the MirrorNet/TVSD code: an empty prediction has
    P = 1, an empty ground truth R = 1.
    """
    gt = np.asarray(gt, dtype=bool)
    levels = threshold_levels(prob, n_thresholds)
    if levels.shape != gt.shape:
        raise ValueError(f"prediction shape {levels.shape} differs from ground truth shape {gt.shape}")
    hist = np.bincount((levels + gt * n_thresholds).ravel(), minlength=2 * n_thresholds)
    bg_hist, fg_hist = hist[:n_thresholds], hist[n_thresholds:]
    # positives at threshold k are the pixels with level > k: a reversed cumulative sum, shifted by one
    tp = np.append(np.cumsum(fg_hist[::-1])[::-1][1:], 0).astype(np.float64)
    fp = np.append(np.cumsum(bg_hist[::-1])[::-1][1:], 0).astype(np.float64)
    n_pos = float(fg_hist.sum())
    return (tp + eps) / (tp + fp + eps), (tp + eps) / (n_pos + eps)


def fbeta_curve(precision: np.ndarray, recall: np.ndarray, beta2: float = 0.3) -> np.ndarray:
    """F = (1+β²)PR / (β²P + R) per threshold; 0 where P = R = 0. Note β² is passed, not β."""
    precision = np.asarray(precision, dtype=np.float64)
    recall = np.asarray(recall, dtype=np.float64)
    den = beta2 * precision + recall
    return np.where(den > 0, (1 + beta2) * precision * recall / np.where(den > 0, den, 1.0), 0.0)


def max_fbeta(mean_precision: np.ndarray, mean_recall: np.ndarray, beta2: float = 0.3) -> float:
    """max over thresholds of F of the image-averaged P and R curves (REFERENCE.md §5 "max-F")."""
    return float(fbeta_curve(mean_precision, mean_recall, beta2).max())


def mean_fbeta(mean_precision: np.ndarray, mean_recall: np.ndarray, beta2: float = 0.3) -> float:
    """mean over thresholds of F of the image-averaged P and R curves (the "meanF" of saliency toolkits)."""
    return float(fbeta_curve(mean_precision, mean_recall, beta2).mean())


def minmax(prob: np.ndarray) -> np.ndarray:
    """The prediction rescaled to span [0, 1] (MirrorNet's get_normalized_predict_mask), when it is not constant."""
    prob = np.asarray(prob, dtype=np.float64)
    low, high = prob.min(), prob.max()
    return (prob - low) / (high - low) if high > low else prob


def mae(prob: np.ndarray, gt: np.ndarray) -> float:
    """Mean |p - g| of a probability map and a 0/1 mask (no min-max rescaling of p; REFERENCE.md §5)."""
    prob = np.asarray(prob)
    gt = np.asarray(gt)
    if prob.shape != gt.shape:
        raise ValueError(f"prediction shape {prob.shape} differs from ground truth shape {gt.shape}")
    return float(np.abs(prob - gt.astype(prob.dtype if prob.dtype.kind == "f" else np.float64)).mean())


def _rate(hit, total, absent: str) -> float:
    """hit/total; when total is 0 the class is absent: 1.0 ("perfect": nothing to miss) or NaN ("nan")."""
    if total > 0:
        return float(hit) / float(total)
    if absent == "perfect":
        return 1.0
    if absent == "nan":
        return float("nan")
    raise ValueError(f"unknown absent-class rule {absent!r}; valid: perfect, nan")


def ber(tp, fp, fn, tn, absent: str = "perfect") -> dict[str, float]:
    """BER, S-BER (positive class) and N-BER (negative class) in percent, from confusion counts.

    BER = 100·(1 − ½(TP/Np + TN/Nn)), S-BER = 100·(1 − TP/Np), N-BER = 100·(1 − TN/Nn) (REFERENCE.md §5).
    Pass one image's counts for per-image BER, or counts summed over a set for the accumulated (shadow) BER.
    """
    pos_rate = _rate(tp, tp + fn, absent)
    neg_rate = _rate(tn, tn + fp, absent)
    return {
        "ber": 100.0 * (1.0 - 0.5 * (pos_rate + neg_rate)),
        "s_ber": 100.0 * (1.0 - pos_rate),
        "n_ber": 100.0 * (1.0 - neg_rate),
    }
