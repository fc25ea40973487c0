"""HD95 under the pooled (medpy/SegDINO) and MONAI definitions, by hand and against MONAI and medpy."""

import math

import numpy as np
import pytest
from scipy import ndimage

from benchmark.metrics import surface


def _blobs(rng, shape=(48, 64), n=2, stray=False):
    """Random ellipses (some cut by the image edge), optionally with a few stray pixels."""
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    mask = np.zeros(shape, bool)
    for _ in range(n):
        cy, cx = rng.uniform(-4, shape[0] + 4), rng.uniform(-4, shape[1] + 4)
        ry, rx = rng.uniform(2, 14, 2)
        mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    if stray:
        mask[tuple(rng.integers(0, s, 3) for s in shape)] = True
    return mask


def _pairs(n=12, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        a, b = _blobs(rng, stray=len(out) % 3 == 0), _blobs(rng)
        if a.any() and b.any():
            out.append((a, b))
    return out


def _medpy_distances(result, reference):
    """medpy's __surface_distances, written out: XOR-erosion boundaries, full-image EDT."""
    border_r = result ^ ndimage.binary_erosion(result, structure=ndimage.generate_binary_structure(2, 1))
    border_g = reference ^ ndimage.binary_erosion(reference, structure=ndimage.generate_binary_structure(2, 1))
    return ndimage.distance_transform_edt(~border_g)[border_r]


def test_boundary_matches_xor_erosion_including_image_edge():
    # a 5x5 square inside a 9x9 image: boundary is its ring, 5*4-4 = 16 pixels
    mask = np.zeros((9, 9), bool)
    mask[2:7, 2:7] = True
    assert np.count_nonzero(surface.boundary(mask)) == 16
    # a square touching the image edge: pixels on the edge are boundary (outside counts as background)
    edge = np.zeros((6, 6), bool)
    edge[:3, :3] = True
    assert surface.boundary(edge).tolist() == (edge ^ ndimage.binary_erosion(edge)).tolist()
    assert surface.boundary(edge)[0, 0]  # the corner pixel is boundary although all its in-image neighbours are set
    for a, _ in _pairs(6):
        np.testing.assert_array_equal(surface.boundary(a), a ^ ndimage.binary_erosion(a))


def test_single_pixels_hand_computed():
    # one pixel each, at (2,2) and (2,5): each boundary is the pixel itself, both directed distances are 3
    pred, gt = np.zeros((5, 8), bool), np.zeros((5, 8), bool)
    pred[2, 2], gt[2, 5] = True, True
    assert surface.hd95(pred, gt, "pooled") == 3.0
    assert surface.hd95(pred, gt, "monai") == 3.0


def test_identical_masks_score_zero():
    a = _pairs(1)[0][0]
    assert surface.hd95_all(a, a) == {"pooled": 0.0, "monai": 0.0}


def test_empty_rules():
    # both empty -> 0; exactly one empty -> inf, under both definitions (REFERENCE.md §5)
    empty, some = np.zeros((8, 8), bool), np.zeros((8, 8), bool)
    some[2:4, 2:4] = True
    assert surface.hd95_all(empty, empty) == {"pooled": 0.0, "monai": 0.0}
    assert surface.hd95_all(some, empty) == {"pooled": math.inf, "monai": math.inf}
    assert surface.hd95_all(empty, some) == {"pooled": math.inf, "monai": math.inf}
    with pytest.raises(ValueError, match="non-empty"):
        surface.surface_distances(some, empty)


def test_full_image_masks():
    # both masks cover the image: boundaries are the image frame, identical -> 0
    full = np.ones((6, 7), bool)
    assert surface.hd95_all(full, full) == {"pooled": 0.0, "monai": 0.0}


def test_stray_false_positive_separates_the_definitions():
    # gt: 10x10 square (rows/cols 10..19): boundary 36 px. pred: the same square plus a 3-px vertical line at
    # column 35, rows 14..16, each 16 px right of the square's column 19.
    # pred->gt: 36 zeros + [16,16,16] = 39 values; 95th percentile at rank 0.95*38 = 36.1 -> 16 ("monai": max
    # of the directed percentiles = 16). gt->pred: 36 zeros.
    # pooled: 72 zeros + 3 sixteens = 75 values; rank 0.95*74 = 70.3 falls among the zeros -> 0.
    gt = np.zeros((40, 40), bool)
    gt[10:20, 10:20] = True
    pred = gt.copy()
    pred[14:17, 35] = True
    assert surface.hd95(pred, gt, "pooled") == 0.0
    assert surface.hd95(pred, gt, "monai") == pytest.approx(16.0)


def test_penalised_variant_uses_the_diagonal():
    # a 3x4 grid: diagonal sqrt(9+16) = 5; finite values pass through
    assert surface.image_diagonal((3, 4)) == 5.0
    assert surface.penalise_inf(math.inf, (3, 4)) == 5.0
    assert surface.penalise_inf(2.5, (3, 4)) == 2.5


@pytest.mark.parametrize("kdtree_cost", [0, 10**9], ids=["edt-path", "kdtree-path"])
def test_both_distance_paths_match_medpy_formula(monkeypatch, kdtree_cost):
    monkeypatch.setattr(surface, "_KDTREE_COST_PER_POINT", kdtree_cost)
    for a, b in _pairs(8, seed=1):
        to_gt, to_pred = surface.surface_distances(a, b)
        np.testing.assert_allclose(np.sort(to_gt), np.sort(_medpy_distances(a, b)))
        np.testing.assert_allclose(np.sort(to_pred), np.sort(_medpy_distances(b, a)))


def test_pooled_matches_medpy_hd95():
    binary = pytest.importorskip("medpy.metric.binary")
    for a, b in _pairs(12, seed=2):
        assert surface.hd95(a, b, "pooled") == pytest.approx(binary.hd95(a, b), rel=1e-12)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # MONAI's own deprecation notice inside get_mask_edges
def test_monai_definition_and_pooled_distances_match_monai():
    torch = pytest.importorskip("torch")
    monai_hd = pytest.importorskip("monai.metrics.hausdorff_distance")
    monai_utils = pytest.importorskip("monai.metrics.utils")
    for a, b in _pairs(12, seed=3):
        ours = surface.hd95_all(a, b)
        ref = monai_hd.compute_hausdorff_distance(
            torch.from_numpy(a)[None, None].float(), torch.from_numpy(b)[None, None].float(),
            include_background=True, percentile=95,
        )
        assert ours["monai"] == pytest.approx(float(ref), rel=1e-5, abs=1e-5)
        # pooled: MONAI's own edge distances (both directions), pooled, then numpy's percentile
        _, (d_pred, d_gt), _ = monai_utils.get_edge_surface_distance(
            torch.from_numpy(a), torch.from_numpy(b), symmetric=True)
        pooled = np.percentile(np.concatenate([d_pred.numpy(), d_gt.numpy()]).astype(np.float64), 95)
        assert ours["pooled"] == pytest.approx(pooled, rel=1e-5, abs=1e-5)
