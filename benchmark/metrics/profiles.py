"""Named scoring profiles: every convention that changes a metric's number, as one frozen record.

A profile is recorded next to every number it produced (metrics.json "convention"), so two numbers can only
be compared when their profiles agree. The conventions and their sources are in REFERENCE.md §5.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

# Metric names of docs/run_records.md, in the order rows and summaries list them.
METRIC_NAMES = (
    "dice", "iou", "hd95", "hd95_monai", "hd95_penalised", "acc", "acc_mirror", "max_fbeta", "mean_fbeta",
    "mae", "mae_minmax", "ber", "s_ber", "n_ber", "precision", "recall",
)
LOWER_IS_BETTER = frozenset({"hd95", "hd95_monai", "hd95_penalised", "mae", "mae_minmax", "ber", "s_ber", "n_ber"})
HD95_METRICS = frozenset({"hd95", "hd95_monai", "hd95_penalised"})
FBETA_METRICS = frozenset({"max_fbeta", "mean_fbeta"})
BER_METRICS = frozenset({"ber", "s_ber", "n_ber"})
# Metrics that need a single foreground probability map; they are undefined for multi-class scoring.
SALIENCY_METRICS = FBETA_METRICS | BER_METRICS | {"mae", "mae_minmax", "acc_mirror"}

_CHOICES = {
    "resolution": ("network", "native"),
    "empty_rule": ("eps", "zero", "one"),
    "hd95": ("pooled", "monai"),
    "hd95_inf": ("drop", "keep", "penalise"),
    "hd95_penalty": ("diagonal",),
    "hd95_boundary": ("xor-erosion-connectivity-1",),
    "ber_reduction": ("accumulated", "per-image"),
    "ber_absent_class": ("perfect", "nan"),
    "fbeta_curve": ("mean-pr", "mean-f"),
    "mae_normalise": ("none",),
}


@dataclass(frozen=True)
class ScoringProfile:
    """Every convention a score depends on. Field meanings:

    resolution: grid the arrays were scored on ("network" = the model's input size, "native" = the dataset's
        image size). The Scorer scores what it is given; this records what the caller resized to.
    threshold: a pixel is foreground iff prob > threshold (strict: exactly 0.5 is background, REFERENCE.md §5).
    empty_rule: Dice/IoU/precision/recall when a ratio is 0/0. "eps": (num+eps)/(den+eps), so both-empty
        scores 1.0 (SegDINO code); "zero": 0 (MirrorNet-family compute_iou: 0 when either mask is empty);
        "one": 0/0 is 1, otherwise the exact ratio (medpy's jc, used by the ViSha/TVSD evaluation).
    hd95: what the metric "hd95" means: "pooled" = 95th percentile of the pooled boundary distances of both
        directions (medpy, SegDINO code); "monai" = max of the two directed 95th percentiles.
    hd95_inf: how the summary mean of hd95/hd95_monai treats a one-side-empty image (inf): "drop" it (public
        code), "keep" it (the mean becomes inf) or "penalise" it (use hd95_penalty).
    hd95_penalty: value used for inf in hd95_penalised: "diagonal" = sqrt(H² + W²) of the scored grid.
    ber_reduction: "accumulated" sums TP, TN, Np, Nn over the set before dividing (REFERENCE.md §5);
        "per-image" averages per-image BER (MirrorNet and ViSha/TVSD evaluation code; the video shadow papers
        that reuse TVSD's evaluate.py, whose rows fill the paper's Table 4, average per frame too).
    ber_absent_class: per-image TP/Np when Np = 0 (or TN/Nn when Nn = 0): "perfect" counts it as 1,
        "nan" leaves it undefined and the per-image mean skips it (TVSD's code divides by zero there, which
        would make its whole mean NaN; skipping is the nearest defined reading).
    fbeta_*: β² (0.3), number of thresholds k/(n-1), k = 0..n-1 (a pixel is positive iff prob > threshold),
        eps added to TP and to the denominators of per-image P and R (1e-4, as the saliency evaluation code),
        and the curve whose max/mean is reported: "mean-pr" = F of the image-averaged P and R per threshold
        (REFERENCE.md §5), "mean-f" = image-averaged per-image F curves (PySODMetrics).
    mae_normalise: "none": MAE on the probabilities as given (no min-max rescaling of the prediction).

    Two metrics restate the MirrorNet evaluation code (misc.py) where it departs from REFERENCE.md §5, for the
    mirror tables: "acc_mirror" is its compute_acc_mirror, TP / Np per image (a recall; NaN, so skipped in the mean,
    without mirror pixels), and "mae_minmax" its MAE of the min-max rescaled prediction (rescaled when max > min).
    Table 2's Acc and MAE are `acc` (pixel accuracy) and `mae` (raw), as REFERENCE.md §5 defines them.
    """

    name: str
    description: str
    metrics: tuple[str, ...]
    resolution: str
    threshold: float = 0.5
    empty_rule: str = "eps"
    eps: float = 1e-6
    hd95: str = "pooled"
    hd95_inf: str = "drop"
    hd95_penalty: str = "diagonal"
    hd95_boundary: str = "xor-erosion-connectivity-1"
    ber_reduction: str = "accumulated"
    ber_absent_class: str = "perfect"
    fbeta_beta2: float = 0.3
    fbeta_thresholds: int = 256
    fbeta_eps: float = 1e-4
    fbeta_curve: str = "mean-pr"
    mae_normalise: str = "none"

    def __post_init__(self) -> None:
        for field, choices in _CHOICES.items():
            value = getattr(self, field)
            if value not in choices:
                raise ValueError(f"profile '{self.name}': {field}={value!r}; valid: {', '.join(choices)}")
        unknown = [m for m in self.metrics if m not in METRIC_NAMES]
        if unknown or not self.metrics:
            raise ValueError(f"profile '{self.name}': unknown metrics {unknown}; valid: {', '.join(METRIC_NAMES)}")
        if not 0.0 <= self.threshold < 1.0:
            raise ValueError(f"profile '{self.name}': threshold must be in [0, 1), got {self.threshold}")
        if self.fbeta_thresholds < 2:
            raise ValueError(f"profile '{self.name}': fbeta_thresholds must be >= 2")

    def as_dict(self) -> dict:
        """Every field as plain JSON types, for metrics.json "convention"."""
        out = dataclasses.asdict(self)
        out["metrics"] = list(self.metrics)
        return out


_MEDICAL = ("dice", "iou", "hd95", "hd95_monai", "hd95_penalised", "precision", "recall")

PROFILES: dict[str, ScoringProfile] = {
    p.name: p
    for p in (
        ScoringProfile(
            name="segdino",
            description="SegDINO public code: the run's network grid (256x256 in the paper), >0.5, eps 1e-6, medpy "
                        "HD95",
            metrics=_MEDICAL,
            resolution="network",
        ),
        ScoringProfile(
            name="medical-native",
            description="the segdino metrics at each image's native size",
            metrics=_MEDICAL,
            resolution="native",
        ),
        ScoringProfile(
            name="mirror",
            description="mirror literature (MirrorNet-family code): native size, max-F, per-image BER",
            metrics=("iou", "acc", "max_fbeta", "mean_fbeta", "mae", "ber", "acc_mirror", "mae_minmax"),
            resolution="native",
            empty_rule="zero",
            ber_reduction="per-image",
        ),
        ScoringProfile(
            name="shadow",
            description="shadow literature: native size, max-F, BER accumulated over the set",
            metrics=("iou", "max_fbeta", "mae", "ber", "s_ber", "n_ber"),
            resolution="native",
            empty_rule="one",
            ber_reduction="accumulated",
        ),
        ScoringProfile(
            name="shadow-per-frame",
            description=("ViSha/TVSD evaluation code (evaluate.py: AvgMeter per frame): the shadow metrics with "
                         "BER, S-BER and N-BER averaged over frames"),
            metrics=("iou", "max_fbeta", "mae", "ber", "s_ber", "n_ber"),
            resolution="native",
            empty_rule="one",
            ber_reduction="per-image",
            ber_absent_class="nan",
        ),
    )
}


def get_profile(name: str | ScoringProfile) -> ScoringProfile:
    """The profile registered under `name` (a ScoringProfile passes through); unknown names list valid ones."""
    if isinstance(name, ScoringProfile):
        return name
    try:
        return PROFILES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown scoring profile {name!r}; valid: {', '.join(PROFILES)}") from None
