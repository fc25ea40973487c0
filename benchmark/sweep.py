"""`segbench run`: the matrix of methods x datasets x seeds, resumable, run locally or on Slurm through submitit.

Each run is independent and idempotent (`train_run` skips a finished run directory and resumes a partial one), so
a sweep is a list of configs handed to an executor; rerunning the same command after any interruption completes
what is missing and nothing else. A corrupt run directory (unreadable records, or a checkpoint that cannot be
loaded) is moved aside, never deleted, and redone. `RUNS_DIR/results.csv` is regenerated from the run directories.
A run is trained by one process at a time (records.run_lock): a sweep started twice, or a Slurm job submitted twice,
finds the runs the other is training busy, does the rest, then waits for those.
"""
from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import submitit.helpers
import torch
from tqdm.auto import tqdm

from benchmark import records
from benchmark.config import Config, load_config
from benchmark.progress import bars_off
from benchmark.registry import check_config
from benchmark.workers import CORES_VARIABLE, usable_cores

EXECUTORS = ("local", "slurm", "submitit-local")
PAPER_DATASETS = ("tn3k", "kvasir", "isic2017", "msd", "vmd", "visha")   # `run --all`
PAPER_METHODS = ("segdino", "unet", "upernet", "dpt")
TAKEOVERS = 2   # times a Slurm sweep submits again a run whose other trainer stopped before finishing it
POLL_S = 1.0    # how often a submitit sweep looks at its jobs and at the busy runs it waits for


@dataclass(frozen=True)
class SweepSpec:
    datasets: tuple[str, ...]
    methods: tuple[str, ...]
    seeds: tuple[int, ...] = (0, 1, 2)
    preset: str = "paper"
    config_file: str | None = None
    overrides: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SlurmOptions:
    partition: str | None = None
    time_min: int = 120
    gpus_per_node: int = 1
    cpus_per_task: int = 8
    mem_gb: int = 64
    array: bool = True          # one array job for the whole sweep, else one job per run
    array_parallelism: int = 64
    runs_per_gpu: int = 1       # runs side by side on each of a job's GPUs; a job takes max(1, gpus) x this many

    @property
    def runs_per_job(self) -> int:
        return max(1, self.gpus_per_node) * self.runs_per_gpu


def plan(spec: SweepSpec) -> list[Config]:
    """One resolved config per (dataset, method, seed), in that order."""
    return [load_config(spec.preset, spec.config_file, {**spec.overrides, "data.dataset": d, "decoder.name": m,
                                                        "train.seed": s})
            for d in spec.datasets for m in spec.methods for s in spec.seeds]


def check_inputs(configs: list[Config], data_problems: dict | None = None,
                 deviations: dict | None = None) -> dict[str, list[str]]:
    """Fail before any work, with one line, on an unknown key, a dataset missing or laid out wrongly under its data
    root, or missing weights. With `data_problems` (a dict), dataset problems are collected there by dataset key
    instead (what `run --dry-run` shows). Returns each dataset's notes (how it was read: its split, its classes).
    With `deviations` (a dict), a dataset whose counts differ from the official ones gets one line there by key
    (`check.count_warning`, what `train` and `run` print as a warning), unless every run of it takes a data.subset,
    which differs on purpose. Data settings that change nothing on their dataset are reset in `configs` (in place;
    `registry.canonical_data`)."""
    from benchmark.data.base import DataError
    from benchmark.data.check import count_warning
    from benchmark.registry import DATASETS, canonical_data, open_data

    for cfg in configs:
        check_config(cfg)
    for runs_dir in {c.run.runs_dir for c in configs}:
        records.check_folder_option(runs_dir, "--runs-dir")
    keys = {(c.data.dataset, c.data.root, c.data.num_classes): c for c in configs}
    notes: dict[str, list[str]] = {}
    sources = {}
    for opened, cfg in keys.items():   # each dataset's layout, before hours of other runs (a listing, no decoding)
        key = cfg.data.dataset
        try:
            sources[opened] = open_data(cfg.data)
            notes[key] = sources[opened].notes
        except DataError as exc:
            message = str(exc) if len(keys) == 1 else (
                f"{exc}. In a sweep, --data-root holds each dataset in its usual folder ({key}: "
                f"{' or '.join(DATASETS[key][1])}); or leave {key} out with --datasets" if key != "folder" else
                f"{exc}. A folder dataset is --data-root itself, so it cannot share one sweep with the downloaded "
                "datasets: run it in a `segbench run` of its own (--datasets folder --data-root YOUR_FOLDER)")
            if data_problems is None:
                raise DataError(message) from None
            data_problems[key] = message
    whole = {(c.data.dataset, c.data.root, c.data.num_classes) for c in configs if not c.data.subset}
    for opened, source in sources.items():
        if deviations is not None and opened in whole and (line := count_warning(source)):
            deviations[opened[0]] = line
    for i, cfg in enumerate(configs):
        source = sources.get((cfg.data.dataset, cfg.data.root, cfg.data.num_classes))
        if source is not None:
            configs[i], reset = canonical_data(cfg, source)
            listed = notes.setdefault(cfg.data.dataset, [])
            listed += [note for note in reset if note not in listed]
    for weights in {c.backbone.weights for c in configs}:
        if weights not in (None, "", "none") and not str(weights).startswith("hub:") and not Path(weights).exists():
            raise FileNotFoundError(f"weights file not found: {weights}")
    return notes


def plan_status(spec: SweepSpec) -> list[dict]:
    """What `run` would do for each planned run, without doing it."""
    rows = []
    configs = plan(spec)
    problems: dict = {}
    check_inputs(configs, problems)
    sources: dict = {}
    for cfg in configs:
        if cfg.data.dataset in problems:
            rows.append({"dataset": cfg.data.dataset, "method": cfg.decoder.name, "seed": cfg.train.seed,
                         "state": "no data", "why": problems[cfg.data.dataset],
                         "run_dir": str(records.run_dir_for(cfg))})
            continue
        state, why = run_state(records.run_dir_for(cfg))
        if state in ("done", "partial", "failed") and (clash := config_clash(cfg, sources)):
            state, why = "conflict", clash
        elif state != "done" and (holder := records.lock_holder(records.run_dir_for(cfg))):
            state, why = "running", f"being trained by {holder}"
        rows.append({"dataset": cfg.data.dataset, "method": cfg.decoder.name, "seed": cfg.train.seed,
                     "state": state, "why": why, "run_dir": str(records.run_dir_for(cfg))})
    return rows


def config_clash(cfg: Config, sources: dict | None = None) -> str:
    """Why the run directory of `cfg` belongs to another config or other samples ("" when it does not).
    `sources` memoises each (dataset, root)'s opened source across the runs of a sweep."""
    from benchmark.registry import open_data
    from benchmark.train import RunConflict, check_same_config, check_same_samples

    sources = {} if sources is None else sources
    try:
        run_dir = records.run_dir_for(cfg)
        check_same_config(cfg, run_dir)
        if (run_dir / "split.json").is_file():
            key = (cfg.data.dataset, cfg.data.root, cfg.data.num_classes)
            if key not in sources:
                sources[key] = open_data(cfg.data)
            check_same_samples(cfg, run_dir, sources[key])
    except RunConflict as exc:
        return str(exc)
    except Exception:  # noqa: BLE001 - an unreadable config.yaml is run_state's "corrupt"
        return ""
    return ""


def run_state(run_dir: Path) -> tuple[str, str]:
    """("new" | "done" | "partial" | "failed" | "corrupt", why) for a run directory: "failed" is a partial run
    whose last attempt left a FAILED record (the next attempt resumes it all the same)."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return "new", ""
    try:
        if (run_dir / "config.yaml").exists():
            records.read_config_yaml(run_dir)   # parses and is whole (its settings are checked by config_clash)
        if records.is_done(run_dir):
            for name in ("metrics.json", "profile.json", "env.json"):
                json.loads((run_dir / name).read_text())
            if not (run_dir / "model.pt").is_file():
                raise ValueError("model.pt missing")
            return "done", ""
        failed = records.last_failure(run_dir)
        state, failed = ("failed", f"; the last attempt failed at {failed}") if failed else ("partial", "")
        if (run_dir / "checkpoint.pt").exists():
            torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
            return state, "resumes from checkpoint.pt" + failed
        return state, "no checkpoint yet: starts over" + failed
    except Exception as exc:  # any unreadable record makes the directory corrupt
        return "corrupt", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def quarantine(run_dir: Path) -> Path:
    """Move a corrupt run directory aside (kept for inspection) so the run is redone from scratch."""
    target = run_dir.with_name(f"{run_dir.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir.rename(target)
    return target


def execute(cfg_dict: dict, device: str | None = None, progress: bool = True, wait: bool = False,
            checked: bool = False) -> dict:
    """Run one config (in this process or a submitit job) and return its summary row. Picklable entry point.
    A run another process is training raises records.RunBusy, or with `wait` is waited for: then it is found done,
    or (its trainer stopped early) resumed here. `checked`: this sweep has just compared the run's config and files
    (`config_clash`), so a finished run is not opened again (a dataset listing per run, on a rerun of a sweep)."""
    from benchmark.config import config_from_dict
    from benchmark.train import train_run

    cfg = config_from_dict(cfg_dict)
    if device is not None:
        import dataclasses
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, device=device))
    run_dir = records.run_dir_for(cfg)
    state, why = run_state(run_dir)
    if checked and state == "done":
        records.tidy_done(run_dir)
        return summary_row(run_dir, state, 0.0)
    with contextlib.ExitStack() as stack:
        # a new run takes its lock in train_run, once its inputs check out; a done one needs none
        if wait or state in ("partial", "failed", "corrupt"):
            if wait and (holder := records.lock_holder(run_dir)):
                tqdm.write(f"waiting for {_label(cfg_dict)}: being trained by {holder}")
            stack.enter_context(records.run_lock(run_dir, wait=wait))
            state, why = run_state(run_dir)   # what its last holder left
        if state == "corrupt":   # never move a directory being written: under the lock (taken again: a no-op)
            stack.enter_context(records.run_lock(run_dir, wait=wait))
            state, why = run_state(run_dir)
            if state == "corrupt":
                moved = quarantine(run_dir)
                tqdm.write(f"corrupt run directory {run_dir} ({why}); moved to {moved.name} and redoing")
        start = time.perf_counter()
        train_run(cfg, run_dir, progress=progress)
    return summary_row(run_dir, state, time.perf_counter() - start)


class SlurmRun(submitit.helpers.Checkpointable):
    """`execute` as a Slurm job that requeues itself when preempted or near its time limit (submitit signals it
    `signal_delay_s` before the kill); the requeued job resumes the run from its last checkpoint."""

    def __call__(self, cfg_dict: dict) -> dict:
        from benchmark.train import RunConflict

        try:
            return execute(cfg_dict, None, False)
        except records.RunBusy as exc:   # e.g. the sweep submitted twice: the submitting process waits for it
            return {"busy": exc.holder}
        except RunConflict as exc:   # not a failure of the run (no FAILED record): the submitter quotes it
            return {"conflict": str(exc)}


class SlurmRuns(submitit.helpers.Checkpointable):
    """Several runs in one Slurm job, side by side: `runs_per_gpu` local workers on each GPU the job was given
    (on its CPUs when it has none). Requeued like SlurmRun; finished runs are skipped on the second start."""

    def __init__(self, runs_per_gpu: int, keep_going: bool = False):
        self.runs_per_gpu = runs_per_gpu
        self.keep_going = keep_going

    def __call__(self, cfg_dicts: list[dict]) -> list[dict]:
        # a run another process trains is not waited for here (the job's GPUs would idle): a {"busy"} row, and
        # the submitting process waits
        return _run_local(cfg_dicts, False, None, self.runs_per_gpu, self.keep_going, wait_busy=False)


def summary_row(run_dir: Path, state: str, seconds: float) -> dict:
    """One line of the sweep table: `seconds` is this call's wall time for the run (about 0 when it was already done),
    `train_seconds` the training time its records hold."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    env = json.loads((run_dir / "env.json").read_text())
    profile, first = next(iter(metrics["profiles"].items()))
    main = {k: v for k, v in first["metrics"].items() if k in ("dice", "iou", "hd95", "max_fbeta", "mae", "ber")}
    cache = env.get("feature_cache", {})
    return {"dataset": metrics["dataset"], "method": metrics["method"], "seed": metrics["seed"], "was": state,
            "profile": profile, **main, "selected_epoch": metrics["selected_epoch"],
            "extracted_features": sum(bool(v.get("extracted")) for v in cache.values() if isinstance(v, dict)),
            "train_seconds": metrics.get("train_seconds"), "seconds": seconds, "run_dir": str(run_dir)}


def run_sweep(spec: SweepSpec, executor: str = "local", slurm: SlurmOptions | None = None,
              progress: bool = True, devices: list[str] | None = None, runs_per_gpu: int = 1,
              keep_going: bool = False) -> list[dict]:
    """Run every planned config not yet done; returns one summary row per run (in plan order) and rewrites
    results.csv. `devices` (local executor): one worker process per entry, e.g. ["cuda:0", "cuda:1"]; None -> one
    worker per visible GPU when there are several and the config asks for auto/cuda, else this process alone.
    `runs_per_gpu`: that many workers on each device (local), e.g. 4 batch-4 runs sharing one GPU; for Slurm it is
    `slurm.runs_per_gpu`. `keep_going`: a failed run does not stop the others (local, and within a Slurm job that
    holds several runs; separate jobs always run on); the failures are raised together at the end as a SweepError,
    after results.csv is rewritten."""
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor '{executor}'; valid: {', '.join(EXECUTORS)}")
    if runs_per_gpu < 1 or (slurm is not None and slurm.runs_per_gpu < 1):
        raise ValueError("--runs-per-gpu must be at least 1")
    configs = plan(spec)
    if not configs:
        raise ValueError("the sweep is empty: give at least one dataset, method and seed")
    check_inputs(configs)
    sources: dict = {}
    clashes = [clash for cfg in configs if (clash := config_clash(cfg, sources))]
    if clashes:   # before any work: a finished run is never reported for a config it was not trained with
        from benchmark.train import RunConflict
        runs = "1 planned run clashes" if len(clashes) == 1 else f"{len(clashes)} planned runs clash"
        raise RunConflict(f"{runs} with existing run directories; first: {clashes[0]}")
    dicts = [cfg.to_dict() for cfg in configs]
    if executor == "local":
        rows = _run_local(dicts, progress, devices, runs_per_gpu, keep_going, checked=True)
    else:
        rows = _run_submitit(dicts, executor, slurm or SlurmOptions(), progress, keep_going)
    write_results(Path(configs[0].run.runs_dir))
    return rows


def local_devices(requested: list[str] | None, train_device: str, runs_per_gpu: int = 1) -> list[str]:
    """The devices of local worker processes, one entry per worker: `requested` as given, else every visible GPU
    when the run asks for auto/cuda, else the CPU; each device `runs_per_gpu` times (interleaved, so workers spread
    over GPUs). [] when that makes a single worker: the sweep then runs sequentially in this process."""
    if requested:
        from benchmark.config import DEVICE_NAMES
        from benchmark.train import resolve_device

        for name in requested:   # a typo or a missing GPU fails here, before any work
            if not DEVICE_NAMES.fullmatch(name):
                raise ValueError(f"--devices: '{name}' is not a device; use e.g. cuda:0,cuda:1 or cpu")
            try:
                resolve_device(name)
            except ValueError as exc:
                raise ValueError(f"--devices: {exc}") from None
        base = list(requested)
    else:
        if train_device != "auto":   # --device cuda:0 on a machine without one: before any work, not in the first run
            from benchmark.train import resolve_device

            resolve_device(train_device)
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        use_gpus = gpus > 0 and train_device in ("auto", "cuda")
        base = [f"cuda:{i}" for i in range(gpus)] if use_gpus else ["cpu" if train_device == "auto" else train_device]
    devices = base * runs_per_gpu
    return devices if len(devices) > 1 or requested else []


def _run_local(dicts: list[dict], progress: bool, devices: list[str] | None = None,
               runs_per_gpu: int = 1, keep_going: bool = False, wait_busy: bool = True,
               checked: bool = False) -> list[dict]:
    """Rows in plan order. A run another process is training is done last, waiting for it, or with `wait_busy`
    False (in a Slurm job) gets the row {"busy": holder}, and a run whose directory holds another config or other
    files the row {"conflict": message}."""
    from benchmark.train import RunConflict

    devices = local_devices(devices, dicts[0]["train"]["device"], runs_per_gpu)[:len(dicts)]  # no idle workers
    if len(devices) > 1:
        rows = _run_local_workers(dicts, devices, progress, keep_going, wait_busy, checked)
    else:
        device = devices[0] if devices else None
        found: dict[int, dict] = {}
        busy: list[int] = []   # runs another process is training: the others first, then wait for these
        bar = tqdm(total=len(dicts), desc="sweep", unit="run", disable=bars_off(progress))
        for wait, order in ((False, range(len(dicts))), (True, busy)):
            for i in list(order):
                cfg = dicts[i]
                bar.set_postfix_str(_label(cfg))
                try:
                    found[i] = execute(cfg, device=device, progress=progress, wait=wait, checked=checked)
                except records.RunBusy as exc:
                    if wait_busy:
                        busy.append(i)
                        continue
                    found[i] = {"busy": exc.holder}
                except RunConflict as exc:
                    if wait_busy:   # here, the user's own command: the error itself
                        raise
                    found[i] = {"conflict": str(exc)}   # in a Slurm job: for the submitting process to report
                except Exception as exc:  # noqa: BLE001 - a user's Ctrl-C (BaseException) still stops the sweep
                    if not keep_going:
                        raise
                    _stop_if_gpu_lost(cfg, exc, dicts)
                    found[i] = _failure(cfg, exc)
                bar.update()
        bar.close()
        rows = [found[i] for i in range(len(dicts))]
    failed = [row["failed"] for row in rows if "failed" in row]
    if failed:
        table = write_results(Path(dicts[0]["run"]["runs_dir"]))
        raise SweepError(f"{len(failed)} of {len(rows)} runs failed (the others are recorded in {table}; fix and "
                         "run the same command again): " + "; ".join(failed),
                         rows=[row for row in rows if "failed" not in row])
    return rows


# How PyTorch words an asynchronous CUDA error (device-side assert, illegal address): it poisons the process's CUDA
# context. An out-of-memory error ("CUDA out of memory") does not, and a sweep can go on after one.
STICKY_CUDA_ERROR = "CUDA error:"


def _stop_if_gpu_lost(cfg: dict, exc: BaseException, dicts: list[dict]) -> None:
    """Under --keep-going, stop anyway after a sticky CUDA error: the process (or worker) that met it cannot use the
    GPU again, so every later run on it would fail with the same error."""
    if STICKY_CUDA_ERROR in str(exc):
        write_results(Path(dicts[0]["run"]["runs_dir"]))
        raise SweepError(f"{_label(cfg)} failed with a CUDA error that leaves its process unable to use the GPU "
                         f"({str(exc).splitlines()[0]}), so the sweep stops here; the runs done are recorded, and "
                         "the same command resumes the others") from exc


def _failure(cfg: dict, exc: BaseException) -> dict:
    """A failed run's place in the sweep's rows under --keep-going; its message is printed at once."""
    line = next((x for x in str(exc).splitlines() if x.strip()), "")
    message = f"{_label(cfg)} ({type(exc).__name__}: {line})" if line else f"{_label(cfg)} ({type(exc).__name__})"
    tqdm.write(f"run failed, going on: {message}")
    return {"failed": message}


_WORKER_DEVICE: str | None = None


def _init_worker(queue, threads: int | None) -> None:
    """Give this worker process its own device (each worker takes one from the queue once, at start) and tell its
    runs how many workers share that device (they size their use of its memory by it) and how many cores are theirs
    (for torch's threads and the test split's scoring workers)."""
    import os

    global _WORKER_DEVICE
    _WORKER_DEVICE, sharers = queue.get()
    os.environ["SEGBENCH_RUNS_ON_DEVICE"] = str(sharers)
    if threads:
        torch.set_num_threads(threads)
        os.environ[CORES_VARIABLE] = str(threads)


def _worker_execute(cfg: dict, wait: bool = False, checked: bool = False) -> dict:
    return execute(cfg, device=_WORKER_DEVICE, progress=False, wait=wait, checked=checked)


def _run_local_workers(dicts: list[dict], devices: list[str], progress: bool,
                       keep_going: bool = False, wait_busy: bool = True, checked: bool = False) -> list[dict]:
    """One worker process per device, each taking the next pending run when it is free (runs differ in length, so a
    fixed split would leave devices idle). Workers of one dataset share its feature extraction through the cache
    lock. The first failure stops the sweep (queued runs are cancelled, running ones finish and resume on rerun),
    unless `keep_going`: then a failed run takes a failure row and the others go on. A run another process is
    training goes to the back of the queue, to be waited for."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    from benchmark.train import RunConflict

    ctx = mp.get_context("spawn")   # CUDA cannot be used in forked children
    queue = ctx.Queue()
    for name in devices:
        queue.put((name, devices.count(name)))
    threads = max(1, usable_cores() // len(devices))   # this process's cores (a Slurm job's allocation) shared
    rows: dict[int, dict] = {}
    with ProcessPoolExecutor(len(devices), mp_context=ctx, initializer=_init_worker,
                             initargs=(queue, threads)) as pool:
        futures = {pool.submit(_worker_execute, cfg, False, checked): i for i, cfg in enumerate(dicts)}
        bar = tqdm(total=len(dicts), desc=f"sweep ({len(devices)} workers: {','.join(devices)})", unit="run",
                   disable=bars_off(progress))
        try:
            for fut in _completed(futures, wait, FIRST_COMPLETED):
                cfg = dicts[futures[fut]]
                try:
                    rows[futures[fut]] = fut.result()
                except records.RunBusy as exc:   # queued behind every other run; a worker then waits for it
                    if wait_busy:
                        futures[pool.submit(_worker_execute, cfg, True, checked)] = futures[fut]
                        continue
                    rows[futures[fut]] = {"busy": exc.holder}
                except RunConflict as exc:
                    if wait_busy:
                        raise
                    rows[futures[fut]] = {"conflict": str(exc)}
                except BrokenProcessPool:
                    # a worker died (killed for memory, or crashed) and the pool stopped every other worker: which
                    # run it held cannot be told, so no run is blamed and the rerun resumes them all
                    unfinished = [_label(dicts[i]) for i in sorted(set(futures.values())) if i not in rows]
                    write_results(Path(dicts[0]["run"]["runs_dir"]))
                    raise SweepError(
                        f"a worker process died (the system may have killed it for memory, or it crashed), which "
                        f"stops every worker; {len(unfinished)} of {len(dicts)} runs did not finish: "
                        f"{', '.join(unfinished)}. Finished runs are recorded; run the same command again to "
                        "resume the others (with fewer --runs-per-gpu if memory ran out)") from None
                except Exception as exc:  # noqa: BLE001 - see _run_local
                    if not keep_going:
                        raise
                    _stop_if_gpu_lost(cfg, exc, dicts)
                    rows[futures[fut]] = _failure(cfg, exc)
                bar.update()
                bar.set_postfix_str(f"{_label(cfg)} {'failed' if 'failed' in rows[futures[fut]] else 'done'}")
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            bar.close()
    return [rows[i] for i in range(len(dicts))]


def _completed(futures: dict, wait, first_completed):
    """Futures as they complete, including those added to `futures` meanwhile (as_completed takes a fixed set)."""
    seen: set = set()
    while len(seen) < len(futures):
        done, _ = wait([f for f in futures if f not in seen], return_when=first_completed)
        for fut in done:
            seen.add(fut)
            yield fut


def _run_submitit(dicts: list[dict], executor: str, slurm: SlurmOptions, progress: bool,
                  keep_going: bool = False) -> list[dict]:
    """Slurm through submitit (one array job, or one job per run); `submitit-local` runs the same path as local
    subprocesses. Only the runs not yet done are submitted (nothing when all are done); rows in plan order."""
    done = [run_state(records.run_dir_for(_cfg(d)))[0] == "done" for d in dicts]
    for d, is_done in zip(dicts, done):
        if is_done:
            records.tidy_done(records.run_dir_for(_cfg(d)))
    pending = [d for d, is_done in zip(dicts, done) if not is_done]
    per_job = slurm.runs_per_job if executor == "slurm" else slurm.runs_per_gpu
    groups = [pending[i:i + per_job] for i in range(0, len(pending), per_job)]   # runs sharing one job
    jobs = []
    if pending:
        folder = Path(dicts[0]["run"]["runs_dir"]) / ".submitit" / "%j"
        try:
            ex = submitit.AutoExecutor(folder=folder, cluster="local" if executor == "submitit-local" else "slurm")
        except RuntimeError as exc:   # submitit: 'Could not detect "srun", are you indeed on a slurm cluster?'
            raise SweepError(f"{exc} (run this on a Slurm login node, or use --executor local or submitit-local "
                             "here)") from None
        params = {"timeout_min": slurm.time_min, "name": "segbench"}
        if executor == "slurm":   # submitit drops None values: no partition line, no GPU line for gpus_per_node=0
            params.update(gpus_per_node=slurm.gpus_per_node or None, cpus_per_task=slurm.cpus_per_task,
                          mem_gb=slurm.mem_gb, slurm_array_parallelism=slurm.array_parallelism,
                          slurm_partition=slurm.partition)
        else:
            params.update(gpus_per_node=0)
        ex.update_parameters(**params)
        # one run per job: SlurmRun(cfg); several: SlurmRuns([cfg, ...]) with local workers inside the job
        fn, args = (SlurmRun(), pending) if per_job == 1 else (SlurmRuns(slurm.runs_per_gpu, keep_going), groups)
        if slurm.array and executor == "slurm":
            jobs = ex.map_array(fn, args)
        else:
            jobs = [ex.submit(fn, a) for a in args]
    results, failures, stopped, taken_over, failed_jobs, unsubmitted = {}, [], [], {}, set(), []
    queue = [(job, group, per_job > 1) for job, group in zip(jobs, groups)]
    submitted = len(queue)
    waiting = []   # (run, holder, job id): busy runs, settled as their other trainers let go, in any order
    bar = tqdm(total=len(queue), desc=f"sweep ({executor}, {len(pending)} runs)", unit="job",
               disable=bars_off(progress))

    def settle(d: dict, row: dict, job_id: str) -> None:
        nonlocal submitted
        label = _label(d)
        if "conflict" in row:
            failures.append(f"{label} (job {job_id}: {row['conflict']})")
            failed_jobs.add(job_id)
        elif "stopped" in row and taken_over.get(label, 0) < TAKEOVERS:   # that process left it unfinished
            taken_over[label] = taken_over.get(label, 0) + 1
            tqdm.write(f"{label}: its other trainer stopped before finishing it; submitting it again")
            try:
                if per_job > 1 and executor == "slurm" and len(taken_over) == 1:
                    ex.update_parameters(**_one_run_share(slurm))   # one run needs one GPU of the job's share
                queue.append((ex.submit(SlurmRun(), d), [d], False))
                submitted += 1
                bar.total += 1
                bar.refresh()
            except Exception as exc:  # noqa: BLE001 - e.g. sbatch refuses (a submission limit): that run only
                unsubmitted.append(f"{label} (submitting it again failed: {_last_line(exc)})")
        elif "stopped" in row:
            stopped.append(row["stopped"])
        else:
            results[label] = row

    while queue or waiting:   # every job and busy run is waited for: the others go on whatever one of them does
        ended = [entry for entry in queue if entry[0].done()]
        for entry in ended:
            queue.remove(entry)
            job, group, several = entry
            try:
                out = job.result()
            except Exception as exc:  # noqa: BLE001 - reported together below
                # the cause: what the failed runs recorded in FAILED (submitit's own text ends with its log paths)
                causes = [c.split(" ", 1)[-1] for d in group
                          if (c := records.last_failure(records.run_dir_for(_cfg(d))))]
                lines = [line for line in str(exc).splitlines() if line.strip()]
                cause = "; ".join(causes) or (lines[-1] if lines else type(exc).__name__)
                failures.append(f"{', '.join(map(_label, group))} (job {job.job_id}: {cause}; log {job.paths.stderr})")
                failed_jobs.add(job.job_id)
                bar.update()
                continue
            for d, row in zip(group, out if several else [out]):
                if "busy" in row:   # another process was training the run: wait for it here, not in the job
                    tqdm.write(f"waiting for {_label(d)}: being trained by {row['busy']}")
                    waiting.append((d, row["busy"], job.job_id))
                else:
                    settle(d, row, job.job_id)
            bar.update()
        freed = [(entry, row) for entry in list(waiting) if (row := _wait_for_other(*entry[:2])) is not None]
        for entry, row in freed:
            waiting.remove(entry)
            settle(entry[0], row, entry[2])
        if not ended and not freed:
            time.sleep(POLL_S)
    bar.close()
    if failures or stopped or unsubmitted:
        table = write_results(Path(dicts[0]["run"]["runs_dir"]))
        what = ([f"{len(failed_jobs)} of {_count(submitted, 'submitted job')} failed"] if failures else []) + (
            [f"{_count(len(stopped), 'run')} left to another process that stopped early"] if stopped else []) + (
            [f"{_count(len(unsubmitted), 'run')} could not be submitted again"] if unsubmitted else [])
        raise SweepError(f"{' and '.join(what)} (the other runs are recorded in {table}; fix and run the same "
                         "command again): " + "; ".join(failures + stopped + unsubmitted),
                         rows=[results[_label(d)] for d in dicts if _label(d) in results])   # plan order
    return [summary_row(records.run_dir_for(_cfg(d)), "done", 0.0) if is_done else results[_label(d)]
            for d, is_done in zip(dicts, done)]


def _one_run_share(slurm: SlurmOptions) -> dict:
    """Slurm resources of a job that takes over one run of a sweep whose jobs hold several: one GPU and its share
    of the CPUs and memory (a single run trains on one device)."""
    gpus = max(1, slurm.gpus_per_node)
    return {"gpus_per_node": 1 if slurm.gpus_per_node else None, "cpus_per_task": max(1, slurm.cpus_per_task // gpus),
            "mem_gb": max(1, slurm.mem_gb // gpus)}


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _last_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(exc).__name__


def _wait_for_other(cfg: dict, holder: str) -> dict | None:
    """The row of a run a job found busy, once its other trainer is gone (None while it holds the run): done, or
    {"stopped": why} when that trainer left it unfinished (the sweep then submits it again, up to TAKEOVERS
    times)."""
    run_dir = records.run_dir_for(_cfg(cfg))
    if records.lock_holder(run_dir) is not None:   # a quick look first: taking the lock tries for 0.4 s
        return None
    try:
        with records.run_lock(run_dir):   # not waiting: another trainer may have taken it since the look
            if records.is_done(run_dir):   # finished by the other process: for this config and these files?
                clash = config_clash(_cfg(cfg))
                return {"conflict": clash} if clash else summary_row(run_dir, "done", 0.0)
    except records.RunBusy:
        return None
    return {"stopped": f"{_label(cfg)} (being trained by {holder}, which stopped before finishing it; the same "
                       "command resumes it)"}


class SweepError(RuntimeError):
    """Some runs of a sweep failed; the message names each with its job and log; `rows` are the summary rows of
    the runs that finished."""

    def __init__(self, message: str, rows: list[dict] | None = None):
        super().__init__(message)
        self.rows = rows or []


def _label(d: dict) -> str:
    return f"{d['data']['dataset']}/{d['decoder']['name']}/s{d['train']['seed']}"


def _cfg(d: dict) -> Config:
    from benchmark.config import config_from_dict
    return config_from_dict(d)


def write_results(runs_dir: Path) -> Path | None:
    """Regenerate RUNS_DIR/results.csv from the run directories (reports reads only records)."""
    from reports.load import write_results_csv
    return write_results_csv(runs_dir)


__all__ = ["SweepSpec", "SlurmOptions", "plan", "run_state", "run_sweep", "execute", "write_results"]
