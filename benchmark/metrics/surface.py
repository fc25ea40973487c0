"""HD95 between two binary masks, under both definitions found in the field (REFERENCE.md §5).

Boundaries are a mask XOR its binary erosion with the connectivity-1 cross (pixels outside the image count as
background), as medpy's `hd95` and MONAI's `get_mask_edges` compute them. Distances are exact Euclidean
distances, in pixels of the grid scored, from each boundary pixel to the nearest boundary pixel of the other
mask. Two definitions:

- "pooled" (medpy, SegDINO code): the 95th percentile of both directions' distances pooled together;
- "monai" (MONAI `compute_hausdorff_distance(percentile=95)`): the max of the two directed 95th percentiles.

A stray false positive far from the object moves "monai" a lot and "pooled" little. Both empty → 0, exactly one
empty → inf (the public code then drops the image from the mean; see ScoringProfile.hd95_inf).
"""

from __future__ import annotations

import math

import numpy as np

HD95_DEFINITIONS = ("pooled", "monai")

# A KD-tree over boundary pixels costs about this many EDT pixels per boundary pixel (measured on 512² masks);
# the cheaper exact method is used for each pair.
_KDTREE_COST_PER_POINT = 5


def boundary(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels: mask XOR binary_erosion(mask, connectivity-1 cross, border_value=0), via shifted ANDs."""
    mask = np.asarray(mask, dtype=bool)
    inner = mask.copy()
    for axis in range(mask.ndim):
        lo = [slice(None)] * mask.ndim
        hi = [slice(None)] * mask.ndim
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        inner[tuple(hi)] &= mask[tuple(lo)]
        inner[tuple(lo)] &= mask[tuple(hi)]
        first = [slice(None)] * mask.ndim
        first[axis] = [0, -1]
        inner[tuple(first)] = False  # pixels beyond the image are background
    return mask & ~inner


def _crop_to_union(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both masks cut to the union's bounding box plus a 1-pixel margin (kept inside the image).

    Exact for boundaries and distances: the margin is background or the image edge, and every boundary pixel
    of both masks lies inside the box.
    """
    union = pred | gt
    box = []
    for axis in range(union.ndim):
        other = tuple(a for a in range(union.ndim) if a != axis)
        hit = np.flatnonzero(union.any(axis=other))
        box.append(slice(max(hit[0] - 1, 0), hit[-1] + 2))
    return pred[tuple(box)], gt[tuple(box)]


def surface_distances(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Directed boundary distances (pred → gt, gt → pred), float64, for two non-empty masks.

    Exact either way: a KD-tree over boundary pixels when boundaries are sparse (the usual case), else the
    Euclidean distance transform of the cropped box when boundaries are dense (noisy masks).
    """
    # imported here: scipy costs ~0.25 s, which `import benchmark.metrics` (and `segbench --help`) need not pay
    from scipy import ndimage
    from scipy.spatial import cKDTree

    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth shape {gt.shape}")
    if not pred.any() or not gt.any():
        raise ValueError("surface distances need two non-empty masks; use hd95() for the empty-mask rules")
    pred, gt = _crop_to_union(pred, gt)
    edge_pred, edge_gt = boundary(pred), boundary(gt)
    n_points = int(np.count_nonzero(edge_pred)) + int(np.count_nonzero(edge_gt))
    if n_points * _KDTREE_COST_PER_POINT < edge_pred.size:
        pts_pred = np.argwhere(edge_pred).astype(np.float64)
        pts_gt = np.argwhere(edge_gt).astype(np.float64)
        to_gt = cKDTree(pts_gt).query(pts_pred, k=1)[0]
        to_pred = cKDTree(pts_pred).query(pts_gt, k=1)[0]
        return to_gt, to_pred
    to_gt = ndimage.distance_transform_edt(~edge_gt)[edge_pred]
    to_pred = ndimage.distance_transform_edt(~edge_pred)[edge_gt]
    return to_gt, to_pred


def hd95_from_distances(to_gt: np.ndarray, to_pred: np.ndarray, definition: str = "pooled") -> float:
    """HD95 from directed distances: "pooled" percentile of both, or "monai" max of the directed percentiles.

    Percentiles interpolate linearly (numpy's default, as medpy; MONAI's torch.quantile does the same).
    """
    if definition == "pooled":
        return float(np.percentile(np.concatenate([to_gt, to_pred]), 95))
    if definition == "monai":
        return float(max(np.percentile(to_gt, 95), np.percentile(to_pred, 95)))
    raise ValueError(f"unknown HD95 definition {definition!r}; valid: {', '.join(HD95_DEFINITIONS)}")


def hd95_all(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Both HD95 definitions from one distance computation: {"pooled": ..., "monai": ...}.

    Both masks empty → 0.0, exactly one empty → inf (REFERENCE.md §5).
    """
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    has_pred, has_gt = bool(pred.any()), bool(gt.any())
    if not has_pred and not has_gt:
        return {d: 0.0 for d in HD95_DEFINITIONS}
    if not has_pred or not has_gt:
        return {d: math.inf for d in HD95_DEFINITIONS}
    to_gt, to_pred = surface_distances(pred, gt)
    return {d: hd95_from_distances(to_gt, to_pred, d) for d in HD95_DEFINITIONS}


def hd95(pred: np.ndarray, gt: np.ndarray, definition: str = "pooled") -> float:
    """HD95 of two boolean masks in pixels, under one definition ("pooled" or "monai")."""
    if definition not in HD95_DEFINITIONS:
        raise ValueError(f"unknown HD95 definition {definition!r}; valid: {', '.join(HD95_DEFINITIONS)}")
    return hd95_all(pred, gt)[definition]


def image_diagonal(shape: tuple[int, ...]) -> float:
    """sqrt(H² + W²): longer than any distance on the grid, so a total miss scores worse than any hit."""
    return float(math.sqrt(sum(int(s) ** 2 for s in shape)))


def penalise_inf(value: float, shape: tuple[int, ...]) -> float:
    """`value`, or the image diagonal when it is inf (the "hd95_penalised" variant of REFERENCE.md §5)."""
    return image_diagonal(shape) if math.isinf(value) else float(value)
