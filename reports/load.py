"""Run directories -> pandas frames (the only place `reports` reads run records).

Reads the layout of `docs/run_records.md` (schema 1). A run is used only when it is complete (has `DONE`) and
every JSON file it holds parses and agrees with its directory name; anything else is listed in `Runs.skipped`
with the reason, never silently used or silently dropped. Numbers stay raw: rounding happens in `labels.py`
(decimals) and `table_render.py` (formatting).

A run directory's name holds no size, epochs or `--set` values, so one runs directory can hold seeds trained with
different settings. Each run's `recipe` names the settings of its config.yaml that set it apart from the other
runs of its backbone and preset ("" when they all agree); runs are averaged and compared only within a recipe.

A `folder` dataset is the user's own folder, and every folder's runs sit under `RUNS_DIR/folder/`: `data_name` (its
folder's name, from config.yaml's data.root) tells them apart, and tables and figures treat each folder as a dataset
of its own (`data_key`: "folder/mydata", shown as "folder (mydata)"), so two folders are never averaged together.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

SCHEMA = 1
RUN_NAME = re.compile(r"^(?P<method>.+?)__(?P<backbone>.+?)__(?P<preset>.+?)__s(?P<seed>\d+)$")
# a run's identity: its directory's, and a folder dataset's folder name (data_name; empty for the named datasets)
ID_COLUMNS = ["dataset", "data_name", "method", "backbone", "preset", "seed"]
# results.csv: the columns docs/run_records.md names, then extras, then one column per <profile>/<metric>.
RESULT_COLUMNS = ID_COLUMNS + [
    "selected_epoch", "train_seconds", "trainable_params", "frozen_params", "total_gflops",
]
EXTRA_COLUMNS = [
    "decoder_gflops", "backbone_gflops", "total_gmacs", "flops_tool", "input_size",
    "latency_device", "latency_dtype", "batch1_ms", "throughput_img_s", "throughput_batch", "weights",
    "weights_sha256", "run", "recipe", "val_rule", "val_share",
]
# Config keys (benchmark/config.py, flattened) in which runs averaged or compared in one table may differ; a
# difference in any other setting puts runs into separate recipes.
SHARED_SETTINGS = (
    "train.seed",                # the seed: what a mean over seeds averages over
    "decoder.name",              # the method: the rows of a table
    "data.dataset",              # the dataset: the columns of a table, never averaged over
    "train.device",              # where it ran (auto, cpu, cuda:1), not what was trained (as benchmark.train)
    "train.num_workers",         # image-decoding threads: the same arrays in the same order
    "train.features_on_device",  # where cached features are held: the same numbers (docs/design_notes.md)
    "train.compile",             # torch.compile of the decoder: an execution setting (docs/design_notes.md)
    "train.checkpoint_every_s",  # how often it checkpoints: a resumed run ends with the same numbers
    "eval.profiles",             # which profiles were scored: each number is recorded with its profile
    "eval.n_samples",            # test images saved for the qualitative figure, not scored
    "data.root",                 # where the data is (an absolute path, one per machine)
    "data.cache_dir",            # where the caches are (keyed by content, so a location changes no number)
    "run.runs_dir",              # where the run directory is
    "backbone.weights",          # a path; the weights themselves are told apart by env.json's weights_sha256
)
# The sections every config.yaml segbench has written holds (benchmark.records.CONFIG_SECTIONS; tests check they
# agree): a file without one was cut short, though it may still parse. Sections added later must not join it.
CONFIG_SECTIONS = ("backbone", "decoder", "data", "optim", "train", "eval", "run")
# Settings that belong to the method (a decoder's own options, e.g. its widths): runs of different methods differ in
# them by design, so they are compared among the runs of one method only.
METHOD_SETTINGS = ("decoder.options",)
IMPORTED = ("an imported checkpoint (`segbench import-checkpoint`): imported runs are not reported, since the tables "
            "hold runs segbench trained; `segbench evaluate` prints its scores")
# Canonical row order for methods; unknown methods follow alphabetically.
METHOD_ORDER = ["segdino", "unet", "upernet", "dpt", "unet-small", "upernet-small", "dpt-small"]
DATASET_ORDER = ["tn3k", "kvasir", "isic2017", "msd", "vmd", "visha"]


class RunError(ValueError):
    """A run directory that cannot be used; the message is the reason shown to the user."""


@dataclass(frozen=True)
class Skipped:
    run: str  # path relative to the runs directory
    reason: str


@dataclass
class Runs:
    """Everything read from one runs directory.

    wide: one row per used run (the columns of results.csv). tidy: one row per run x profile x metric with the raw
    value. counts: one row per run x profile x count (n_images, hd95_inf, ...). conventions: one row per run x
    profile with the scoring convention as sorted JSON, so a table can say which conventions it mixes (none, normally).
    """

    root: Path
    wide: pd.DataFrame
    tidy: pd.DataFrame
    counts: pd.DataFrame
    conventions: pd.DataFrame
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[Skipped] = field(default_factory=list)  # used runs with a remark (e.g. no profile.json)
    # per used run: its config.yaml settings without SHARED_SETTINGS (None: no config.yaml), as `run_settings`
    settings: dict[str, dict | None] = field(default_factory=dict)

    @property
    def run_dirs(self) -> list[Path]:
        return [self.root / r for r in self.wide["run"]] if len(self.wide) else []


def method_sort_key(method: str) -> tuple[int, str]:
    return (METHOD_ORDER.index(method), "") if method in METHOD_ORDER else (len(METHOD_ORDER), method)


def dataset_sort_key(dataset: str) -> tuple[int, str]:
    return (DATASET_ORDER.index(dataset), "") if dataset in DATASET_ORDER else (len(DATASET_ORDER), dataset)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(f"{path.name} is unreadable ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise RunError(f"{path.name} does not hold a JSON object")
    return data


def _number(value, what: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RunError(f"metrics.json: {what} is {value!r}, not a number")
    return float(value)


def _looks_like_run(path: Path) -> bool:
    # model.pt: an imported checkpoint has no metrics.json until `segbench evaluate` scores it
    return bool(RUN_NAME.match(path.name)) or any((path / f).exists() for f in ("metrics.json", "DONE", "model.pt"))


def _imported(path: Path) -> bool:
    return (path / "env.json").exists() and "imported_from" in _read_json(path / "env.json")


def _misplaced(path: Path, where: str) -> Skipped:
    """A run directory where a runs directory or a dataset folder should be (`segbench report` reads
    RUNS_DIR/<dataset>/<run>/): what it is, so the user learns why nothing of it is reported."""
    try:
        reason = IMPORTED if _imported(path) else (f"a run directory {where}; `segbench report` reads "
                                                   "RUNS_DIR/<dataset>/<run>/")
    except RunError as exc:
        reason = str(exc)
    return Skipped(path.name or str(path), reason)


def setting_text(value) -> str:
    """A config value as `--set` takes it: none, true/false, 256 (not 256.0), 0.0001, compact JSON for the rest."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def run_settings(run_dir: Path) -> dict | None:
    """The settings of a run's config.yaml, flattened (`data.size`), without SHARED_SETTINGS; None without one.

    `data.skip_bad` counts only where it skipped a sample (skipped.json), as `benchmark.train.check_same_config`
    reads it: otherwise the same samples trained as without it.
    """
    flat = _flat_config(run_dir)
    return None if flat is None else {k: v for k, v in flat.items() if k not in SHARED_SETTINGS}


def data_name(config: dict | None) -> str:
    """A `folder` dataset's folder name (the last part of its data.root, as `benchmark.train` tells two folders
    apart); "" for the named datasets, whose key names them, and where no config.yaml recorded it."""
    if not config or config.get("data.dataset") != "folder" or not config.get("data.root"):
        return ""
    return Path(str(config["data.root"])).name


def data_key(dataset: str, name) -> str:
    """The dataset a table column or figure stands for: "folder/mydata" for a folder dataset, else its key."""
    return f"{dataset}/{name}" if isinstance(name, str) and name else dataset


def by_data(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with each row's dataset as `data_key` (a frame of load_runs), so each folder is a dataset of its own."""
    if frame.empty or "data_name" not in frame:
        return frame
    return frame.assign(dataset=[data_key(d, n) for d, n in zip(frame["dataset"], frame["data_name"])])


def _flat_config(run_dir: Path) -> dict | None:
    """Every setting of a run's config.yaml, flattened and normalised as `run_settings` says; None without one."""
    path = run_dir / "config.yaml"
    if not path.exists():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RunError(f"config.yaml is unreadable ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise RunError("config.yaml does not hold a mapping of sections")
    if missing := [name for name in CONFIG_SECTIONS if not isinstance(data.get(name), dict)]:
        raise RunError(f"config.yaml is missing its {', '.join(missing)} section{'s' * (len(missing) > 1)} "
                       "(cut short?)")
    flat = {f"{s}.{k}": v for s, values in data.items() if isinstance(values, dict) for k, v in values.items()}
    if not (run_dir / "skipped.json").exists():
        flat["data.skip_bad"] = False
    if flat.get("train.amp_dtype") in ("", "none", "float32"):   # no autocast, as benchmark.train reads each
        flat["train.amp_dtype"] = None
    return flat


def read_run(run_dir: Path, dataset: str) -> tuple[dict, list[dict], list[dict], list[dict], list[str], dict | None]:
    """Read one run directory; raise RunError with the reason when it cannot be used.

    Returns (wide row, tidy rows, count rows, convention rows, notes, settings as `run_settings`).
    """
    if ".corrupt-" in run_dir.name:
        raise RunError("a corrupt run directory that `segbench run` moved aside and redid (kept for inspection)")
    if _imported(run_dir):
        raise RunError(IMPORTED)
    name = RUN_NAME.match(run_dir.name)
    if not name:
        raise RunError("directory name is not <method>__<backbone>__<preset>__s<seed>")
    if not (run_dir / "DONE").exists():
        failed = (run_dir / "FAILED").read_text(errors="replace").splitlines()[:1] if (run_dir / "FAILED").is_file() \
            else []
        raise RunError(f"failed at {failed[0]} (traceback in FAILED; fix, then run it again)" if failed else
                       "no DONE file (run incomplete, failed or still running)")
    if not (run_dir / "metrics.json").exists():
        raise RunError("DONE present but metrics.json missing")
    metrics = _read_json(run_dir / "metrics.json")
    if metrics.get("schema") != SCHEMA:
        raise RunError(f"metrics.json schema {metrics.get('schema')!r}; this reader knows schema {SCHEMA}")
    ident = {"dataset": dataset, **name.groupdict()}
    ident["seed"] = int(ident["seed"])
    for key, expected in ident.items():
        if key in metrics and metrics[key] != expected:
            raise RunError(f"metrics.json says {key}={metrics[key]!r} but the directory says {expected!r}")
    profiles = metrics.get("profiles")
    if not isinstance(profiles, dict) or not profiles:
        raise RunError("metrics.json has no profiles")

    notes = []
    config = _flat_config(run_dir)
    settings = None if config is None else {k: v for k, v in config.items() if k not in SHARED_SETTINGS}
    ident = {"dataset": dataset, "data_name": data_name(config)} | ident   # data_name after dataset, in every frame
    if settings is None:
        notes.append("no config.yaml: its settings are unknown, so it shares tables only with runs without one")
    profile_json = run_dir / "profile.json"
    prof = _read_json(profile_json) if profile_json.exists() else None
    if prof is None:
        notes.append("no profile.json: parameters, FLOPs and latency left empty")
    env = _read_json(run_dir / "env.json") if (run_dir / "env.json").exists() else None
    if env is None:
        notes.append("no env.json: backbone weights unknown")

    rel = f"{dataset}/{run_dir.name}"
    wide = {**ident, "selected_epoch": metrics.get("selected_epoch"), "train_seconds": metrics.get("train_seconds")}
    wide.update(_profile_columns(prof))
    if env is not None:   # None: random initialisation; a path, or hub:NAME
        wide.update(weights=env.get("weights") or "random", weights_sha256=env.get("weights_sha256"))
        if settings is not None:   # the weights by content: one file reached by two paths is one set of weights
            sha = env.get("weights_sha256")
            settings["backbone.weights"] = f"sha256:{sha[:12]}" if isinstance(sha, str) and sha else wide["weights"]
    wide["run"] = rel
    wide.update(_validation(run_dir))
    tidy, counts, conventions = [], [], []
    for profile, block in profiles.items():
        if not isinstance(block, dict) or not isinstance(block.get("metrics"), dict):
            raise RunError(f"metrics.json: profile {profile!r} has no metrics object")
        for metric, value in block["metrics"].items():
            value = _number(value, f"{profile}/{metric}")
            tidy.append({**ident, "profile": profile, "metric": metric, "value": value, "run": rel})
            wide[f"{profile}/{metric}"] = value
        for count, value in (block.get("counts") or {}).items():
            value = _number(value, f"{profile} count {count}")
            counts.append({**ident, "profile": profile, "count": count, "value": value, "run": rel})
            wide[f"{profile}/count.{count}"] = value
        convention = json.dumps(block.get("convention") or {"name": profile}, sort_keys=True)
        conventions.append({**ident, "profile": profile, "convention": convention, "run": rel})
    return wide, tidy, counts, conventions, notes, settings


def _validation(run_dir: Path) -> dict:
    """How the run's validation split was made (split.json's rule) and its share of the training images: the paper's
    code trains on all of them, so this is what a reader needs to weigh a reproduction."""
    try:
        split = _read_json(run_dir / "split.json")
        rule = str(split["validation_rule"])
        # selecting on the test split (the public code's choice), or not at all, holds nothing out of training
        share = 0.0 if "test split" in rule or rule.startswith("no selection") else (
            len(split["val"]) / (len(split["train"]) + len(split["val"])))
        return {"val_rule": rule, "val_share": share}
    except (OSError, RunError, KeyError, TypeError, ZeroDivisionError):
        return {}


def _profile_columns(prof: dict | None) -> dict:
    if prof is None:
        return {}
    flops = prof.get("flops") or {}
    latency = prof.get("latency") or {}
    size = prof.get("input_size")
    return {
        "trainable_params": prof.get("trainable_params"),
        "frozen_params": prof.get("frozen_params"),
        "total_gflops": flops.get("total_gflops"),
        "decoder_gflops": flops.get("decoder_gflops"),
        "backbone_gflops": flops.get("backbone_gflops"),
        "total_gmacs": flops.get("total_gmacs"),
        "flops_tool": flops.get("tool"),
        "input_size": "x".join(str(s) for s in size) if isinstance(size, (list, tuple)) else size,
        "latency_device": latency.get("device"),
        "latency_dtype": latency.get("dtype"),
        "batch1_ms": latency.get("batch1_ms"),
        "throughput_img_s": latency.get("throughput_img_s"),
        "throughput_batch": latency.get("throughput_batch"),
    }


def runs_dirs_below(root: Path, depth: int = 2, limit: int = 5) -> list[Path]:
    """Runs directories (holding `<dataset>/<run>/DONE`) up to `depth` folders below `root`, for the hint when
    `root` itself holds none (`segbench report segbench_demo` for `segbench_demo/runs`)."""
    found: list[Path] = []
    for level in range(1, depth + 1):
        for done in sorted(root.glob("/".join(["*"] * (level + 2)) + "/DONE")):
            runs = done.parent.parent.parent
            if runs not in found and not any(part.startswith(".") for part in runs.relative_to(root).parts):
                found.append(runs)
            if len(found) >= limit:
                return found
    return found


def load_runs(runs_dir: str | os.PathLike) -> Runs:
    """Read every `RUNS_DIR/<dataset>/<run>/` directory; see the module docstring for what is used."""
    root = Path(runs_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"runs directory {root} does not exist; pass the folder given to `segbench run`")
    wide, tidy, counts, conventions, skipped, notes, settings = [], [], [], [], [], [], {}
    if _looks_like_run(root):   # one run's own folder, e.g. an imported checkpoint's
        skipped.append(_misplaced(root, "given as the runs directory"))
    dataset_dirs = [] if skipped else sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for dataset_dir in dataset_dirs:
        if _looks_like_run(dataset_dir):
            skipped.append(_misplaced(dataset_dir, "directly in the runs directory, not in a dataset folder"))
            continue
        for run_dir in sorted(p for p in dataset_dir.iterdir() if p.is_dir()):
            if not _looks_like_run(run_dir):
                continue
            rel = f"{dataset_dir.name}/{run_dir.name}"
            try:
                row, t, c, v, n, s = read_run(run_dir, dataset_dir.name)
            except RunError as exc:
                skipped.append(Skipped(rel, str(exc)))
                continue
            settings[rel] = s
            wide.append(row)
            tidy += t
            counts += c
            conventions += v
            notes += [Skipped(rel, note) for note in n]
    recipes = recipe_labels(wide, settings)
    for row in wide:
        row["recipe"] = recipes[row["run"]]
    return Runs(
        root=root,
        wide=_sorted(pd.DataFrame(wide), _wide_columns(wide)),
        tidy=_with_recipe(tidy, ID_COLUMNS + ["profile", "metric", "value", "run"], recipes),
        counts=_with_recipe(counts, ID_COLUMNS + ["profile", "count", "value", "run"], recipes),
        conventions=_with_recipe(conventions, ID_COLUMNS + ["profile", "convention", "run"], recipes),
        skipped=skipped,
        notes=notes,
        settings=settings,
    )


def _with_recipe(rows: list[dict], columns: list[str], recipes: dict[str, str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns)
    return _sorted(frame.assign(recipe=frame["run"].map(recipes).astype(object)))


def _comparable(value):
    """A hashable form of a setting's value in which 256 and 256.0 are equal and a dict is its sorted JSON."""
    if isinstance(value, (dict, list, tuple)):
        return setting_text(value)
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def recipe_labels(wide: list[dict], settings: dict[str, dict | None]) -> dict[str, str]:
    """Per run, the settings that set it apart from the other runs of its backbone and preset, as
    "data.size=96, train.epochs=4"; "" when they all agree, so the usual report is unchanged.

    Only settings every config.yaml of the group holds are compared (one written before segbench had a setting ran
    with that setting's default of the time). A method's own options (METHOD_SETTINGS) are compared among its runs:
    when they differ, the runs with options are labelled and those at the method's defaults stay with the other
    methods. Runs without a config.yaml are "settings not recorded" beside runs with one.
    """
    labels: dict[str, str] = {}
    groups: dict[tuple[str, str], list[str]] = {}
    method_of = {row["run"]: row["method"] for row in wide}
    for row in wide:
        groups.setdefault((row["backbone"], row["preset"]), []).append(row["run"])
    for runs in groups.values():
        recorded = [settings[r] for r in runs if settings[r] is not None]
        # only keys every config.yaml holds: one written before segbench had a setting ran with its then default,
        # which reports (importing no benchmark code) cannot know
        keys = set.intersection(*(set(s) for s in recorded)) - set(METHOD_SETTINGS) if recorded else set()
        varying = sorted(k for k in keys if len({_comparable(s.get(k)) for s in recorded}) > 1)
        for method in {method_of[r] for r in runs}:   # a method's own options: among its runs only
            own = [settings[r] for r in runs if method_of[r] == method and settings[r] is not None]
            extra = [k for k in METHOD_SETTINGS if len({_comparable(s.get(k)) for s in own}) > 1]
            for run in (r for r in runs if method_of[r] == method):
                s = settings[run]
                if s is None:
                    labels[run] = "settings not recorded" if recorded else ""
                    continue
                # runs at the method's defaults (no options) stay with the other methods; the others are labelled
                keys = varying + [k for k in extra if s.get(k) not in (None, {}, [])]
                labels[run] = ", ".join(f"{k}={setting_text(s.get(k))}" for k in keys)
    return labels


def _wide_columns(rows: list[dict]) -> list[str]:
    metric_columns = sorted({k for row in rows for k in row if "/" in k})
    return RESULT_COLUMNS + EXTRA_COLUMNS + metric_columns


def _sorted(frame: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    if columns is not None:
        frame = frame.reindex(columns=columns)
    if frame.empty:
        return frame.reset_index(drop=True)
    keys = frame.apply(
        lambda r: (dataset_sort_key(r["dataset"]), str(r.get("data_name") or ""), method_sort_key(r["method"]),
                   r["backbone"], r["preset"], r["seed"]),
        axis=1,
    )
    order = sorted(range(len(frame)), key=lambda i: keys.iloc[i])  # stable: keeps profile/metric order per run
    return frame.iloc[order].reset_index(drop=True)


def write_results_csv(runs_dir: str | os.PathLike, runs: Runs | None = None) -> Path:
    """(Re)generate `RUNS_DIR/results.csv` from the run directories, atomically; returns its path."""
    runs = runs if runs is not None else load_runs(runs_dir)
    path = Path(runs_dir) / "results.csv"
    write_csv_atomic(runs.wide, path)
    return path


def write_csv_atomic(frame: pd.DataFrame, path: Path) -> None:
    write_text_atomic(path, frame.to_csv(index=False, float_format="%.10g", lineterminator="\n"))


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write through a temporary file renamed into place: an interrupted report leaves the old file or the new."""
    from benchmark.records import atomic_write_text

    atomic_write_text(Path(path), text)


def summarise(tidy: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample std (ddof=1; NaN for one seed or an infinite value), n seeds and the seeds, per dataset x
    method x metric.

    Groups by backbone, preset and recipe too, so runs trained with different settings are never averaged
    together. NaN values (a metric a run measured but found undefined, NaN or null in metrics.json: say a mean HD95
    when every image's distance was infinite) are left out of n and counted in `undefined`; a metric a run did not
    measure has no row at all.
    """
    keys = ["dataset", "method", "backbone", "preset", "recipe", "profile", "metric"]
    if "recipe" not in tidy:   # a frame built by hand, without load_runs: one recipe
        tidy = tidy.assign(recipe="")
    if tidy.empty:
        return pd.DataFrame(columns=keys + ["mean", "std", "n", "undefined", "seeds"])
    rows = []
    for key, group in tidy.groupby(keys, sort=False, dropna=False):
        values = group.dropna(subset=["value"])
        finite = all(math.isfinite(v) for v in values["value"])
        rows.append(
            {
                **dict(zip(keys, key)),
                "mean": values["value"].mean() if len(values) else math.nan,
                "std": values["value"].std(ddof=1) if len(values) > 1 and finite else math.nan,
                "n": len(values),
                "undefined": len(group) - len(values),
                "seeds": " ".join(str(s) for s in sorted(values["seed"])),
            }
        )
    return pd.DataFrame(rows)


def read_speed(path: str | os.PathLike) -> pd.DataFrame:
    """A speed table written by `segbench profile` (CSV, or JSON with "rows"): one row per method x variant with
    at least method, backbone and batch1_ms; rows with an `error` are dropped. A folder (`segbench profile --out`)
    gives the rows of every profile*.csv in it. Raises ValueError otherwise."""
    path = Path(path)
    if path.is_dir():
        tables = sorted(path.glob("profile*.csv"))
        if not tables:
            raise ValueError(f"{path}: a folder without profile*.csv speed tables (written by `segbench profile "
                             "--out`)")
        return pd.concat([read_speed(t) for t in tables], ignore_index=True)
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            frame = pd.DataFrame(data["rows"] if isinstance(data, dict) else data)
        else:
            frame = pd.read_csv(path)
    except (OSError, ValueError, KeyError, pd.errors.ParserError) as exc:
        raise ValueError(f"{path}: cannot read a speed table ({type(exc).__name__}: {exc})") from None
    missing = {"method", "backbone", "batch1_ms"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: not a `segbench profile` table (missing columns {', '.join(sorted(missing))})")
    if "error" in frame.columns:
        frame = frame[frame["error"].isna() | (frame["error"].astype(str) == "")]
    return frame.reset_index(drop=True)


def read_history(run_dir: str | os.PathLike) -> pd.DataFrame | None:
    """history.csv of one run (epoch, step, train_loss, val_*, lr, seconds), or None when absent/unreadable."""
    path = Path(run_dir) / "history.csv"
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError):
        return None
    return frame if "epoch" in frame.columns and len(frame) else None


def read_per_image(run_dir: str | os.PathLike) -> pd.DataFrame | None:
    """per_image.csv of one run, or None when absent/unreadable."""
    try:
        return pd.read_csv(Path(run_dir) / "per_image.csv", dtype={"key": str})
    except (OSError, ValueError, pd.errors.ParserError):
        return None


def safe_key(key: str) -> str:
    """The file-name form of a sample key used under samples/ ("/" becomes "__")."""
    return key.replace("/", "__")


def sample_files(run_dir: str | os.PathLike) -> dict[str, dict[str, Path]]:
    """`{safe_key: {"image": path, "gt": path, "pred": path}}` for the complete samples of one run."""
    folder = Path(run_dir) / "samples"
    found: dict[str, dict[str, Path]] = {}
    if not folder.is_dir():
        return found
    for path in folder.glob("*.png"):
        stem, _, kind = path.name[: -len(".png")].rpartition(".")
        if kind in ("image", "gt", "pred") and stem:
            found.setdefault(stem, {})[kind] = path
    return {k: v for k, v in sorted(found.items()) if len(v) == 3}
