"""Segmentation metrics under named scoring profiles (counts first, reductions second; REFERENCE.md §5).

    from benchmark.metrics import get_profile, Scorer
    scorer = Scorer(get_profile("segdino"))
    scorer.add("case_001", prob, gt)      # per-image row
    scorer.summary()                      # {"profile", "convention", "metrics", "counts"}
"""

from benchmark.metrics.counts import (
    Counts,
    accuracy,
    binarise,
    class_counts,
    confusion_counts,
    dice,
    iou,
    precision,
    recall,
    safe_ratio,
)
from benchmark.metrics.profiles import (
    LOWER_IS_BETTER,
    METRIC_NAMES,
    PROFILES,
    ScoringProfile,
    get_profile,
)
from benchmark.metrics.saliency import (
    ber,
    fbeta_curve,
    mae,
    max_fbeta,
    mean_fbeta,
    pr_curve,
)
from benchmark.metrics.score import (
    Scorer,
    pair_files,
    read_mask,
    read_prediction,
    score_directories,
    score_split,
)
from benchmark.metrics.surface import (
    boundary,
    hd95,
    hd95_all,
    image_diagonal,
    penalise_inf,
    surface_distances,
)

__all__ = [
    "LOWER_IS_BETTER",
    "METRIC_NAMES",
    "PROFILES",
    "Counts",
    "Scorer",
    "ScoringProfile",
    "accuracy",
    "ber",
    "binarise",
    "boundary",
    "class_counts",
    "confusion_counts",
    "dice",
    "fbeta_curve",
    "get_profile",
    "hd95",
    "hd95_all",
    "image_diagonal",
    "iou",
    "mae",
    "max_fbeta",
    "mean_fbeta",
    "pair_files",
    "penalise_inf",
    "pr_curve",
    "precision",
    "read_mask",
    "read_prediction",
    "recall",
    "safe_ratio",
    "score_directories",
    "score_split",
    "surface_distances",
]
