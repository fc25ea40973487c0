"""The `segbench` command line: each command parses its options, loads a config and calls one library function.

Errors a user can cause end as one line on stderr and exit code 2, never a traceback.
"""
from __future__ import annotations

import functools
import json
import sys
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


def user_errors(fn):
    """Turn the errors a user can cause into one clear line and exit code 2."""
    from benchmark.config import ConfigError
    from benchmark.data.base import DataError
    from segdino.backbone import BackboneError

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (BackboneError, ConfigError, DataError, FileNotFoundError, FileExistsError, ValueError,
                RuntimeError) as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2)
        except KeyError as exc:
            err.print(f"[bold red]error:[/] {exc.args[0] if exc.args else exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2)
    return wrapper


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
    table = Table(title=title)
    for c in columns:
        table.add_column(c, overflow="fold")
    for r in rows:
        table.add_row(*[_fmt(r.get(c)) for c in columns])
    console.print(table)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1000 else f"{v:,.1f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return "" if v is None else str(v)


@app.command()
@user_errors
def train(
    dataset: str = typer.Option("kvasir", help="dataset key (tn3k, kvasir, isic2017, msd, vmd, visha, folder)"),
    method: str = typer.Option("segdino", help="decoder key (segdino, unet, upernet, dpt, ...-small)"),
    backbone: Optional[str] = typer.Option(None, help="dinov3_vits16, dinov3_vitb16, dinov3_vitl16, ..., test"),
    weights: Optional[str] = typer.Option(None, help="backbone weights: a .pth file, hub:NAME, or none"),
    seed: int = typer.Option(0),
    preset: str = typer.Option("paper", help="paper, public-code or smoke"),
    size: Optional[int] = typer.Option(None, help="input side, a multiple of 16 (paper: 256)"),
    data_root: Optional[str] = typer.Option(None, help="the dataset's folder, or a folder holding several"),
    runs_dir: Optional[str] = typer.Option(None, help="where run directories go (default: runs)"),
    epochs: Optional[int] = typer.Option(None),
    batch_size: Optional[int] = typer.Option(None),
    subset: Optional[int] = typer.Option(None, help="first N samples per split (smoke runs on real data)"),
    device: Optional[str] = typer.Option(None, help="auto, cpu, cuda, cuda:1, ..."),
    skip_bad: bool = typer.Option(False, help="skip unreadable samples (recorded in skipped.json)"),
    config: Optional[Path] = typer.Option(None, help="a YAML file of overrides, nested like the config"),
    set_: Optional[List[str]] = typer.Option(None, "--set", help="section.key=value override (repeatable)"),
):
    """Train one method on one dataset with one seed; writes a run directory (resumes if interrupted)."""
    from benchmark.config import load_config
    from benchmark.train import train_run

    overrides = {"data.dataset": dataset, "decoder.name": method, "train.seed": seed}
    for key, value in (("backbone.name", backbone), ("backbone.weights", weights), ("data.size", size),
                       ("data.root", data_root), ("run.runs_dir", runs_dir), ("train.epochs", epochs),
                       ("train.batch_size", batch_size), ("data.subset", subset), ("train.device", device)):
        if value is not None:
            overrides[key] = value
    if skip_bad:
        overrides["data.skip_bad"] = True
    overrides.update(parse_sets(set_))
    cfg = load_config(preset, config, overrides)
    _check_keys(cfg)
    if cfg.data.root is None:
        raise ValueError("no data: pass --data-root (the dataset's folder, or a folder holding several)")
    run_dir = train_run(cfg)
    _print_metrics(run_dir)


def _check_keys(cfg) -> None:
    from benchmark.registry import DATASETS, DECODERS, check_key
    from segdino.backbone import get_spec

    check_key("method", cfg.decoder.name, DECODERS)
    check_key("dataset", cfg.data.dataset, DATASETS)
    get_spec(cfg.backbone.name)


def _print_metrics(run_dir: Path) -> None:
    metrics = json.loads((Path(run_dir) / "metrics.json").read_text())
    rows = [{"profile": name, **p["metrics"], **{k: v for k, v in p["counts"].items() if k in ("n_images", "hd95_inf")}}
            for name, p in metrics["profiles"].items()]
    print_table(rows, title=f"{run_dir} (selected epoch {metrics['selected_epoch']})")


@app.command()
@user_errors
def evaluate(
    run_dir: Path = typer.Argument(..., help="a run directory (trained or imported)"),
    data_root: Optional[str] = typer.Option(None, help="override the recorded data root"),
    dataset: Optional[str] = typer.Option(None, help="override the recorded dataset"),
    profile: Optional[List[str]] = typer.Option(None, help="scoring profile(s); default: the dataset's"),
    device: str = typer.Option("cpu"),
):
    """Re-score a run's selected model on its test split (any scoring profile); updates metrics.json."""
    from benchmark.evaluate import evaluate_run

    evaluate_run(run_dir, data_root, tuple(profile) if profile else None, dataset, device)
    _print_metrics(run_dir)


@app.command()
@user_errors
def predict(
    run_dir: Path = typer.Argument(..., help="a run directory (trained or imported)"),
    images: Path = typer.Argument(..., help="an image file or a folder of images"),
    out: Path = typer.Option(..., help="folder for the probability PNGs (native size, probability x 255)"),
    device: str = typer.Option("cpu"),
):
    """Write a probability map per image at its native size."""
    from benchmark.predict import predict_folder

    written = predict_folder(run_dir, images, out, device)
    console.print(f"wrote {len(written)} probability maps to {out}")


@app.command()
@user_errors
def score(
    pred_dir: Path = typer.Argument(..., help="predicted masks: 8-bit probability maps or binary PNGs"),
    gt_dir: Path = typer.Argument(..., help="ground-truth masks, paired with predictions by file stem"),
    profile: str = typer.Option("segdino", help="segdino, medical-native, mirror or shadow"),
    out: Optional[Path] = typer.Option(None, help="CSV file for the per-image rows"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
):
    """Score any model's predicted masks against ground truth under a named scoring profile."""
    from benchmark.metrics import score_directories

    summary, rows = score_directories(pred_dir, gt_dir, profile, out)
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    print_table([{"profile": profile, **summary["metrics"], **summary["counts"]}],
                title=f"{len(rows)} images scored under '{profile}'")
    if out:
        console.print(f"per-image rows: {out}")


@app.command("import-checkpoint")
@user_errors
def import_checkpoint(
    path: Path = typer.Argument(..., help="a checkpoint saved by the public SegDINO code (paper-era revision)"),
    backbone: str = typer.Option("dinov3_vits16"),
    out: Path = typer.Option(..., help="the run directory to create"),
    dataset: str = typer.Option("kvasir", help="the dataset it was trained on (for evaluate)"),
    data_root: Optional[str] = typer.Option(None),
    size: int = typer.Option(256),
):
    """Import a public-code checkpoint strictly into a run directory that evaluate and predict accept."""
    from benchmark.records import import_public_run

    run_dir = import_public_run(path, backbone, out, dataset, data_root, size)
    console.print(f"imported {path} into {run_dir} (note: its backbone was fine-tuned by the public code)")


@app.command()
@user_errors
def profile(
    methods: Optional[List[str]] = typer.Option(None, "--method", "--methods", help="decoder key(s); default all"),
    backbone: str = typer.Option("dinov3_vits16"),
    weights: Optional[str] = typer.Option(None),
    size: int = typer.Option(256),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
):
    """Trainable and frozen parameters and FLOPs per method on a backbone."""
    from benchmark.config import load_config
    from benchmark.profiling import count_flops
    from benchmark.registry import DECODERS, build_model
    from segdino.model import count_parameters

    rows = []
    for method in methods or list(DECODERS):
        cfg = load_config("paper", overrides={"decoder.name": method, "backbone.name": backbone,
                                              "backbone.weights": weights, "data.size": size})
        _check_keys(cfg)
        model = build_model(cfg)
        rows.append({"method": method, "backbone": backbone, "size": size, **count_parameters(model),
                     **{k: v for k, v in count_flops(model, size).items()}})
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        print_table(rows, columns=["method", "backbone", "size", "trainable_params", "frozen_params",
                                   "backbone_gflops", "decoder_gflops", "total_gflops"])


@app.command()
@user_errors
def demo(
    out: Path = typer.Option(Path("segbench_demo"), help="where the miniature data and runs go"),
):
    """The whole pipeline on built-in miniature data, on a CPU, in minutes."""
    import time

    from benchmark.demo import run_demo

    start = time.perf_counter()
    rows = run_demo(out)
    print_table(rows, title="segbench demo: tiny random DINOv3 backbone, synthetic data (test split)",
                columns=["dataset", "method", "seed", "untrained_dice", "dice", "iou", "selected_epoch", "seconds"])
    console.print(f"demo finished in {time.perf_counter() - start:.0f} s; run records under {out / 'runs'}")


def main() -> None:
    sys.exit(app())


if __name__ == "__main__":
    main()
