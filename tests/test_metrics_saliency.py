"""max-/mean-Fβ, MAE and BER (REFERENCE.md §5), by hand and against a 256-pass reference loop."""

import dataclasses

import numpy as np
import pytest

from benchmark.metrics import Scorer, get_profile
from benchmark.metrics import saliency as S


def _reference_pr(prob_u8, gt_u8, eps=1e-4):
    """The mirror/shadow evaluation code's loop (MirrorNet, ViSha/TVSD misc.py): 256 passes of prob > k/255."""
    prediction, hard_gt = prob_u8 / 255.0, gt_u8 > 127
    t = hard_gt.sum()
    precision, recall = [], []
    for k in range(256):
        hard = prediction > k / 255.0
        tp = np.sum(hard & hard_gt)
        precision.append((tp + eps) / (hard.sum() + eps))
        recall.append((tp + eps) / (t + eps))
    return np.array(precision), np.array(recall)


def test_threshold_levels_are_exact_on_8bit_maps():
    # v/255 exceeds the thresholds 0/255 .. (v-1)/255 and not v/255 itself: level == v, in float32 and float64
    values = np.arange(256)
    assert S.threshold_levels((values / 255).astype(np.float32)).tolist() == values.tolist()
    assert S.threshold_levels(values / 255.0).tolist() == values.tolist()


def test_pr_curve_hand_computed():
    # prob [0.2, 0.6, 0.9, 0.0], gt [0, 1, 1, 0], eps = 1e-4
    # k = 0 (p > 0): positives 0.2, 0.6, 0.9 -> TP=2, PP=3: P = 2.0001/3.0001, R = 2.0001/2.0001 = 1
    # k = 51 (p > 0.2): 0.6, 0.9 -> P = R = 1
    # k = 153 (p > 0.6): 0.9 -> P = 1, R = 1.0001/2.0001
    # k = 230 (p > 0.902): none -> P = eps/eps = 1, R = 1e-4/2.0001
    p, r = S.pr_curve(np.array([[0.2, 0.6, 0.9, 0.0]]), np.array([[0, 1, 1, 0]], bool))
    assert p[0] == pytest.approx(2.0001 / 3.0001) and r[0] == pytest.approx(1.0)
    assert p[51] == pytest.approx(1.0) and r[51] == pytest.approx(1.0)
    assert p[50] == pytest.approx(2.0001 / 3.0001)  # 0.2 > 50/255 still counts
    assert p[153] == pytest.approx(1.0) and r[153] == pytest.approx(1.0001 / 2.0001)
    assert p[230] == pytest.approx(1.0) and r[230] == pytest.approx(1e-4 / 2.0001)


def test_pr_curve_matches_the_256_pass_reference_loop():
    rng = np.random.default_rng(0)
    for _ in range(4):
        prob_u8 = rng.integers(0, 256, (20, 24)).astype(np.uint8)
        gt_u8 = np.where(rng.random((20, 24)) < 0.3, 255, 0).astype(np.uint8)
        ref_p, ref_r = _reference_pr(prob_u8, gt_u8)
        p, r = S.pr_curve(prob_u8.astype(np.float32) / 255, gt_u8 > 127)
        np.testing.assert_allclose(p, ref_p, rtol=1e-12)
        np.testing.assert_allclose(r, ref_r, rtol=1e-12)


def test_fbeta_hand_computed():
    # P = 0.5, R = 1, β² = 0.3: F = 1.3*0.5/(0.15+1) = 0.65/1.15; P = R = 0 -> 0
    f = S.fbeta_curve(np.array([0.5, 1.0, 0.0]), np.array([1.0, 1.0, 0.0]), 0.3)
    np.testing.assert_allclose(f, [0.65 / 1.15, 1.0, 0.0])
    assert S.max_fbeta(np.array([0.5, 1.0]), np.array([1.0, 1.0])) == 1.0
    assert S.mean_fbeta(np.array([0.5, 1.0]), np.array([1.0, 1.0])) == pytest.approx((0.65 / 1.15 + 1) / 2)


def test_max_f_of_averaged_curve_differs_from_per_image_max_f():
    # three thresholds {0, 0.5, 1}; eps = 1e-4 makes the numbers below exact to ~1e-4.
    # image A: prob [0.3, 0], gt [1, 0]: t=0 -> P=R=1 (F=1); t=0.5, 1 -> no positives, P=1, R~0 (F~0)
    # image B: prob [0.9, 0.3], gt [1, 0]: t=0 -> P=0.5, R=1 (F=0.65/1.15=0.5652); t=0.5 -> F=1; t=1 -> F~0
    # mean of per-image max-F = (1 + 1)/2 = 1
    # averaged P/R ("mean-pr", REFERENCE.md §5): t=0 -> P=0.75, R=1, F=0.975/1.225=0.7959;
    #   t=0.5 -> P=1, R=0.5, F=0.65/0.8=0.8125 -> max-F 0.8125, mean-F (0.7959+0.8125+0)/3 = 0.5361
    # averaged F curves ("mean-f", PySODMetrics): t=0 -> (1+0.5652)/2 = 0.7826; t=0.5 -> 0.5 -> max 0.7826
    base = dataclasses.replace(get_profile("mirror"), name="t3", fbeta_thresholds=3)
    images = [("A", [[0.3, 0.0]]), ("B", [[0.9, 0.3]])]
    scorers = {curve: Scorer(dataclasses.replace(base, fbeta_curve=curve)) for curve in ("mean-pr", "mean-f")}
    rows = []
    for key, prob in images:
        for scorer in scorers.values():
            row = scorer.add(key, np.array(prob), np.array([[1, 0]]))
        rows.append(row)
    per_image_max = np.mean([r["max_fbeta"] for r in rows])
    assert per_image_max == pytest.approx(1.0, abs=1e-3)
    mean_pr = scorers["mean-pr"].summary()["metrics"]
    assert mean_pr["max_fbeta"] == pytest.approx(0.8125, abs=1e-3)
    assert mean_pr["mean_fbeta"] == pytest.approx((0.975 / 1.225 + 0.8125) / 3, abs=1e-3)
    assert scorers["mean-f"].summary()["metrics"]["max_fbeta"] == pytest.approx((1 + 0.65 / 1.15) / 2, abs=1e-3)


def test_mae_hand_computed():
    # |0.2-0| + |0.6-1| + |1-1| + |0-0| = 0.6 over 4 pixels = 0.15; no min-max rescaling of the prediction
    assert S.mae(np.array([[0.2, 0.6], [1.0, 0.0]]), np.array([[0, 1], [1, 0]], bool)) == pytest.approx(0.15)
    assert S.mae(np.full((2, 2), 0.25), np.zeros((2, 2), bool)) == pytest.approx(0.25)


def test_ber_hand_computed():
    # TP=3, FN=1 (Np=4), TN=5, FP=5 (Nn=10): TP/Np=0.75, TN/Nn=0.5
    # BER = 100*(1 - (0.75+0.5)/2) = 37.5; S-BER = 100*(1-0.75) = 25; N-BER = 100*(1-0.5) = 50
    assert S.ber(tp=3, fp=5, fn=1, tn=5) == pytest.approx({"ber": 37.5, "s_ber": 25.0, "n_ber": 50.0})


def test_ber_absent_class_rule():
    # an image with no positives (Np=0), 2 of 10 negatives wrong: TN/Nn = 0.8
    # "perfect": TP/Np := 1 -> BER = 100*(1 - 0.9) = 10; "nan": undefined
    assert S.ber(0, 2, 0, 8, "perfect")["ber"] == pytest.approx(10.0)
    assert np.isnan(S.ber(0, 2, 0, 8, "nan")["ber"])


def test_accumulated_and_per_image_ber_differ():
    # image 1: 1 positive pixel, missed; 99 negatives right -> BER = 100*(1 - (0+1)/2) = 50
    # image 2: 99 positives right, 1 negative right -> BER = 0
    # per-image mean (mirror code) = 25; accumulated (shadow, REFERENCE.md §5): TP/Np = 99/100, TN/Nn = 100/100
    #   -> BER = 100*(1 - 1.99/2) = 0.5, S-BER = 1, N-BER = 0
    gt1 = np.zeros((10, 10), bool)
    gt1[0, 0] = True
    gt2 = ~gt1
    shadow = get_profile("shadow")
    scorers = {r: Scorer(dataclasses.replace(shadow, ber_reduction=r)) for r in ("accumulated", "per-image")}
    for scorer in scorers.values():
        scorer.add("1", np.zeros((10, 10)), gt1)
        scorer.add("2", gt2.astype(float), gt2)
    acc = scorers["accumulated"].summary()["metrics"]
    assert acc["ber"] == pytest.approx(0.5) and acc["s_ber"] == pytest.approx(1.0) and acc["n_ber"] == 0.0
    assert scorers["per-image"].summary()["metrics"]["ber"] == pytest.approx(25.0)


def _reference_tvsd_frame(prob_u8, gt_u8):
    """One frame of TVSD's evaluate.py (ViSha), restated: IoU at 0.5 (medpy jc), MAE on /255 maps,
    BER / S-BER / N-BER at 127.5, and the frame's 256-point P/R for the set's max-F."""
    pred, gt = prob_u8 > 127.5, gt_u8 > 127.5
    tp, tn = np.sum(pred & gt), np.sum(~pred & ~gt)
    n_pos, n_neg = gt.sum(), (~gt).sum()
    precision, recall = _reference_pr(prob_u8, gt_u8)
    return {
        "iou": np.sum(pred & gt) / np.sum(pred | gt),
        "mae": np.mean(np.abs(prob_u8 / 255.0 - gt_u8 / 255.0)),
        "ber": 0.5 * (2 - tp / n_pos - tn / n_neg) * 100,
        "s_ber": (1 - tp / n_pos) * 100,
        "n_ber": (1 - tn / n_neg) * 100,
    }, precision, recall


def test_shadow_per_frame_profile_matches_the_tvsd_evaluation_loop():
    # TVSD's evaluate.py (the ViSha evaluation the video shadow papers reuse) averages every metric per frame
    # (AvgMeter), and takes max-F of the frame-averaged P and R; frames of different sizes and shadow shares.
    rng = np.random.default_rng(3)
    scorer, accumulated = Scorer("shadow-per-frame"), Scorer("shadow")
    refs, ps, rs = [], [], []
    for k, (h, w, share) in enumerate([(18, 24, 0.05), (20, 20, 0.4), (16, 30, 0.7), (22, 14, 0.2)]):
        gt_u8 = np.where(rng.random((h, w)) < share, 255, 0).astype(np.uint8)
        noise = rng.normal(0, 90, (h, w))
        prob_u8 = np.clip(gt_u8 * 0.7 + noise + 40, 0, 255).astype(np.uint8)
        frame, p, r = _reference_tvsd_frame(prob_u8, gt_u8)
        refs.append(frame), ps.append(p), rs.append(r)
        for s in (scorer, accumulated):
            s.add(str(k), prob_u8.astype(np.float64) / 255, gt_u8 > 127)
    got = scorer.summary()["metrics"]
    for name in ("iou", "mae", "ber", "s_ber", "n_ber"):
        assert got[name] == pytest.approx(np.mean([f[name] for f in refs]), rel=1e-12), name
    p, r = np.mean(ps, axis=0), np.mean(rs, axis=0)
    assert got["max_fbeta"] == pytest.approx(np.max(1.3 * p * r / (0.3 * p + r)), rel=1e-12)
    # the accumulated (shadow) profile differs only in the BER family
    acc = accumulated.summary()["metrics"]
    assert {m: acc[m] for m in ("iou", "mae", "max_fbeta")} == {m: got[m] for m in ("iou", "mae", "max_fbeta")}
    assert abs(acc["ber"] - got["ber"]) > 0.1


def test_shadow_per_frame_skips_shadowless_frames_in_ber():
    # TVSD's code divides by Np = 0 on a frame without shadow; the profile leaves that frame out of S-BER/BER
    # (N-BER is defined and kept). Frame 1: no shadow, 2 of 4 lit pixels wrong. Frame 2: all right.
    scorer = Scorer("shadow-per-frame")
    scorer.add("1", np.array([[0.9, 0.9, 0.1, 0.1]]), np.zeros((1, 4), bool))
    scorer.add("2", np.array([[0.9, 0.1]]), np.array([[True, False]]))
    m = scorer.summary()["metrics"]
    assert (m["ber"], m["s_ber"]) == (0.0, 0.0)
    assert m["n_ber"] == pytest.approx(25.0)  # mean of 50 and 0


def test_profiles_sharing_an_image_share_work_but_not_numbers():
    # score_split hands every profile on one grid the same memo; rows must equal independent scoring, also for
    # profiles whose thresholds and Fβ settings differ (so a wrong memo key would leak one profile's numbers)
    rng = np.random.default_rng(5)
    profiles = [get_profile(n) for n in ("mirror", "shadow", "shadow-per-frame", "medical-native")]
    profiles.append(dataclasses.replace(get_profile("shadow"), name="odd", threshold=0.3, fbeta_eps=1e-2,
                                        fbeta_thresholds=64))
    for k in range(3):
        gt = rng.random((15, 17)) < 0.3
        prob = np.clip(gt * 0.6 + rng.random((15, 17)) * 0.5, 0, 1)
        memo: dict = {}
        for profile in profiles:
            shared, alone = Scorer(profile), Scorer(profile)
            assert shared.add(str(k), prob, gt, memo=memo) == alone.add(str(k), prob, gt)
        assert ("curves", 64, 1e-2, 0.3) in memo and ("counts", 0.3) in memo


def test_mirror_profile_also_restates_mirrornets_acc_and_mae():
    # MirrorNet's misc.py: compute_acc_mirror = TP / N_p (a recall; NaN without mirror pixels, skipped here) and
    # MAE of get_normalized_predict_mask = (m - min) / (max - min); the profile's acc / mae stay pixel accuracy / raw
    rng = np.random.default_rng(7)
    scorer, rows = Scorer("mirror"), []
    for k, (h, w, share) in enumerate([(12, 16, 0.3), (10, 10, 0.5), (14, 9, 0.0)]):
        gt = rng.random((h, w)) < share
        prob_u8 = np.clip(gt * 120 + rng.integers(20, 120, (h, w)), 0, 255).astype(np.uint8)   # spans < 0..255
        prob = prob_u8 / 255.0
        pred = prob_u8 >= 127.5
        n_p, tp = gt.sum(), np.sum(pred & gt)
        m = prob_u8.astype(np.float64)
        normalised = (m - m.min()) / (m.max() - m.min())
        rows.append({"acc_mirror": tp / n_p if n_p else np.nan, "mae_minmax": np.mean(np.abs(normalised - gt)),
                     "acc": np.mean(pred == gt), "mae": np.mean(np.abs(prob - gt))})
        scorer.add(str(k), prob, gt)
    got = scorer.summary()["metrics"]
    assert got["acc_mirror"] == pytest.approx(np.nanmean([r["acc_mirror"] for r in rows]), rel=1e-12)
    for name in ("mae_minmax", "acc", "mae"):
        assert got[name] == pytest.approx(np.mean([r[name] for r in rows]), rel=1e-12), name
    assert got["mae_minmax"] != pytest.approx(got["mae"])
