"""Confusion counts and the ratios built from them, on hand-computed arrays."""

import numpy as np
import pytest

from benchmark.metrics import counts as C


def test_counts_and_ratios_hand_computed():
    # pred [[1,1,0],[0,0,0]] vs gt [[1,0,0],[1,0,0]]: TP=1 (0,0), FP=1 (0,1), FN=1 (1,0), TN=3
    pred = np.array([[1, 1, 0], [0, 0, 0]], bool)
    gt = np.array([[1, 0, 0], [1, 0, 0]], bool)
    tp, fp, fn, tn = C.confusion_counts(pred, gt)
    assert (tp, fp, fn, tn) == (1, 1, 1, 3)
    assert C.dice(tp, fp, fn, "zero") == pytest.approx(2 / 4)  # 2TP/(2TP+FP+FN) = 2/4
    assert C.iou(tp, fp, fn, "zero") == pytest.approx(1 / 3)  # TP/(TP+FP+FN) = 1/3
    assert C.precision(tp, fp, "zero") == pytest.approx(0.5)  # 1/(1+1)
    assert C.recall(tp, fn, "zero") == pytest.approx(0.5)  # 1/(1+1)
    assert C.accuracy(tp, fp, fn, tn) == pytest.approx(4 / 6)  # (TP+TN)/6
    # the eps rule moves a non-empty ratio by ~eps only: (2+1e-6)/(4+1e-6)
    assert C.dice(tp, fp, fn, "eps", 1e-6) == pytest.approx((2 + 1e-6) / (4 + 1e-6), rel=1e-12)


def test_both_empty_under_each_rule():
    # no foreground anywhere: every ratio is 0/0 -> eps: (0+eps)/(0+eps) = 1; zero: 0; one: 1
    tp, fp, fn, tn = C.confusion_counts(np.zeros((4, 4), bool), np.zeros((4, 4), bool))
    assert (tp, fp, fn, tn) == (0, 0, 0, 16)
    assert C.dice(tp, fp, fn, "eps") == 1.0
    assert C.iou(tp, fp, fn, "eps") == 1.0
    assert C.dice(tp, fp, fn, "zero") == 0.0
    assert C.iou(tp, fp, fn, "one") == 1.0
    assert C.accuracy(tp, fp, fn, tn) == 1.0


def test_one_side_empty():
    # gt empty, prediction 2 pixels: TP=0, FP=2 -> eps: 1e-6/(2+1e-6) ~ 5e-7; zero/one: 0/2 = 0
    pred = np.zeros((3, 3), bool)
    pred[0, :2] = True
    tp, fp, fn, _ = C.confusion_counts(pred, np.zeros((3, 3), bool))
    assert C.dice(tp, fp, fn, "eps") == pytest.approx(1e-6 / (2 + 1e-6))
    assert C.iou(tp, fp, fn, "one") == 0.0
    # precision 0/2 = 0; recall 0/0 follows the rule (eps -> 1: nothing to recall)
    assert C.precision(tp, fp, "eps") == pytest.approx(1e-6 / (2 + 1e-6))
    assert C.recall(tp, fn, "eps") == 1.0
    assert C.recall(tp, fn, "zero") == 0.0


def test_full_image():
    # every pixel foreground in both: TP=6, TN=0 -> all ratios 1
    full = np.ones((2, 3), bool)
    tp, fp, fn, tn = C.confusion_counts(full, full)
    assert (tp, fp, fn, tn) == (6, 0, 0, 0)
    assert C.dice(tp, fp, fn, "zero") == 1.0 and C.accuracy(tp, fp, fn, tn) == 1.0


def test_threshold_is_strict_at_half():
    # REFERENCE.md §5: sigmoid > 0.5, so exactly 0.5 is background; the next float above is foreground
    prob = np.array([0.5, np.nextafter(0.5, 1.0), 0.4999, 1.0, 0.0])
    assert C.binarise(prob, 0.5).tolist() == [False, True, False, True, False]
    # 8-bit maps never sit on 0.5: 127/255 is background, 128/255 foreground
    assert C.binarise(np.float32([127 / 255, 128 / 255])).tolist() == [False, True]


def test_class_counts_hand_computed():
    # gt [0,1,1,2,2,2], pred [0,1,2,2,2,0]
    # class 1: TP=1 (idx1), FP=0, FN=1 (idx2), TN=4; class 2: TP=2 (idx3,4), FP=1 (idx2), FN=1 (idx5), TN=2
    # class 0: TP=1 (idx0), FP=1 (idx5), FN=0, TN=4
    gt = np.array([0, 1, 1, 2, 2, 2])
    pred = np.array([0, 1, 2, 2, 2, 0])
    got = C.class_counts(pred, gt, 3)
    assert got.tolist() == [[1, 1, 0, 4], [1, 0, 1, 4], [2, 1, 1, 2]]
    # elementwise ratios: dice class1 = 2/3, class2 = 4/6
    np.testing.assert_allclose(C.dice(got[1:, 0], got[1:, 1], got[1:, 2], "zero"), [2 / 3, 4 / 6])


def test_errors():
    with pytest.raises(ValueError, match="shape"):
        C.confusion_counts(np.zeros((2, 2), bool), np.zeros((2, 3), bool))
    with pytest.raises(ValueError, match="valid: eps, zero, one"):
        C.safe_ratio(1, 2, "nope")
    with pytest.raises(ValueError, match="index outside"):
        C.class_counts(np.array([0, 1]), np.array([0, 3]), 3)
