"""Run directories and their files (docs/run_records.md), every write atomic: temp file, then rename."""
from __future__ import annotations

import csv
import errno
import fcntl
import io
import json
import math
import os
import platform
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import torch

from benchmark.config import Config

SCHEMA = 1


def check_folder_option(path: str | Path, option: str, give: str = "a folder") -> None:
    """A path option (--out, --runs-dir) that segbench creates or fills: refuse, before any work, one that is a
    file, lies under one, or is a broken symbolic link, naming the option. (Write permission is not checked: a
    read-only runs folder still serves `run --dry-run` and finished runs.)"""
    path = Path(path).expanduser()
    for here in (path, *path.absolute().parents):
        if here.is_symlink() and not here.exists():
            raise ValueError(f"{option} {path}: {here} is a symbolic link to {os.readlink(here)}, which is not "
                             f"there; give {give} elsewhere, or create the link's target")
        if here.exists():
            if not here.is_dir():
                where = "is a file" if here == path else f"lies under {here}, which is a file"
                raise ValueError(f"{option} {path} {where}: give {give}")
            return


def run_dir_for(cfg: Config) -> Path:
    name = f"{cfg.decoder.name}__{cfg.backbone.name}__{cfg.run.preset}__s{cfg.train.seed}"
    return Path(cfg.run.runs_dir) / cfg.data.dataset / name


def _file_mode() -> int:
    """The mode a plainly created file gets under this process's umask (mkstemp alone would leave 0600, so
    records on a shared runs directory could not be read by the rest of a group)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: Path, data: bytes, fsync: bool = True) -> None:
    """`data` into `path` through a temporary file renamed into place (a kill leaves the old file or the new one);
    `fsync=False` skips the flush to disk, which only a power cut would need (thousands of predicted maps)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _file_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def remove_stale_temps(folder: Path) -> None:
    """Delete the temporary files of atomic writes a killed process left in `folder` and its sub-folders (up to a
    checkpoint's size each). Only for a folder this process alone writes: a run directory under its lock."""
    for path in Path(folder).rglob(".*.tmp"):
        if path.is_file():
            path.unlink(missing_ok=True)


# flock's answers on a file system without locks (Lustre mounted without -o flock, some NFS setups): go on unlocked
_NO_LOCKS = {errno.ENOSYS, errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL}
_warned_no_locks = False


def _flock(handle, flags: int) -> bool | None:
    """flock `handle`: True when done, False when the lock is held elsewhere (only with LOCK_NB), None on a file
    system without locks, which gets one warning: runs still work there, only parallel runs are not kept apart.
    (Mounts that lock within one node only, Lustre `localflock` or NFS `local_lock`, say nothing: README.)"""
    global _warned_no_locks
    try:
        fcntl.flock(handle, flags)
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno not in _NO_LOCKS:
            raise
        if not _warned_no_locks:
            _warned_no_locks = True
            import warnings
            warnings.warn(f"file locks are not supported in {Path(handle.name).parent} ({exc.strerror}): parallel "
                          "runs are not kept from training the same run; on Lustre, ask for the `flock` mount "
                          "option", stacklevel=2)
        return None
    return True


@contextmanager
def file_lock(path: Path):
    """An exclusive advisory lock on `path` (created if missing), held for the block: parallel runs of a sweep
    (local workers, Slurm array tasks on a shared file system) wait for one writer of a shared cache entry. Yields
    whether the lock is real (False on a file system without locks: writers must then not step on each other)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        locked = _flock(handle, fcntl.LOCK_EX) is True
        try:
            yield locked
        finally:
            if locked:
                _flock(handle, fcntl.LOCK_UN)


class RunBusy(RuntimeError):
    """Another process holds a run's lock: it is training that run now."""

    def __init__(self, run_dir: Path, holder: str):
        super().__init__(f"{run_dir} is being trained by another process ({holder}); wait for it to finish (the "
                         "same command then finds the run done), or stop that process to take the run over")
        self.run_dir, self.holder = Path(run_dir), holder

    def __reduce__(self):   # raised in worker processes and unpickled in the sweep's
        return RunBusy, (self.run_dir, self.holder)


_HELD: set[Path] = set()   # run locks this process holds (a run's lock is taken once, however deep the calls)


def run_lock_path(run_dir: Path) -> Path:
    """The lock file of a run: hidden, beside the run directory (so moving a corrupt directory aside keeps it)."""
    run_dir = Path(run_dir)
    return run_dir.with_name(f".{run_dir.name}.lock")


def _holder_text(path: Path) -> str:
    try:
        info = json.loads(path.read_text())
        job = f", Slurm job {info['slurm_job']}" if info.get("slurm_job") else ""
        return f"pid {info['pid']} on {info['host']}{job}, since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that has not said who it is yet"


@contextmanager
def run_lock(run_dir: Path, wait: bool = False):
    """Hold a run's lock for the block, so two processes (two sweeps, a sweep and a `train`, a Slurm job submitted
    twice) never train one run directory at once. Taken without waiting, it raises RunBusy naming the holder;
    `wait=True` blocks until the holder is gone. The lock dies with its process, even under SIGKILL."""
    path = run_lock_path(run_dir)
    key = path.absolute()
    if key in _HELD:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        # a few tries: `run --dry-run` probes the lock for a moment (lock_holder)
        for attempt in range(5):
            if _flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB) is not False:
                break
            if attempt == 4:
                raise RunBusy(Path(run_dir), _holder_text(path))
            time.sleep(0.1)
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps({"pid": os.getpid(), "host": platform.node(), "slurm_job": slurm_job(),
                                     "since": now()}))
            handle.flush()
            os.fsync(handle.fileno())   # other nodes of a network file system read who holds it
            _HELD.add(key)
            yield
        finally:
            _HELD.discard(key)
            _flock(handle, fcntl.LOCK_UN)


def lock_holder(run_dir: Path) -> str | None:
    """Who is training a run now ("pid 12 on node3, since ..."), None when no process holds its lock."""
    path = run_lock_path(run_dir)
    if path.absolute() in _HELD:
        return f"this process (pid {os.getpid()})"
    if not path.is_file():
        return None
    try:
        with open(path) as handle:
            got = _flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            if got is False:
                return _holder_text(path)
            if got:
                _flock(handle, fcntl.LOCK_UN)
    except OSError:
        return None
    return None


def ensure_free_space(folder: Path, nbytes: int, what: str, fix: str) -> None:
    """Refuse, naming the numbers and `fix`, to write `nbytes` of `what` into `folder` when its disk lacks room
    (5% and 64 MiB to spare): a memory-mapped write to a full disk kills the process (SIGBUS) without a message."""
    free = shutil.disk_usage(folder).free
    if free < nbytes * 1.05 + (64 << 20):
        raise OSError(f"not enough disk space for {what} in {folder}: it needs {nbytes / 2**30:.2f} GiB and "
                      f"{free / 2**30:.2f} GiB are free; {fix}")


FAILED = "FAILED"


def record_failure(run_dir: Path, exc: BaseException) -> None:
    """Write FAILED (time, error, traceback) into a run directory whose attempt raised, so `run --dry-run` and the
    report can say why it is not done; a later successful attempt removes it."""
    import traceback

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    atomic_write_text(Path(run_dir) / FAILED, f"{now()} {type(exc).__name__}: {first_line(exc)}\n\n{text}")


def first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), "")


def last_failure(run_dir: Path) -> str | None:
    """The first line of a run directory's FAILED record (time, error type and message), or None."""
    try:
        return (Path(run_dir) / FAILED).read_text().splitlines()[0]
    except (OSError, IndexError):
        return None


def write_json(path: Path, obj: Any) -> None:
    """Strict JSON (what jq and JavaScript read): a NaN or infinite float, such as the mean HD95 of a set whose
    every image's HD95 is infinite, is written as null."""
    atomic_write_text(path, json.dumps(_finite(obj), indent=2, default=_jsonable, allow_nan=False) + "\n")


def _finite(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:   # numpy scalars
        return _finite(obj.item())
    return obj


def _jsonable(obj):
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_csv(path: Path, rows: Iterable[dict], fieldnames: list[str] | None = None) -> None:
    rows = list(rows)
    if fieldnames is None:
        fieldnames = list(dict.fromkeys(k for row in rows for k in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fieldnames, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def save_torch(path: Path, obj: Any) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent, capture_output=True, text=True,
                             timeout=30)   # a loaded host can take seconds
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def environment(device: str, weights: str | None, weights_sha256: str | None) -> dict:
    import numpy
    import timm

    try:
        import segmentation_models_pytorch as smp
        smp_version = smp.__version__
    except ImportError:  # pragma: no cover
        smp_version = None
    sha = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain")
    return {
        "python": platform.python_version(), "torch": torch.__version__, "timm": timm.__version__,
        "smp": smp_version, "numpy": numpy.__version__, "segbench": _package_version(),
        "git_sha": sha, "git_dirty": bool(dirty) if dirty is not None else None,
        "platform": platform.platform(), "device": device,
        "device_name": (torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda")
                        else platform.processor() or "cpu"),
        "weights": weights, "weights_sha256": weights_sha256,
        "host": platform.node(), "slurm_job": slurm_job(),
    }


def slurm_job() -> str | None:
    """The Slurm job running this process ("<array job>_<task>" for array tasks), None outside Slurm."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID")


def machine() -> dict:
    """The host a benchmark figure was measured on (saved next to every figure; speeds only compare on one host)."""
    return {"python": platform.python_version(), "cpu_count": os.cpu_count(),
            "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "machine": platform.machine(), "platform": platform.platform(), "git_sha": _git("rev-parse", "HEAD")}


def _package_version() -> str:
    try:
        from importlib.metadata import version
        return version("segbench")
    except Exception:
        return "unknown"


def trainable_state(model) -> dict[str, torch.Tensor]:
    """What a checkpoint keeps: the decoder, plus the backbone only when it trains (never re-save a frozen one)."""
    state = model.state_dict()
    if model.freeze_backbone:
        return {k: v for k, v in state.items() if k.startswith("decoder.")}
    return state


def _not_a_run(path: Path) -> str:
    """Why `path` is not a run directory, pointing at one when it is a runs folder or a dataset level of one."""
    if not path.exists():
        return f"run directory not found: {path}"
    if not path.is_dir():
        return f"{path} is a file, not a run directory (a folder holding config.yaml and model.pt)"
    inside = sorted(p.parent for pattern in ("*/config.yaml", "*/*/config.yaml") for p in path.glob(pattern))
    hint = f"; runs inside it, e.g. {inside[0]}" if inside else ""
    return f"{path} is not a run directory (no config.yaml){hint}"


def load_config_file(run_dir: Path) -> Config:
    from benchmark.config import config_from_dict

    return config_from_dict(read_config_yaml(run_dir))


def read_config_yaml(run_dir: Path) -> dict:
    """A run's config.yaml as written, refused as damaged when it does not parse or was cut short."""
    import yaml

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(_not_a_run(Path(run_dir)))
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(damaged_config(path, exc)) from None
    if missing := missing_sections(data):
        raise ValueError(damaged_config(path, f"missing its {', '.join(missing)} section{'s' * (len(missing) > 1)} "
                                              "(cut short?)"))
    return data


# The sections every config.yaml segbench has written holds (benchmark.config.Config). A section added to Config
# later must not join this list: the config.yaml files written before it would all read as damaged.
CONFIG_SECTIONS = ("backbone", "decoder", "data", "optim", "train", "eval", "run")


def missing_sections(data) -> list[str]:
    """The sections of CONFIG_SECTIONS a config.yaml lacks (a file cut short can still parse); a setting added to a
    section since is not missing: it takes its default."""
    data = data if isinstance(data, dict) else {}
    return [name for name in CONFIG_SECTIONS if not isinstance(data.get(name), dict)]


def damaged_config(path: Path, why: Exception | str) -> str:
    """`why`: the YAML error, or what a config.yaml that parses lacks."""
    mark = getattr(why, "problem_mark", None)
    what = why if isinstance(why, str) else "not valid YAML" + (f" (line {mark.line + 1})" if mark else "")
    return (f"{path} is {what}: the run directory is damaged; remove it, or run `segbench run`, which moves "
            "damaged run directories aside")


def load_run_model(run_dir: Path, device: str | torch.device = "cpu"):
    """The selected model of a run (model.pt), on its configured backbone, in eval mode, with its `num_classes`."""
    from benchmark.registry import build_model

    run_dir = Path(run_dir)
    cfg = load_config_file(run_dir)
    weights = run_dir / "model.pt"
    if not weights.is_file():
        holder = lock_holder(run_dir)
        raise FileNotFoundError(f"{run_dir} has no model.pt: the run has not finished (" + (
            f"it is being trained now, by {holder}: wait for it" if holder else "train it again to resume") + ")")
    try:
        saved = torch.load(weights, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError) as exc:   # truncated by a full disk or a partial copy
        raise ValueError(f"{weights} is unreadable ({first_line(exc) or type(exc).__name__}): the run directory is "
                         "damaged; train the run again") from None
    state = saved["state"]
    env = json.loads((run_dir / "env.json").read_text()) if (run_dir / "env.json").is_file() else {}
    recorded = env.get("weights_sha256")
    backbone_weights = cfg.backbone.weights
    if (backbone_weights not in (None, "", "none") and not str(backbone_weights).startswith("hub:")
            and not Path(backbone_weights).expanduser().exists()):
        raise FileNotFoundError(f"{run_dir} was trained on the backbone weights {backbone_weights}, which are not "
                                "there any more; put them back at that path"
                                + (f" (SHA-256 {recorded[:12]}...)" if recorded else ""))
    model = build_model(cfg, saved["num_classes"])
    current = model.backbone.weights_sha256
    if model.freeze_backbone and recorded and current and current != recorded:
        raise ValueError(f"the backbone weights {backbone_weights} have changed since {run_dir} was trained "
                         f"(SHA-256 {current[:12]}... now, {recorded[:12]}... in env.json): its scores would not be "
                         "its model's; restore the original file")
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k.startswith("decoder.") or not model.freeze_backbone]
    if missing or unexpected:
        raise ValueError(f"{weights} does not fit the configured model: "
                         f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    model.num_classes = int(saved["num_classes"])   # what its maps hold: predict records it
    return cfg, model.to(device).eval()


def save_model(run_dir: Path, model, num_classes: int) -> None:
    """model.pt: the selected model's trainable weights and its number of classes."""
    save_torch(Path(run_dir) / "model.pt", {"num_classes": num_classes, "state": trainable_state(model)})


def is_done(run_dir: Path) -> bool:
    return (Path(run_dir) / "DONE").is_file()


def mark_done(run_dir: Path) -> None:
    atomic_write_text(Path(run_dir) / "DONE", now() + "\n")


def tidy_done(run_dir: Path) -> None:
    """Remove a finished run's checkpoint.pt, left by a kill between DONE and its removal (`train.finish_run`): a
    finished run never resumes, and a DPT run's checkpoint is hundreds of MB."""
    if is_done(run_dir):
        (Path(run_dir) / "checkpoint.pt").unlink(missing_ok=True)


def import_public_run(checkpoint: Path, backbone: str, out: Path, dataset: str = "kvasir",
                      data_root: str | None = None, size: int = 256) -> Path:
    """A run directory (config.yaml, model.pt, env.json) around a public-code checkpoint, for evaluate/predict."""
    from segdino.public_checkpoint import load_public_checkpoint
    from segdino.weights import sha256_file

    from benchmark.config import dump_yaml, load_config

    out = Path(out)
    if not Path(checkpoint).is_file():   # before the weights reader calls it a weights file
        raise FileNotFoundError(f"checkpoint file not found: {checkpoint}" if not Path(checkpoint).exists() else
                                f"{checkpoint} is a folder: give the public code's checkpoint file (.pth)")
    if (out / "model.pt").exists():
        raise FileExistsError(f"{out} already holds a model; choose another --out")
    from benchmark.registry import DATASETS, check_key

    check_key("dataset", dataset, DATASETS)   # evaluate reads it back: a typo must fail here, not there
    if data_root and not Path(data_root).expanduser().is_dir():
        raise FileNotFoundError(f"data root not found: {data_root}")
    model = load_public_checkpoint(checkpoint, backbone)
    # through load_config, so the data root is recorded as an absolute path like every run's
    cfg = load_config("public-code", overrides={"backbone.name": backbone, "data.dataset": dataset,
                                                 "data.size": size, "run.runs_dir": str(out.parent),
                                                 "data.root": data_root})
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", dump_yaml(cfg))
    out_channels = model.decoder.scratch.output_conv.out_channels
    save_model(out, model, 2 if out_channels == 1 else out_channels)
    env = environment("cpu", None, None)
    env.update({"imported_from": str(checkpoint), "imported_sha256": sha256_file(Path(checkpoint)), "started": now(),
                "note": "public SegDINO code checkpoint: its backbone was fine-tuned (never frozen)"})
    write_json(out / "env.json", env)
    return out
