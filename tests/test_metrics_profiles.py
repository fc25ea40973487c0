"""The scoring-profile registry: names, conventions, errors, and that every profile scores end to end."""

import dataclasses
import json

import numpy as np
import pytest

from benchmark.metrics import (
    METRIC_NAMES,
    PROFILES,
    Scorer,
    ScoringProfile,
    get_profile,
)

MEDICAL = ["dice", "iou", "hd95", "hd95_monai", "hd95_penalised", "precision", "recall"]


def test_registry_has_the_documented_profiles():
    # docs/run_records.md: segdino and medical-native (medical), mirror (msd, vmd), shadow (visha)
    assert {"segdino", "medical-native", "mirror", "shadow"} <= set(PROFILES)
    for name, profile in PROFILES.items():
        assert profile.name == name
        assert set(profile.metrics) <= set(METRIC_NAMES)


def test_profile_conventions():
    seg = get_profile("segdino")
    assert (seg.resolution, seg.threshold, seg.empty_rule, seg.eps) == ("network", 0.5, "eps", 1e-6)
    assert (seg.hd95, seg.hd95_inf, seg.hd95_penalty) == ("pooled", "drop", "diagonal")
    assert list(seg.metrics) == MEDICAL
    native = get_profile("medical-native")
    assert native.resolution == "native" and list(native.metrics) == MEDICAL
    mirror = get_profile("mirror")
    assert mirror.resolution == "native"
    assert list(mirror.metrics) == ["iou", "acc", "max_fbeta", "mean_fbeta", "mae", "ber", "acc_mirror", "mae_minmax"]
    shadow = get_profile("shadow")
    assert shadow.resolution == "native" and shadow.ber_reduction == "accumulated"
    assert list(shadow.metrics) == ["iou", "max_fbeta", "mae", "ber", "s_ber", "n_ber"]
    per_frame = get_profile("shadow-per-frame")  # TVSD's evaluate.py: every metric averaged per frame
    assert per_frame.resolution == "native" and per_frame.metrics == shadow.metrics
    assert (per_frame.ber_reduction, per_frame.ber_absent_class, per_frame.empty_rule) == ("per-image", "nan", "one")
    for p in (mirror, shadow, per_frame):
        assert (p.fbeta_beta2, p.fbeta_thresholds, p.fbeta_curve) == (0.3, 256, "mean-pr")


def test_visha_is_scored_both_ways_by_default():
    from benchmark.evaluate import profiles_for

    assert profiles_for("visha") == ("shadow", "shadow-per-frame")
    assert profiles_for("visha", ("shadow",)) == ("shadow",)


def test_as_dict_records_every_field_as_json():
    for profile in PROFILES.values():
        record = profile.as_dict()
        assert set(record) == {f.name for f in dataclasses.fields(ScoringProfile)}
        assert json.loads(json.dumps(record)) == record


def test_unknown_profile_lists_valid_names():
    with pytest.raises(ValueError, match=r"unknown scoring profile 'x'; valid: segdino, medical-native, mirror"):
        get_profile("x")
    assert get_profile(PROFILES["mirror"]) is PROFILES["mirror"]


def test_profiles_are_frozen_and_validated():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PROFILES["segdino"].threshold = 0.4
    with pytest.raises(ValueError, match="hd95='hd100'"):
        dataclasses.replace(PROFILES["segdino"], hd95="hd100")
    with pytest.raises(ValueError, match="unknown metrics"):
        dataclasses.replace(PROFILES["segdino"], metrics=("dice", "f1"))
    with pytest.raises(ValueError, match="resolution"):
        dataclasses.replace(PROFILES["segdino"], resolution="half")


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_profile_scores_a_tiny_set(name):
    # a 2-image set incl. an empty mask: the summary has exactly the profile's metrics, all numbers
    gt = np.zeros((16, 16), bool)
    gt[4:10, 3:12] = True
    scorer = Scorer(name)
    row = scorer.add("a", np.where(gt, 0.9, 0.1), gt)
    assert list(row)[:5] == ["key", "tp", "fp", "fn", "tn"] and list(row)[5:] == list(PROFILES[name].metrics)
    scorer.add("b", np.zeros((16, 16)), np.zeros((16, 16), bool))
    summary = scorer.summary()
    assert list(summary["metrics"]) == list(PROFILES[name].metrics)
    assert summary["convention"] == PROFILES[name].as_dict()
    assert summary["counts"]["n_images"] == 2 and summary["counts"]["both_empty"] == 1
    assert all(isinstance(v, float) for v in summary["metrics"].values())
