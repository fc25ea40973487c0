"""How keys are shown in tables and figures: method, dataset and metric labels, decimals, file-safe names.

One place for these conventions, so a table and a figure of the same run never label or round differently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reports import paper
from reports.table_render import tex

METHOD_NAMES = {"segdino": "SegDINO", "unet": "UNet", "upernet": "UPerNet", "dpt": "DPT"}
DATASET_NAMES = {
    "tn3k": "TN3K", "kvasir": "Kvasir-SEG", "isic2017": "ISIC 2017", "msd": "MSD", "vmd": "VMD-D", "visha": "ViSha",
}


@dataclass(frozen=True)
class Metric:
    plain: str  # label in Markdown/figures (Unicode allowed)
    latex: str  # label in LaTeX
    lower_better: bool
    unit: str  # "" for values in [0, 1]


METRICS: dict[str, Metric] = {
    "dice": Metric("DSC", "DSC", False, ""),
    "iou": Metric("IoU", "IoU", False, ""),
    "hd95": Metric("HD95", "HD95", True, "px"),
    "hd95_monai": Metric("HD95 (MONAI)", "HD95\\textsubscript{MONAI}", True, "px"),
    "hd95_penalised": Metric("HD95 (pen.)", "HD95\\textsubscript{pen}", True, "px"),
    "acc": Metric("Acc", "Acc", False, ""),
    "acc_mirror": Metric("Acc (TP/Np)", "Acc$_{TP/N_p}$", False, ""),
    "max_fbeta": Metric("max Fβ", "$F_\\beta^{\\max}$", False, ""),
    "mean_fbeta": Metric("mean Fβ", "$F_\\beta^{\\mathrm{mean}}$", False, ""),
    "mae": Metric("MAE", "MAE", True, ""),
    "mae_minmax": Metric("MAE (min-max)", "MAE$_{\\mathrm{mm}}$", True, ""),
    "ber": Metric("BER", "BER", True, "%"),
    "s_ber": Metric("S-BER", "S-BER", True, "%"),
    "n_ber": Metric("N-BER", "N-BER", True, "%"),
    "precision": Metric("Precision", "Precision", False, ""),
    "recall": Metric("Recall", "Recall", False, ""),
}
# the mirror/shadow literature prints 3 decimals (paper Tables 2-4)
SALIENCY_PROFILES = ("mirror", "shadow", "shadow-per-frame")


def display_method(key: str) -> str:
    """segdino -> SegDINO, unet-small -> UNet (small); unknown keys as they are."""
    base, small = (key[: -len("-small")], True) if key.endswith("-small") else (key, False)
    name = METHOD_NAMES.get(base, base)
    return f"{name} (small)" if small and base in METHOD_NAMES else (name if not small else key)


def display_dataset(key: str) -> str:
    """kvasir -> Kvasir-SEG; a folder dataset's key (reports.load.data_key, "folder/mydata") -> folder (mydata)."""
    base, _, name = key.partition("/")
    shown = DATASET_NAMES.get(base, base)
    return f"{shown} ({name})" if name else shown


def metric_info(name: str) -> Metric:
    """Known metrics by name; unknown ones are shown as-is, higher-is-better, no unit."""
    return METRICS.get(name, Metric(name, tex(name), False, ""))


def metric_order(name: str) -> tuple[int, str]:
    names = list(METRICS)
    return (names.index(name), "") if name in names else (len(names), name)


def decimals(metric: str, profile: str) -> int:
    if metric.startswith("hd95") or metric.endswith("ber"):
        return 2
    if metric.startswith("mae"):
        return 4
    return 3 if profile in SALIENCY_PROFILES else 4


def reported_decimals(metric: str, table: paper.ReportedTable) -> int:
    if metric.startswith("hd95") or metric.endswith("ber"):
        return 2
    return 4 if table.key == "table1" else 3


def plural(n: int, noun: str) -> str:
    """"1 run", "2 runs": counts in captions and documents read as English."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def file_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text)
