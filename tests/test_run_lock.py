"""One process per run directory: a `train`, sweep or Slurm job on a run being trained waits, or names its holder."""
import errno
import json
import os
import pickle
import subprocess
import sys
import threading
import time

import pytest

from benchmark import records
from benchmark.sweep import SlurmOptions, SweepError, SweepSpec, run_state, run_sweep

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}


def _spec(root, runs, seeds=(0, 1)):
    return SweepSpec(("kvasir",), ("segdino",), tuple(seeds), "smoke", None,
                     {"data.root": str(root), "run.runs_dir": str(runs), "train.epochs": 2, "data.size": 64,
                      "train.device": "cpu"})


def _hold(run_dir):
    """A separate process holding `run_dir`'s lock (as a training process would) until it is killed."""
    code = ("import sys, time\nfrom benchmark import records\nwith records.run_lock(sys.argv[1]):\n"
            "    print('held', flush=True)\n    time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], stdout=subprocess.PIPE, text=True, env=ENV)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _kill_when(proc, condition, timeout=300):
    """Kill `proc` (SIGKILL, as a crash would) once `condition()` holds, from a thread; returns the thread."""
    def watch():
        deadline = time.time() + timeout
        while not condition() and time.time() < deadline:
            time.sleep(0.05)
        proc.kill()
        proc.wait()
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_lock_names_its_holder_and_dies_with_it(tmp_path):
    run_dir = tmp_path / "kvasir" / "segdino__test__smoke__s0"
    assert records.lock_holder(run_dir) is None
    holder = _hold(run_dir)
    try:
        assert f"pid {holder.pid} on " in records.lock_holder(run_dir)
        with pytest.raises(records.RunBusy, match=rf"is being trained by another process \(pid {holder.pid} on "):
            with records.run_lock(run_dir):
                pass
    finally:
        holder.kill()
        holder.wait()
    assert records.lock_holder(run_dir) is None   # released by the kernel, even after SIGKILL
    with records.run_lock(run_dir):
        assert records.lock_holder(run_dir).startswith("this process")
        with records.run_lock(run_dir):   # taken once per process, however deep the calls
            pass
    assert not run_dir.exists()   # the lock file lives beside the run directory, hidden
    assert [p.name for p in run_dir.parent.iterdir()] == [".segdino__test__smoke__s0.lock"]
    busy = pickle.loads(pickle.dumps(records.RunBusy(run_dir, "pid 1 on h")))   # crosses process pools
    assert busy.run_dir == run_dir and busy.holder == "pid 1 on h" and "pid 1 on h" in str(busy)


def test_a_file_system_without_locks_warns_once_and_goes_on(tmp_path, monkeypatch):
    def no_locks(handle, flags):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(records.fcntl, "flock", no_locks)
    with pytest.warns(UserWarning, match="file locks are not supported in .*flock"):
        with records.run_lock(tmp_path / "a"):
            pass
    with records.file_lock(tmp_path / "cache.lock"):   # the feature cache's lock too, with no second warning
        pass


def test_train_on_a_busy_run_names_the_holder_and_records_nothing(tmp_path, kvasir_root):
    from typer.testing import CliRunner

    from benchmark.cli import app

    run_dir = tmp_path / "kvasir" / "segdino__test__smoke__s0"
    holder = _hold(run_dir)
    try:
        result = CliRunner().invoke(app, ["train", "--dataset", "kvasir", "--preset", "smoke", "--data-root",
                                          str(kvasir_root), "--runs-dir", str(tmp_path), "--epochs", "1", "--size",
                                          "64", "--device", "cpu"])
        text = " ".join(result.output.split())
        assert result.exit_code == 2 and f"being trained by another process (pid {holder.pid} on" in text, text
        assert "wait for it to finish" in text
        assert not run_dir.exists()   # no FAILED, no config.yaml: the directory is the other process's
        status = CliRunner().invoke(app, ["run", "--datasets", "kvasir", "--methods", "segdino", "--seeds", "0",
                                          "--preset", "smoke", "--data-root", str(kvasir_root), "--runs-dir",
                                          str(tmp_path), "--dry-run"])
        assert status.exit_code == 0 and "running" in status.output and f"pid {holder.pid}" in status.output
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.slow
def test_a_sweep_does_the_free_runs_first_then_waits_for_the_busy_one(tmp_path, kvasir_root):
    """Seed 0 is held by another process that dies without finishing it: the sweep trains seed 1 meanwhile, then
    waits for seed 0's lock and trains it itself; nothing is done twice."""
    first, second = (tmp_path / "kvasir" / f"segdino__test__smoke__s{s}" for s in (0, 1))
    holder = _hold(first)
    watcher = _kill_when(holder, lambda: records.is_done(second))
    rows = run_sweep(_spec(kvasir_root, tmp_path), progress=False)
    watcher.join()
    assert [(r["seed"], r["was"]) for r in rows] == [(0, "new"), (1, "new")]
    assert run_state(first)[0] == run_state(second)[0] == "done"
    assert (second / "DONE").stat().st_mtime <= (first / "DONE").stat().st_mtime
    assert len(list(tmp_path.glob("kvasir/segdino*"))) == 2


@pytest.mark.slow
def test_worker_processes_requeue_a_busy_run(tmp_path, kvasir_root):
    first, second = (tmp_path / "kvasir" / f"segdino__test__smoke__s{s}" for s in (0, 1))
    holder = _hold(first)
    watcher = _kill_when(holder, lambda: records.is_done(second))
    rows = run_sweep(_spec(kvasir_root, tmp_path), progress=False, devices=["cpu", "cpu"])
    watcher.join()
    assert [r["seed"] for r in rows] == [0, 1] and run_state(first)[0] == "done"
    assert (second / "DONE").stat().st_mtime <= (first / "DONE").stat().st_mtime


@pytest.mark.slow
def test_a_submitted_job_on_a_busy_run_leaves_it_to_its_trainer(tmp_path, kvasir_root, monkeypatch):
    """Through submitit (as on Slurm): the job returns at once and the submitting process waits for the lock. With
    no takeovers left, a trainer that stopped early is reported for the same command to resume."""
    import benchmark.sweep as S

    monkeypatch.setattr(S, "TAKEOVERS", 0)
    first = tmp_path / "kvasir" / "segdino__test__smoke__s0"
    holder = _hold(first)
    watcher = _kill_when(holder, lambda: any(tmp_path.glob(".submitit/*/*_result.pkl")))
    with pytest.raises(SweepError, match=r"kvasir/segdino/s0 \(being trained by pid \d+ on .*which stopped before "
                                         r"finishing it; the same command resumes it\)"):
        run_sweep(_spec(kvasir_root, tmp_path, seeds=(0,)), executor="submitit-local", progress=False)
    watcher.join()
    assert run_state(first)[0] == "new"
    rows = run_sweep(_spec(kvasir_root, tmp_path, seeds=(0,)), executor="submitit-local", progress=False)
    assert rows[0]["seed"] == 0 and run_state(first)[0] == "done"


@pytest.mark.slow
def test_a_job_of_several_runs_leaves_a_busy_one_to_the_submitting_process(tmp_path, kvasir_root):
    """With several runs per job (--runs-per-gpu), the job trains the free run and returns the busy one at once
    (waiting there would idle the job's GPUs); the submitting process waits for it, and when its trainer stops
    before finishing it, submits it again as a job of its own: the sweep ends with both runs done."""
    first, second = (tmp_path / "kvasir" / f"segdino__test__smoke__s{s}" for s in (0, 1))
    holder = _hold(first)
    watcher = _kill_when(holder, lambda: any(tmp_path.glob(".submitit/*/*_result.pkl")))
    rows = run_sweep(_spec(kvasir_root, tmp_path), executor="submitit-local", progress=False,
                     slurm=SlurmOptions(runs_per_gpu=2))
    watcher.join()
    assert [r["seed"] for r in rows] == [0, 1] and run_state(first)[0] == run_state(second)[0] == "done"
    assert len(list(tmp_path.glob(".submitit/*/*_result.pkl"))) == 2   # the pair's job, then seed 0's own
    logs = " ".join(p.read_text() for p in tmp_path.glob(".submitit/*/*.err"))
    assert "waiting for" not in logs   # no job waited


def test_caches_without_file_locks_write_private_folders(tmp_path, smoke_overrides, monkeypatch):
    """On a file system without locks two extractions may run at once, so each writes a folder of its own and what
    looks left over may be another writer's: left alone. With locks, what a killed extraction left is cleared."""
    import shutil

    import torch

    from benchmark.config import load_config
    from benchmark.features import cached_features, feature_key
    from benchmark.registry import build_model
    from benchmark.train import load_data

    cfg = load_config("smoke", overrides={**smoke_overrides, "run.runs_dir": str(tmp_path)})
    (tmp_path / "run").mkdir()
    _, splits = load_data(cfg, tmp_path / "run")
    backbone = build_model(cfg, 1).backbone
    features = tmp_path / "cache" / "features"
    left = features / f"{feature_key(splits['train'], backbone)}.partial-99999999"   # a killed extraction's
    left.mkdir(parents=True)

    def extract():
        return cached_features(splits["train"], backbone, tmp_path / "cache", torch.device("cpu"), 16, False)

    def no_locks(handle, flags):
        raise OSError(errno.ENOLCK, "No locks available")

    with monkeypatch.context() as m:
        m.setattr(records.fcntl, "flock", no_locks)
        m.setattr(records, "_warned_no_locks", True)
        store = extract()
    assert store.extracted and (store.folder / "taps.npy").is_file() and left.is_dir()
    assert sorted(p.name for p in features.iterdir() if ".partial" in p.name) == [left.name]
    shutil.rmtree(store.folder)   # extract again, with locks
    assert extract().extracted and not left.exists()


@pytest.mark.slow
def test_a_conflict_met_inside_a_submitted_job_is_reported_as_itself(tmp_path, kvasir_root):
    """A partial run whose training images were replaced under the same names (only decoding can tell): the job
    returns the conflict to the submitter, which quotes it, not the older failure recorded in FAILED."""
    import shutil

    import numpy as np
    from PIL import Image

    root = tmp_path / "data"
    shutil.copytree(kvasir_root, root)
    spec = _spec(root, tmp_path / "runs", seeds=(0,))
    run_sweep(spec, progress=False)
    run_dir = tmp_path / "runs" / "kvasir" / "segdino__test__smoke__s0"
    (run_dir / "DONE").unlink()                                   # as if killed after its last checkpoint
    records.record_failure(run_dir, RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    split = json.loads((run_dir / "split.json").read_text())
    del split["file_sizes"]   # as recorded before file sizes: only decoding, inside the job, can tell
    (run_dir / "split.json").write_text(json.dumps(split))
    stem = (root / "Kvasir-SEG" / "train.txt").read_text().split()[0]
    image = root / "Kvasir-SEG" / "images" / f"{stem}.jpg"
    Image.fromarray(np.asarray(Image.open(image))[::-1].copy()).save(image, quality=90)
    with pytest.raises(SweepError, match=r"^1 of 1 submitted job failed.*kvasir/segdino/s0 \(job \d+: .*same file "
                                         r"names, but the contents of its official train split changed") as info:
        run_sweep(spec, executor="submitit-local", progress=False)
    assert "out of memory" not in str(info.value)
    assert "out of memory" in records.last_failure(run_dir)      # the run's own record is left as it was
