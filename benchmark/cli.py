"""The `segbench` command line: each command parses its options, loads a config and calls one library function.

Errors a user can cause end as one line on stderr and exit code 2, never a traceback.
"""
from __future__ import annotations

import functools
import json
import math
import os
import sys
import warnings
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Benchmark and reproducibility suite for SegDINO (frozen DINOv3 + light decoders).")
data_app = typer.Typer(no_args_is_help=True, help="Inspect datasets in their native layouts.")
app.add_typer(data_app, name="data")
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)


def check_folder_option(path: Path, option: str, give: str = "a folder") -> None:
    from benchmark.records import check_folder_option as check

    check(path, option, give)


def runs_text(n: int) -> str:
    return f"{n} run{'' if n == 1 else 's'}"


def print_data_notes(notes: dict[str, list[str]], deviations: dict[str, str] | None = None) -> None:
    """How each dataset was read (its split lists or seeded split, its classes), which `data check` prints too:
    a folder dataset's inferred classes must not go unseen until the report. Then a warning per dataset whose counts
    differ from the official ones (`sweep.check_inputs`' `deviations`): a partial copy must not go unseen either."""
    for key, lines in notes.items():
        for line in lines:
            err.print(f"note: {key}: {line}", highlight=False, soft_wrap=True)
    for key, line in (deviations or {}).items():
        err.print(f"warning: {key}: {line}", highlight=False, soft_wrap=True)


def warn_random_weights(backbone: str, weights: str | None) -> None:
    """A real backbone without --weights starts from random weights: say so before the work, with the fix."""
    from segdino.backbone import HUB_REPOS

    if weights in (None, "", "none") and backbone in HUB_REPOS:
        err.print(f"note: no backbone weights given: {backbone} starts from random weights, so the results test "
                  f"the pipeline and cannot be compared with the paper; pass Meta's .pth, a Hugging Face folder, or "
                  f"hub:{HUB_REPOS[backbone]}", highlight=False, soft_wrap=True)


def user_errors(fn):
    """Turn the errors a user can cause into one clear line and exit code 2. segbench's own errors (ConfigError,
    DataError, BackboneError, WeightsError, registry.UnknownKey) are ValueErrors, so this module imports none of them,
    nor the torch and timm behind them (about 3 s that `segbench --help` does not need). Any other KeyError is a bug
    and keeps its traceback."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except (OSError, ValueError, RuntimeError) as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2)
        except KeyboardInterrupt as exc:
            resumes = fn.__name__ in ("train", "run", "demo")
            if getattr(exc, "boundary", False):   # a run stopped at an epoch boundary says which epoch it saved
                err.print(f"interrupted: {exc.args[0]}" + ("; nothing finished is lost" if resumes else ""),
                          highlight=False, soft_wrap=True)
            else:   # a second Ctrl-C, or one outside the epoch loop: the epochs since the checkpoint are redone
                err.print("interrupted" + (": the same command continues (finished runs are kept; a run under way "
                                           "resumes from its last checkpoint)" if resumes else ""),
                          highlight=False, soft_wrap=True)
            raise typer.Exit(130) from None
    return wrapper


def _split(values: list[str] | None) -> list[str]:
    """`--seeds 0,1 --seeds 2` -> ["0", "1", "2"]."""
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def parse_sets(values: list[str] | None) -> dict[str, str]:
    out = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects section.key=value, got '{item}'")
        out[key.strip()] = value.strip()
    return out


def print_table(rows: list[dict], title: str | None = None, columns: list[str] | None = None) -> None:
    if not rows:
        console.print("(nothing to show)")
        return
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))
    columns = [c for c in columns if any(r.get(c) is not None for r in rows)]   # no column that is empty throughout
    table = Table()
    for c in columns:
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(*[_fmt(r.get(c)) for c in columns])
    if title and len(title) > console.measure(table).maximum:
        console.print(title)   # a narrow table (one row per metric) would fold a long title over several lines
    else:
        table.title = title
    console.print(table)


def _fmt(v) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "n/a"
        return f"{v:.4f}" if abs(v) < 1000 else f"{v:,.1f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return "" if v is None else str(v)


@data_app.command("check")
@user_errors
def data_check(
    root: Path = typer.Argument(..., help="a dataset's folder, or a folder holding several"),
    dataset: Optional[str] = typer.Option(None, help="dataset key; default: detect from the layout"),
    miniature: bool = typer.Option(False, help="do not fail on counts that differ from the official ones"),
    num_classes: Optional[int] = typer.Option(None, help="folder datasets: the number of classes"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON (exit code unchanged)"),
):
    """Validate native layouts, counts and masks; name every problem's file. Exit 1 if anything is wrong."""
    from benchmark.data.check import check_dataset

    if num_classes is not None and num_classes < 2:
        raise ValueError(f"--num-classes counts the background too: 2 for binary masks, not {num_classes}")
    if root.is_file():   # a wrong path is a usage error (exit 2), not a dataset that failed its check (exit 1)
        from benchmark.data.base import not_a_folder

        raise ValueError(f"data check: {not_a_folder(root, 'folder')}")
    if not root.is_dir():
        raise FileNotFoundError(f"data check: folder not found: {root} (point it at a dataset's folder or at the "
                                "folder holding them, e.g. ~/data)")
    report = check_dataset(root, dataset, expect_counts=not miniature, num_classes=num_classes)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        console.print(report)
    raise typer.Exit(report.exit_code)


@app.command()
@user_errors
def train(
    dataset: Optional[str] = typer.Option(
        None, help="dataset key (tn3k, kvasir, isic2017, msd, vmd, visha, folder); default: kvasir"),
    method: Optional[str] = typer.Option(
        None, help="decoder key (segdino, unet, upernet, dpt, ...-small); default: segdino"),
    backbone: Optional[str] = typer.Option(None, help="dinov3_vits16, dinov3_vitb16, dinov3_vitl16, ..., test"),
    weights: Optional[str] = typer.Option(
        None, help="backbone weights: a file or folder (Meta .pth, timm, HF transformers), hub:NAME, or none"),
    seed: Optional[int] = typer.Option(None, help="default: 0"),
    preset: str = typer.Option("paper", help="paper, public-code or smoke"),
    size: Optional[int] = typer.Option(None, help="input side, a multiple of 16 (paper: 256)"),
    data_root: Optional[str] = typer.Option(None, help="the dataset's folder, or a folder holding several"),
    runs_dir: Optional[str] = typer.Option(None, help="where run directories go (default: runs)"),
    epochs: Optional[int] = typer.Option(None, help="training epochs (paper: 50)"),
    batch_size: Optional[int] = typer.Option(None, help="training batch size (paper: 4)"),
    subset: Optional[int] = typer.Option(None, help="first N samples per split (smoke runs on real data)"),
    num_classes: Optional[int] = typer.Option(
        None, help="folder datasets: classes with the background (2 = binary); default: from the masks"),
    device: Optional[str] = typer.Option(None, help="auto, cpu, cuda, cuda:1, ..."),
    skip_bad: bool = typer.Option(False, help="skip unreadable samples (recorded in skipped.json)"),
    config: Optional[Path] = typer.Option(None, help="a YAML file of overrides, nested like the config"),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="section.key=value override (repeatable)"),
):
    """Train one method on one dataset with one seed; writes a run directory (resumes if interrupted)."""
    from benchmark.config import load_config
    from benchmark.registry import check_config
    from benchmark.train import train_run

    overrides = {}   # only what was given: a --config file's settings win over the defaults
    for key, value in (("data.dataset", dataset), ("decoder.name", method), ("train.seed", seed),
                       ("backbone.name", backbone), ("backbone.weights", weights), ("data.size", size),
                       ("data.root", data_root), ("run.runs_dir", runs_dir), ("train.epochs", epochs),
                       ("train.batch_size", batch_size), ("data.subset", subset), ("train.device", device),
                       ("data.num_classes", num_classes)):
        if value is not None:
            overrides[key] = value
    if skip_bad:
        overrides["data.skip_bad"] = True
    overrides.update(parse_sets(set_))
    cfg = load_config(preset, config, overrides)
    check_config(cfg)
    if cfg.data.root is None:
        raise ValueError("no data: pass --data-root (the dataset's folder, or a folder holding several)")
    from benchmark.sweep import check_inputs

    try:
        checked, deviations = [cfg], {}
        # a wrong data root or weights path fails before the random-weights note
        notes = check_inputs(checked, deviations=deviations)
        cfg = checked[0]
    except ValueError as exc:
        root = Path(cfg.data.root).expanduser()
        if "data.dataset" not in overrides and config is None and root.is_dir():   # the preset's dataset: say
            from benchmark.data.check import detect_datasets                      # which layout is there

            found = [key for key, _ in detect_datasets(root)]
            if found and cfg.data.dataset not in found:
                raise ValueError(f"{exc} (no --dataset was given, so {cfg.data.dataset}; {cfg.data.root} looks like "
                                 f"--dataset {' or '.join(found)})") from None
        raise
    print_data_notes(notes, deviations)
    warn_random_weights(cfg.backbone.name, cfg.backbone.weights)
    from benchmark import records

    finished = records.is_done(records.run_dir_for(cfg))
    run_dir = train_run(cfg)
    if finished:
        console.print(f"already finished: {run_dir} (its recorded result below; remove the folder or give another "
                      "--runs-dir to train again)")
    _print_metrics(run_dir)


def _print_metrics(run_dir: Path) -> None:
    """One row per metric, one column per scoring profile: narrow enough for a terminal with several profiles."""
    metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    by_profile = {name: {**p["metrics"], **{k: v for k, v in p["counts"].items() if k in ("n_images", "hd95_inf")}}
                  for name, p in metrics["profiles"].items()}
    names = list(dict.fromkeys(k for values in by_profile.values() for k in values))
    # null in metrics.json: measured, but undefined (the HD95 of a set whose every image's HD95 is infinite)
    rows = [{"metric": k, **{name: ("n/a" if k in values and values[k] is None else values.get(k))
                             for name, values in by_profile.items()}} for k in names]
    epoch = metrics.get("selected_epoch", -1)
    print_table(rows, title=f"{run_dir} ({f'selected epoch {epoch}' if epoch >= 0 else 'imported, not trained here'})",
                columns=["metric", *by_profile])


@app.command()
@user_errors
def evaluate(
    run_dir: Path = typer.Argument(..., help="a run directory (trained or imported)"),
    data_root: Optional[str] = typer.Option(None, help="override the recorded data root"),
    dataset: Optional[str] = typer.Option(None, help="an imported checkpoint's dataset, before its first scores (a "
                                          "scored run keeps its own)"),
    profile: Optional[List[str]] = typer.Option(None, help="scoring profile(s); default: the dataset's"),
    device: str = typer.Option("auto", help="auto (cuda when there is one), cpu, cuda or cuda:N"),
    workers: Optional[int] = typer.Option(None, min=0, help="CPU workers decoding and scoring the test split "
                                          "(default: the run's train.num_workers; 0: per core, at most 8)"),
):
    """Re-score a run's selected model on its test split (any scoring profile); updates metrics.json."""
    from benchmark.evaluate import evaluate_run
    from benchmark.train import resolve_device

    device = str(resolve_device(device))   # auto chosen here; a missing GPU is one line with the fix
    evaluate_run(run_dir, data_root, tuple(profile) if profile else None, dataset, device, workers)
    _print_metrics(run_dir)


@app.command()
@user_errors
def predict(
    run_dir: Path = typer.Argument(..., help="a run directory (trained or imported)"),
    images: Optional[Path] = typer.Argument(None, help="an image file or a folder of images (not one holding mask "
                                            "folders: a dataset's split is --split); default: a split of the run's "
                                            "dataset (--split)"),
    out: Path = typer.Option(..., help="folder for the probability PNGs (native size, probability x 255)"),
    split: Optional[str] = typer.Option(None, help="predict this split of the run's dataset (train, test; ISIC 2017 "
                                        "also val), one `<key>.png` per sample"),
    data_root: Optional[str] = typer.Option(None, help="with --split: override the recorded data root"),
    dataset: Optional[str] = typer.Option(None, help="with --split: another dataset than the run's"),
    device: str = typer.Option("auto", help="auto (cuda when there is one), cpu, cuda or cuda:N"),
):
    """Write a probability map per image at its native size."""
    from benchmark.predict import predict_folder, predict_split
    from benchmark.train import resolve_device

    if images is not None and (split or data_root or dataset):
        raise ValueError("predict takes either IMAGES or --split (with --data-root/--dataset), not both")
    device = str(resolve_device(device))
    check_folder_option(out, "--out")
    source = ""
    if images is None:
        written, source = predict_split(run_dir, out, split or "test", data_root, dataset, device)
        source = f" for the {source}"
    else:
        written = predict_folder(run_dir, images, out, device)
    from benchmark.predict import PREDICTIONS_META

    kind = "map" if len(written) == 1 else "maps"
    values = json.loads((out / PREDICTIONS_META).read_text())["map_values"]
    console.print(f"wrote {len(written)} {kind}{source} to {out} ({values})")


@app.command()
@user_errors
def score(
    pred_dir: Path = typer.Argument(..., help="predicted masks: 8-bit probability maps or binary PNGs"),
    gt_dir: Path = typer.Argument(..., help="ground-truth masks, paired with predictions by relative path and "
                                  "stem; with --dataset, the dataset's folder (or a folder holding several)"),
    dataset: Optional[str] = typer.Option(None, help="read GT_DIR as this dataset's native layout and score "
                                          "its --split (tn3k, kvasir, isic2017, msd, vmd, visha, folder)"),
    split: str = typer.Option("test", help="with --dataset: the split to score"),
    profile: Optional[str] = typer.Option(
        None, help="segdino, medical-native, mirror, shadow or shadow-per-frame; default: the dataset's first "
        "(segdino for medical data, mirror, shadow); without --dataset, that of the dataset GT_DIR lies in (else "
        "the one segbench_predictions.json names), segdino when none is known"),
    out: Optional[Path] = typer.Option(None, help="CSV file for the per-image rows (a folder: FOLDER/scores.csv)"),
    size: Optional[int] = typer.Option(None, help="network grid for network-resolution profiles (segdino); "
                                       "default: the run's size for `segbench predict` output, else 256"),
    maps: str = typer.Option("auto", help="how grey maps are read: probability (p x 255), binary (a map of only 0 "
                             "and 1 is a 0/1 mask; a JPEG map is foreground >= 1 when it holds no value above 4, "
                             "else >= 128), or auto (probability when any map holds a value above 1, a JPEG map one "
                             "above 4: JPEG noise)"),
    workers: int = typer.Option(0, min=0, help="processes reading and scoring the files (0: one per core but one, "
                                "at most 8; 1: this process); any number gives the same scores"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
):
    """Score any model's predicted masks against ground truth under a named scoring profile."""
    from benchmark.evaluate import profiles_for
    from benchmark.metrics import score_directories, score_split
    from benchmark.metrics.score import dataset_of
    from benchmark.predict import PREDICTIONS_META, predictions_size

    if dataset is None and split != "test":
        raise ValueError("--split chooses a split of a dataset: give --dataset too (GT_DIR is then its folder)")
    if out is not None and out.is_dir():   # a folder: the rows go in it, rather than failing after the scoring
        out = out / "scores.csv"
    if out is not None:
        check_folder_option(out.parent, "--out", give="a CSV file's path in a folder")
    size_from = ""
    if size is None:
        size = predictions_size(pred_dir)
        size_from = f" (the network size of the run that predicted them, from {PREDICTIONS_META})" if size else ""
        size = size or 256
    profile_note = ""
    if profile is None and dataset is None:   # the masks' dataset when it can be told (layout, predict's record)
        known = dataset_of(pred_dir, gt_dir)
        if known is not None and profiles_for(known[0])[0] != "segdino":
            (key, why, root), profile = known, profiles_for(known[0])[0]
            profile_note = (f"scored under '{profile}', the {key} profile, as {why}; --profile chooses another "
                            "(segdino, the default for other masks)"
                            + (f"; `segbench score {pred_dir} {root} --dataset {key}` scores its official {split} "
                               "split in one go" if root is not None else ""))
    profile = profile or (profiles_for(dataset)[0] if dataset is not None else "segdino")
    if dataset is not None:
        from benchmark.registry import open_dataset

        summary, rows = score_split(pred_dir, open_dataset(dataset, gt_dir), split, profile, out, size, maps, workers)
    else:
        summary, rows = score_directories(pred_dir, gt_dir, profile, out, size, maps, workers)
    if profile_note:
        summary["profile_from"] = profile_note
    if as_json:
        if profile_note:   # stdout stays JSON
            err.print(profile_note, highlight=False, soft_wrap=True)
        print(json.dumps(summary, indent=2))
        return
    where = f" ({summary['dataset']} {summary['split']} split in {summary['root']})" if dataset is not None else ""
    print_table([{"metric": k, profile: v} for k, v in {**summary["metrics"], **summary["counts"]}.items()],
                title=f"{len(rows)} images{where} scored under '{profile}' at "
                      + ("each mask's native size" if summary["scored_size"] == "native"
                         else summary["scored_size"] + size_from))
    if profile_note:
        console.print(profile_note, highlight=False, soft_wrap=True)
    console.print(f"maps read as {summary['maps']}", highlight=False, soft_wrap=True)
    if summary["scored_size"] != "native":   # a mask scored against itself is then not quite perfect: say why
        console.print(f"'{profile}' scores on the network grid (the public code scores its network output against "
                      f"the mask resized nearest-neighbour): the maps resized bilinearly and the masks "
                      f"nearest-neighbour onto {summary['scored_size']}, so even a copy of the masks scores a little "
                      "below Dice 1, and a run's own segdino scores (`segbench evaluate`) differ slightly from its "
                      "predict maps'; --profile medical-native scores at each mask's native size",
                      highlight=False, soft_wrap=True)
    for item in summary["excluded"]:
        console.print(f"left out {item['key']} ({item['reason']}), as segbench's loader does")
    if summary.get("ignored"):
        n, examples = summary["ignored"], summary.get("ignored_examples") or []
        console.print(f"not scored: {n} prediction{'s' * (n != 1)} that pair{'s' * (n == 1)} with no {split} sample"
                      + (f" (e.g. {', '.join(examples)})" if examples else "")
                      + ": other splits' images, or files named otherwise", highlight=False, soft_wrap=True)
    if out:
        console.print(f"per-image rows: {out}")


@app.command("import-checkpoint")
@user_errors
def import_checkpoint(
    path: Path = typer.Argument(..., help="a checkpoint saved by the public SegDINO code (paper-era revision)"),
    backbone: str = typer.Option("dinov3_vits16"),
    out: Path = typer.Option(..., help="the run directory to create"),
    dataset: str = typer.Option("kvasir", help="the dataset it was trained on: evaluate scores it on this dataset's "
                                "test split, under its profiles"),
    data_root: Optional[str] = typer.Option(None, help="that dataset's folder (evaluate's default data root)"),
    size: int = typer.Option(256, help="the input side it was trained at (the public code: 256)"),
):
    """Import a public-code checkpoint strictly into a run directory that evaluate and predict accept."""
    from benchmark.records import import_public_run

    check_folder_option(out, "--out")
    run_dir = import_public_run(path, backbone, out, dataset, data_root, size)
    console.print(f"imported {path} into {run_dir} (note: its backbone was fine-tuned by the public code)")


@app.command()
@user_errors
def profile(
    methods: Optional[List[str]] = typer.Option(None, "--methods", "--method", help="decoder keys; default all"),
    backbone: str = typer.Option("dinov3_vits16"),
    weights: Optional[str] = typer.Option(None, help="a weights file or folder, hub:NAME or none (random)"),
    size: int = typer.Option(256, help="input side"),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:1, ..."),
    batch: int = typer.Option(8, help="batch size for throughput"),
    timing: bool = typer.Option(True, help="measure latency and throughput (else parameters and FLOPs only)"),
    variant: Optional[List[str]] = typer.Option(None, help="DTYPE:COMPILE, e.g. bfloat16:max-autotune (repeat)"),
    out: Optional[Path] = typer.Option(None, help="folder to save profile_<device>.csv and .json"),
    as_json: bool = typer.Option(False, "--json", help="print JSON rows"),
    as_csv: bool = typer.Option(False, "--csv", help="print CSV rows"),
):
    """Trainable and frozen parameters, GFLOPs/GMACs of backbone and decoder, latency and throughput per method."""
    import csv

    from benchmark.config import load_config
    from benchmark.profiling import count_method_flops, format_table, profile_methods, save_profile
    from benchmark.registry import DECODERS, check_config
    from segdino.backbone import build_backbone

    from benchmark.train import resolve_device

    device = str(resolve_device(device))
    if out:
        check_folder_option(out, "--out")
    if batch < 1:
        raise ValueError(f"--batch must be at least 1, not {batch}")
    if variant and not timing:
        raise ValueError("--variant chooses how latency and throughput are timed; drop --no-timing (parameters and "
                         "FLOPs do not depend on it)")
    methods = _split(methods) or list(DECODERS)
    for method in methods:
        check_config(load_config("paper", overrides={"decoder.name": method, "backbone.name": backbone,
                                                     "data.size": size}))
    if timing:
        variants = [tuple(v.split(":", 1)) if ":" in v else (v, "none") for v in variant or []] or None
        rows = profile_methods(methods, backbone, size, device, weights, batch, variants)
    else:
        build_backbone(backbone, weights)   # validates the weights file even when only counting
        rows = [{"method": m, "backbone": backbone, "size": f"{size}x{size}", **count_method_flops(m, backbone, size)}
                for m in methods]
    if out:
        paths = save_profile(rows, out, f"profile_{device.replace(':', '')}")
        err.print(f"saved {paths[0]} and {paths[1]}")
    if as_json:
        print(json.dumps(rows, indent=2, default=str))
    elif as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        writer.writeheader()
        writer.writerows(rows)
    else:
        console.print(format_table(rows) if timing else "")
        if not timing:
            print_table(rows, columns=["method", "backbone", "size", "trainable_params", "frozen_params",
                                       "backbone_gflops", "decoder_gflops", "total_gflops", "total_gmacs"])
    failed = [r for r in rows if r.get("error")]
    if failed:   # the other rows are printed and saved; the exit code tells a script that some are missing
        err.print(f"[bold red]error:[/] {len(failed)} of {len(rows)} measurements failed (their rows have no "
                  "timings)", highlight=False)
        raise typer.Exit(1)


@app.command()
@user_errors
def run(
    all_: bool = typer.Option(False, "--all", help="every dataset x method (segdino, unet, upernet, dpt) x seed"),
    datasets: Optional[List[str]] = typer.Option(
        None, "--datasets", "--dataset", help="dataset keys (comma or repeat)"),
    methods: Optional[List[str]] = typer.Option(None, "--methods", "--method", help="method keys (comma or repeat)"),
    seeds: Optional[List[str]] = typer.Option(None, "--seeds", "--seed", help="seeds (default 0,1,2)"),
    preset: str = typer.Option("paper", help="paper, public-code or smoke"),
    backbone: Optional[str] = typer.Option(None, help="dinov3_vits16 (paper), dinov3_vitb16, ..., test"),
    weights: Optional[str] = typer.Option(
        None, help="backbone weights: a file or folder (Meta .pth, timm, HF transformers), hub:NAME, or none"),
    data_root: Optional[str] = typer.Option(None, help="a folder holding the datasets under their usual names "
                                            "(--datasets folder: your images/ + masks/ folder itself)"),
    runs_dir: Optional[str] = typer.Option(None, help="where run directories and results.csv go (default: runs)"),
    size: Optional[int] = typer.Option(None, help="input side, a multiple of 16 (paper: 256)"),
    epochs: Optional[int] = typer.Option(None, help="training epochs (paper: 50)"),
    batch_size: Optional[int] = typer.Option(None, help="training batch size (paper: 4)"),
    subset: Optional[int] = typer.Option(None, help="first N samples per split (smoke runs on real data)"),
    num_classes: Optional[int] = typer.Option(
        None, help="folder datasets: classes with the background (2 = binary); default: from the masks"),
    device: Optional[str] = typer.Option(None, help="auto, cpu, cuda, cuda:1, ... (one device for every run)"),
    executor: str = typer.Option("local", help="local, slurm, or submitit-local"),
    devices: Optional[List[str]] = typer.Option(None, help="local: one worker process per device, e.g. cuda:0,cuda:1 "
                                          "(default: every visible GPU when there are several)"),
    runs_per_gpu: int = typer.Option(1, help="runs side by side on each GPU (local workers, or within each slurm "
                                     "job); a batch-4 run leaves most of a large GPU idle"),
    partition: Optional[str] = typer.Option(None, help="slurm partition"),
    time_min: int = typer.Option(120, help="slurm time limit per job, minutes"),
    gpus: int = typer.Option(1, help="slurm GPUs per job (0 for CPU-only jobs); a job runs gpus x runs-per-gpu "
                             "runs side by side"),
    cpus_per_task: int = typer.Option(8, help="slurm CPUs per job"),
    mem_gb: int = typer.Option(64, help="slurm memory per job, GB"),
    array: bool = typer.Option(True, help="slurm: one array job (else one job per run)"),
    skip_bad: bool = typer.Option(False, help="skip unreadable samples (recorded in each run's skipped.json)"),
    keep_going: bool = typer.Option(False, help="a failed run does not stop the others (Slurm jobs always run on; "
                                    "this also covers the runs inside one job); the failures are listed at the end "
                                    "(exit code 2)"),
    config: Optional[Path] = typer.Option(None, help="a YAML file of settings, nested like the config; the matrix "
                                          "(--datasets, --methods, --seeds) sets each run's dataset, method and seed"),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="section.key=value override (repeatable)"),
    dry_run: bool = typer.Option(False, help="list the planned runs and their state; train nothing"),
):
    """Train and evaluate the matrix of runs; finished runs are skipped, partial ones resumed, corrupt ones redone."""
    from benchmark.config import load_config
    from benchmark.sweep import (PAPER_DATASETS, PAPER_METHODS, SlurmOptions, SweepError, SweepSpec, check_inputs,
                                 plan, plan_status, run_sweep)

    from benchmark.registry import DATASETS, DECODERS, check_key

    # each once: a repeated name would be one run planned twice
    ds = list(dict.fromkeys(check_key("dataset", d, DATASETS) for d in _split(datasets))) or (
        list(PAPER_DATASETS) if all_ else [])
    ms = list(dict.fromkeys(check_key("method", m, DECODERS) for m in _split(methods))) or (
        list(PAPER_METHODS) if all_ else [])
    if not ds or not ms:
        raise ValueError("say what to run: --all, or --datasets and --methods "
                         "(e.g. --datasets kvasir --methods segdino)")
    if data_root is None:
        raise ValueError("no data: pass --data-root (a folder holding the datasets under their usual names)")
    overrides = {"data.root": data_root}
    for key, value in (("run.runs_dir", runs_dir), ("backbone.name", backbone), ("backbone.weights", weights),
                       ("data.size", size),
                       ("train.epochs", epochs), ("train.batch_size", batch_size), ("data.subset", subset),
                       ("train.device", device), ("data.num_classes", num_classes)):
        if value is not None:
            overrides[key] = value
    if skip_bad:
        overrides["data.skip_bad"] = True
    overrides.update(parse_sets(set_))
    bad = [s for s in _split(seeds) if not s.isdigit()]
    if bad:
        raise ValueError(f"--seeds takes whole numbers, e.g. 0,1,2 (got {bad[0]!r})")
    seed_list = tuple(dict.fromkeys(int(s) for s in _split(seeds) or ["0", "1", "2"]))
    spec = SweepSpec(tuple(ds), tuple(ms), seed_list, preset, str(config) if config else None, overrides)
    first = load_config(preset, config, overrides)
    if not dry_run:   # a wrong data root or weights path fails before the random-weights note
        deviations: dict = {}
        print_data_notes(check_inputs(plan(spec), deviations=deviations), deviations)
    warn_random_weights(first.backbone.name, first.backbone.weights)
    if executor == "local" and runs_per_gpu > 1 and not any(d.startswith("cuda") for d in _split(devices)):
        import os

        import torch

        if not torch.cuda.is_available():
            err.print(f"note: --runs-per-gpu {runs_per_gpu} with no GPU here: {runs_per_gpu} runs at a time share "
                      f"the CPU's {os.cpu_count()} cores, which is slower than one after another", highlight=False,
                      soft_wrap=True)
    if dry_run:
        rows = plan_status(spec)
        missing = [r for r in rows if r["state"] == "no data"]
        if len(missing) < len(rows):   # a table of nothing but "no data" would repeat the one error below
            print_table(rows, title=f"planned: {runs_text(len(rows))}",
                        columns=["dataset", "method", "seed", "state", "why"])
        if missing:   # the real run refuses these too, before any work
            verb = "has" if len(missing) == 1 else "have"
            raise ValueError(f"{runs_text(len(missing))} {verb} no data, so `segbench run` would refuse this sweep; "
                             f"first: {missing[0]['why']}")
        clashes = [r for r in rows if r["state"] == "conflict"]
        if clashes:   # the real run refuses them before any work: say so, with the same exit code
            verb = "clashes" if len(clashes) == 1 else "clash"
            raise ValueError(f"{runs_text(len(clashes))} {verb} with existing run directories, so `segbench run` "
                             f"would refuse this sweep; first: {clashes[0]['why']}")
        return
    slurm = SlurmOptions(partition=partition, time_min=time_min, gpus_per_node=gpus, cpus_per_task=cpus_per_task,
                         mem_gb=mem_gb, array=array, runs_per_gpu=runs_per_gpu)
    columns = ["dataset", "method", "seed", "was", "profile", "dice", "iou", "max_fbeta", "mae", "ber",
               "selected_epoch", "extracted_features", "train_seconds"]
    try:
        rows = run_sweep(spec, executor, slurm, devices=_split(devices), runs_per_gpu=runs_per_gpu,
                         keep_going=keep_going)
    except SweepError as exc:   # the runs that finished, then the failures
        if exc.rows:
            print_table(exc.rows, title=f"sweep: {runs_text(len(exc.rows))} finished", columns=columns)
        raise
    print_table(rows, title=f"sweep: {runs_text(len(rows))} ({sum(r['was'] == 'done' for r in rows)} already done)",
                columns=columns)
    console.print(f"results table: {Path(first.run.runs_dir) / 'results.csv'}")


@app.command()
@user_errors
def report(
    runs_dir: Path = typer.Argument(..., help="a runs directory written by train / run"),
    out: Path = typer.Option(Path("report"), help="folder for tables, figures, report.tex, summary.md"),
    speed: Optional[Path] = typer.Option(None, help="a `segbench profile --csv` file for the latency columns"),
    figures: bool = typer.Option(True, help="render figures (PDF + PNG)"),
    pdf: bool = typer.Option(False, help="also compile report.tex with pdflatex, where installed"),
    backbone: Optional[str] = typer.Option(None, help="only runs on this backbone"),
    preset: Optional[str] = typer.Option(None, help="only runs of this preset"),
    as_json: bool = typer.Option(False, "--json", help="print what was written (paths, counts, groups) as JSON"),
):
    """LaTeX tables, Markdown summary, CSV and figures from run records, with the paper's numbers beside ours."""
    from reports.render import compile_pdf, render_report

    if not runs_dir.is_dir():
        raise FileNotFoundError(f"runs directory not found: {runs_dir}")
    check_folder_option(out, "--out")
    from reports.load import load_runs

    found = load_runs(runs_dir)
    if found.wide.empty:   # an empty report is never what was meant: usually the wrong folder
        if found.skipped:   # the right folder, nothing usable yet: say why for each
            reasons = "; ".join(f"{s.run}: {s.reason}" for s in found.skipped[:3])
            raise ValueError(f"no finished runs under {runs_dir}; {len(found.skipped)} skipped ({reasons}"
                             f"{'; ...' if len(found.skipped) > 3 else ''})")
        from reports.load import runs_dirs_below

        below = runs_dirs_below(runs_dir)
        if below:
            raise ValueError(f"no finished runs directly under {runs_dir}, but some in "
                             f"{', '.join(map(str, below))} (e.g. `segbench report {below[0]}`)")
        raise ValueError(f"no finished runs under {runs_dir} (give the --runs-dir of `segbench run` or "
                         "`segbench train`, e.g. runs)")
    wide = found.wide
    chosen = [(b, p) for b, p in zip(wide.backbone, wide.preset) if backbone in (None, b) and preset in (None, p)]
    if not chosen:
        present = ", ".join(sorted({f"--backbone {b} --preset {p}" for b, p in zip(wide.backbone, wide.preset)}))
        raise ValueError(f"no finished runs under {runs_dir} match --backbone {backbone or 'any'} --preset "
                         f"{preset or 'any'}; present: {present}")
    result = render_report(runs_dir, out, backbone=backbone, preset=preset, figures=figures, speed=speed)
    if pdf:
        result["pdf"] = str(compile_pdf(result["report_tex"]))
    if as_json:
        print(json.dumps(result, indent=2, default=str))
        return
    excluded = f", {result['n_runs_excluded']} not selected" if result["n_runs_excluded"] else ""
    console.print(f"report of {runs_text(result['n_runs_used'])} ({result['n_runs_skipped']} skipped{excluded}) in "
                  f"{out}: {result['written']}, {result['summary_md']}")
    for item in result["skipped"]:
        console.print(f"  skipped {item['run']}: {item['reason']}")
    for warning in result["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    if pdf:
        console.print(f"compiled {result['pdf']}")


@app.command()
@user_errors
def demo(
    out: Path = typer.Option(Path("segbench_demo"), help="where the miniature data, runs and report go"),
    quick: bool = typer.Option(False, help="only the SegDINO headline run (no method matrix, no report)"),
):
    """The whole pipeline on built-in miniature data, on a CPU, in minutes."""
    from benchmark.demo import MATRIX, run_demo

    check_folder_option(out, "--out")
    result = run_demo(out, matrix=not quick, report=not quick)
    if result.matrix:
        print_table(result.matrix, title=f"pipeline check, not a comparison: every method on six miniature datasets "
                    f"({MATRIX['data.size']} px, {MATRIX['train.epochs']} epochs, seed 0, tiny random backbone)",
                    columns=["dataset", "method", "profile", "dice", "iou", "max_fbeta", "mae", "ber", "seconds"])
    print_table([result.headline], title="headline: SegDINO, tiny random DINOv3 backbone, miniature Kvasir-SEG "
                "(test split)", columns=["dataset", "method", "size", "untrained_dice", "dice", "iou", "hd95",
                                         "selected_epoch", "seconds"])
    if result.report:
        console.print(f"report: {result.report['summary_md']} and {result.report['report_tex']} "
                      f"({result.report['n_figures']} figures)")
    console.print(f"demo finished in {result.seconds:.0f} s; run records under {out}")
    reused = [what for what, done in (("headline run", result.headline.get("reused")), ("matrix's runs", result.matrix
              and all(row.get("was") == "done" for row in result.matrix))) if done]
    if reused:
        console.print(f"note: the {' and the '.join(reused)} had already finished under {out}: read from their "
                      f"records, not trained again (seconds: this command's); give another --out to run it all again")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """segbench's own warnings (another pretraining than the paper's, a file system without locks) as one
    `warning:` line, as the CLI prints its notes; other libraries' warnings as Python shows them."""
    if category is UserWarning and any(f"{os.sep}{pkg}{os.sep}" in filename for pkg in ("segdino", "benchmark")):
        err.print(f"warning: {message}", highlight=False, soft_wrap=True)
    else:   # what Python's own showwarning writes
        (file or sys.stderr).write(warnings.formatwarning(message, category, filename, lineno, line))


def main() -> None:
    warnings.showwarning = _show_warning
    sys.exit(app())


if __name__ == "__main__":
    main()
