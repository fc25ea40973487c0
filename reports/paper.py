"""The SegDINO paper's reported numbers (arXiv 2509.00833 v1), as data.

Transcribed from REFERENCE.md §3. Every value keeps the paper's own rounding and is tied to the dataset key and
metric name segbench records (`docs/run_records.md`), so a report can place the paper's rows beside ours.
Reported baselines are the paper's *own* models (e.g. its U-Net is a CNN trained from scratch), not our decoders
on the frozen backbone; their display names keep the paper's spelling so the two are never confused.

Table 3 (VMD-D) exists only as a garbled text copy: its baseline rows are marked unverified and SegDINO's row is
missing (the text claims more than 19% relative IoU over VMD-Net's 0.567, i.e. roughly IoU >= 0.675).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

PAPER = "SegDINO (arXiv 2509.00833 v1)"
SEGDINO = "SegDINO"  # the paper's row name for its own model


@dataclass(frozen=True)
class ReportedTable:
    """One results table of the paper: which datasets, which scoring profile and metrics, and its rows."""

    key: str  # "table1" ...
    number: int
    datasets: tuple[str, ...]
    profile: str  # the segbench scoring profile whose conventions match the paper's table (REFERENCE.md §5)
    metrics: tuple[str, ...]
    rows: dict[str, tuple[float | None, ...]]  # method -> values, dataset-major then metric (None = missing)
    verified: bool = True
    note: str = ""
    # a second Δ row under another profile, for the metrics whose convention the literature does not settle
    alt_profile: str | None = None
    alt_metrics: tuple[str, ...] = ()

    def values(self, method: str) -> dict[tuple[str, str], float | None]:
        """`{(dataset, metric): value}` for one reported method."""
        cells = [(d, m) for d in self.datasets for m in self.metrics]
        return dict(zip(cells, self.rows[method]))


_T1_METRICS = ("dice", "iou", "hd95")
TABLE1 = ReportedTable(
    key="table1",
    number=1,
    datasets=("tn3k", "kvasir", "isic2017"),
    profile="segdino",
    metrics=_T1_METRICS,
    rows={
        "U-Net": (0.7945, 0.7065, 24.59, 0.7916, 0.7029, 41.58, 0.8187, 0.7295, 25.12),
        "SegNet": (0.7924, 0.7001, 22.74, 0.8415, 0.7565, 25.89, 0.8327, 0.7446, 21.41),
        "R2U-Net": (0.6886, 0.5935, 27.89, 0.7367, 0.6328, 45.64, 0.8102, 0.7134, 25.36),
        "Att-UNet": (0.8015, 0.7116, 24.64, 0.8016, 0.7202, 31.92, 0.8275, 0.7372, 26.12),
        "TransUNet": (0.8027, 0.7081, 23.95, 0.8054, 0.7093, 37.67, 0.8186, 0.7230, 24.76),
        "U-NeXt": (0.7285, 0.6245, 31.40, 0.6271, 0.5164, 58.32, 0.8230, 0.7327, 23.63),
        "U-KAN": (0.7866, 0.6960, 24.49, 0.7217, 0.6381, 36.92, 0.8341, 0.7462, 23.57),
        SEGDINO: (0.8318, 0.7443, 18.62, 0.8765, 0.8064, 20.80, 0.8576, 0.7760, 17.80),
    },
    note="The paper's rows: 256x256, per-image means; HD95 in pixels of the 256 grid.",
)

TABLE2 = ReportedTable(
    key="table2",
    number=2,
    datasets=("msd",),
    profile="mirror",
    metrics=("iou", "acc", "max_fbeta", "mae"),
    rows={
        "SegFormer": (0.879, 0.953, 0.915, 0.038),
        "Mask2Former": (0.883, 0.958, 0.917, 0.036),
        "MirrorNet": (0.845, 0.948, 0.892, 0.044),
        "PMDNet": (0.847, 0.952, 0.898, 0.033),
        "VCNet": (0.884, 0.958, 0.917, 0.029),
        "SANet": (0.871, 0.951, 0.914, 0.032),
        "HetNet": (0.888, 0.964, 0.918, 0.030),
        "CSFwinformer": (0.875, 0.960, 0.918, 0.032),
        SEGDINO: (0.942, 0.985, 0.971, 0.015),
    },
)

TABLE3 = ReportedTable(
    key="table3",
    number=3,
    datasets=("vmd",),
    profile="mirror",
    metrics=("iou", "acc", "max_fbeta", "mae"),
    rows={
        "TVSD": (0.480, 0.875, 0.746, 0.125),
        "STICT": (0.164, 0.809, 0.530, 0.198),
        "Sc-Cor": (0.512, 0.863, 0.696, 0.137),
        "Scotch-Soda": (0.587, 0.870, 0.706, 0.124),
        SEGDINO: (None, None, None, None),
    },
    verified=False,
    note=(
        "Only a garbled text copy of this table exists: rows unverified; SegDINO's row is missing "
        "(the text claims >19% relative IoU over VMD-Net's 0.567, i.e. IoU of roughly 0.675 or more)."
    ),
)

TABLE4 = ReportedTable(
    key="table4",
    number=4,
    datasets=("visha",),
    profile="shadow",
    metrics=("iou", "max_fbeta", "mae", "ber", "s_ber", "n_ber"),
    rows={
        "STM": (0.408, 0.598, 0.069, 25.69, 47.44, 3.95),
        "COS-Net": (0.515, 0.706, 0.040, 20.51, 39.22, 1.79),
        "MTMT": (0.517, 0.729, 0.043, 20.29, 38.71, 1.86),
        "FSD": (0.486, 0.671, 0.057, 20.57, 38.06, 3.06),
        "TVSD": (0.556, 0.757, 0.033, 17.70, 33.97, 1.45),
        "STICT": (0.545, 0.702, 0.046, 16.60, 29.58, 3.59),
        "Sc-Cor": (0.615, 0.762, 0.042, 13.61, 24.31, 2.91),
        "Scotch-Soda": (0.640, 0.793, 0.029, 9.06, 16.26, 1.44),
        "SATNet": (0.521, 0.730, 0.046, 21.18, 38.64, 3.02),
        "CSFwinformer": (0.525, 0.733, 0.040, 20.01, 36.54, 1.99),
        "VGSD-Net": (0.548, 0.733, 0.052, 19.98, 35.24, 3.67),
        "TBG-Diff": (0.667, 0.797, 0.023, 8.58, 16.00, 1.15),
        SEGDINO: (0.675, 0.821, 0.017, 8.05, 14.90, 0.82),
    },
    note=(
        "BER, S-BER and N-BER in percent. Ours: BER accumulated over the test set; the ViSha/TVSD "
        "evaluation code averages them per frame instead, which is profile shadow-per-frame (its own table, and "
        "the second Δ row)."
    ),
    alt_profile="shadow-per-frame",
    alt_metrics=("ber", "s_ber", "n_ber"),
)

TABLES: dict[str, ReportedTable] = {t.key: t for t in (TABLE1, TABLE2, TABLE3, TABLE4)}

# The paper reports no FLOPs; FPS is measured on a GPU with batch size and resolution not stated (REFERENCE.md §3).
EFFICIENCY = {
    "method": SEGDINO,
    "backbone": "dinov3_vits16",
    "trainable_params": 2.21e6,
    "fps": 53.0,
    "note": "GPU; batch size and input resolution not stated; no FLOPs reported",
}


# The paper's recipe as segbench's `paper` preset resolves it (benchmark/config.py, REFERENCE.md §2), flattened,
# without the settings runs may differ in (reports.load.SHARED_SETTINGS): a run that differs in one of these is
# no reproduction. A copy, as reports imports no benchmark code; tests/test_reports_tables.py compares the two.
RECIPE = {
    "backbone.name": "dinov3_vits16",
    "data.size": 256,
    "data.subset": None,
    "data.val_fraction": 0.1,
    "data.skip_bad": False,
    "data.num_classes": None,
    "optim.lr": 1e-4,
    "optim.weight_decay": 1e-4,
    "train.epochs": 50,
    "train.batch_size": 4,
    "train.freeze_backbone": True,
    "train.selection_split": "val",
    "train.drop_last": False,
    "train.amp_dtype": None,
    "run.preset": "paper",
}
# What each of segbench's presets changes in the paper's recipe (benchmark.config.PRESETS; a copy, compared by the
# same test), so a caption can name the settings in which runs differ from their own preset (`preset_recipe`).
PRESET_CHANGES = {
    "paper": {},
    "public-code": {"train.freeze_backbone": False, "train.selection_split": "test", "train.batch_size": 8,
                    "train.drop_last": True},
    "smoke": {"backbone.name": "test", "train.epochs": 12, "train.batch_size": 8, "optim.lr": 3e-4},
}
# Settings of the `paper` preset that are segbench's means, not the paper's recipe: a run may change them and still
# reproduce it (they still separate recipes within a report, as they can move a number slightly).
NOT_RECIPE = {
    "train.feature_cache": "frozen features cached in half precision, or computed every step as the paper's code "
                           "does: the paper's recipe either way (docs/conventions.md)",
}


def preset_recipe(preset: str) -> dict | None:
    """A preset's settings as RECIPE holds the paper's; None for a preset this copy does not know."""
    if preset not in PRESET_CHANGES:
        return None
    return {**RECIPE, **PRESET_CHANGES[preset], "run.preset": preset}


def table_for(dataset: str) -> ReportedTable | None:
    """The paper table that reports `dataset`, or None for datasets the paper does not cover."""
    for table in TABLES.values():
        if dataset in table.datasets:
            return table
    return None


def reported_frame() -> pd.DataFrame:
    """All reported values as a tidy frame: table, dataset, profile, method, metric, value, verified.

    Missing values (SegDINO on VMD-D) are rows with value NaN, so "not reported" is explicit, never zero.
    """
    rows = []
    for table in TABLES.values():
        for method in table.rows:
            for (dataset, metric), value in table.values(method).items():
                rows.append(
                    {
                        "table": table.key,
                        "dataset": dataset,
                        "profile": table.profile,
                        "method": method,
                        "metric": metric,
                        "value": float("nan") if value is None else float(value),
                        "verified": table.verified,
                    }
                )
    return pd.DataFrame(rows)
