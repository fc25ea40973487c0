"""`segbench run`: the matrix, resumable after SIGKILL, features extracted once, submitit's local executor."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from benchmark.sweep import SweepSpec, run_state, run_sweep
from benchmark.workers import usable_cores

TIMING = ["train_seconds", "seconds"]


def _spec(root, runs, methods=("segdino",), seeds=(0,), epochs=1):
    return SweepSpec(("kvasir",), tuple(methods), tuple(seeds), "smoke", None,
                     {"data.root": str(root), "run.runs_dir": str(runs), "train.epochs": epochs, "data.size": 64,
                      "train.device": "cpu"})


def _results(runs):
    frame = pd.read_csv(runs / "results.csv")
    return frame.drop(columns=[c for c in frame.columns if c in TIMING]).sort_values(["method", "seed"])


@pytest.mark.slow
def test_four_methods_three_seeds_extract_features_once(tmp_path, kvasir_root):
    rows = run_sweep(_spec(kvasir_root, tmp_path, ("segdino", "unet", "upernet", "dpt"), (0, 1, 2)), progress=False)
    assert len(rows) == 12 and all(r["was"] == "new" for r in rows)
    assert sum(r["extracted_features"] for r in rows) == 1
    assert len(list((tmp_path / ".cache" / "features").glob("*/meta.json"))) == 1
    results = pd.read_csv(tmp_path / "results.csv")
    assert len(results) == 12 and set(results.method) == {"segdino", "unet", "upernet", "dpt"}
    table = _results(tmp_path)
    # a rerun checks each finished run's config and files once (config_clash), not again per run (walk18 #4)
    import benchmark.train

    opened = []
    real_open = benchmark.train.open_data
    benchmark.train.open_data = lambda data: opened.append(data) or real_open(data)
    try:
        again = run_sweep(_spec(kvasir_root, tmp_path, ("segdino", "unet", "upernet", "dpt"), (0, 1, 2)),
                          progress=False)
    finally:
        benchmark.train.open_data = real_open
    assert all(r["was"] == "done" for r in again) and opened == []
    pd.testing.assert_frame_equal(_results(tmp_path), table)


def test_corrupt_run_directory_is_moved_aside_and_redone(tmp_path, kvasir_root):
    run_sweep(_spec(kvasir_root, tmp_path), progress=False)
    run_dir = tmp_path / "kvasir" / "segdino__test__smoke__s0"
    (run_dir / "metrics.json").write_text("{truncated")
    assert run_state(run_dir)[0] == "corrupt"
    rows = run_sweep(_spec(kvasir_root, tmp_path), progress=False)
    assert rows[0]["was"] == "corrupt" and run_state(run_dir)[0] == "done"
    assert len(list((tmp_path / "kvasir").glob("segdino__test__smoke__s0.corrupt-*"))) == 1
    json.loads((run_dir / "metrics.json").read_text())


def test_keep_going_runs_the_rest_and_names_each_failure(tmp_path, kvasir_root, monkeypatch):
    """By default the first failed run stops a local sweep; with keep_going the others run, results.csv holds them,
    and the failures are raised together at the end."""
    import benchmark.sweep as sweep

    real = sweep.execute

    def out_of_memory_on_seed_0(cfg, device=None, progress=True, wait=False, checked=False):
        if cfg["train"]["seed"] == 0:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")
        return real(cfg, device, progress)

    monkeypatch.setattr(sweep, "execute", out_of_memory_on_seed_0)
    second = tmp_path / "kvasir" / "segdino__test__smoke__s1"
    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        run_sweep(_spec(kvasir_root, tmp_path, seeds=(0, 1)), progress=False)
    assert run_state(second)[0] == "new"
    oom = r"\(RuntimeError: CUDA out of memory\. Tried to allocate 2\.00 GiB\)$"
    with pytest.raises(sweep.SweepError, match=r"1 of 2 runs failed .*results\.csv.*: kvasir/segdino/s0 " + oom) as e:
        run_sweep(_spec(kvasir_root, tmp_path, seeds=(0, 1)), progress=False, keep_going=True)
    assert [row["seed"] for row in e.value.rows] == [1]   # the CLI prints these before the error
    assert run_state(second)[0] == "done"
    assert list(pd.read_csv(tmp_path / "results.csv")["seed"]) == [1]

    def illegal_address_on_seed_2(cfg, device=None, progress=True, wait=False, checked=False):
        if cfg["train"]["seed"] == 2:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return real(cfg, device, progress)

    monkeypatch.setattr(sweep, "execute", illegal_address_on_seed_2)   # the process's GPU is lost: stop, not go on
    with pytest.raises(sweep.SweepError, match=r"kvasir/segdino/s2 failed with a CUDA error .* stops here"):
        run_sweep(_spec(kvasir_root, tmp_path, seeds=(2, 3)), progress=False, keep_going=True)
    assert run_state(tmp_path / "kvasir" / "segdino__test__smoke__s3")[0] == "new"


@pytest.mark.slow
def test_keep_going_with_worker_processes(tmp_path):
    """The same with one worker process per device: a run whose data cannot be read fails in its worker, the
    other run finishes, and the failure is named at the end."""
    import benchmark.sweep as sweep
    from benchmark.data.synthetic import write_kvasir, write_msd

    data = tmp_path / "data"
    write_kvasir(data / "Kvasir-SEG", n_train=24, n_test=8, seed=0)
    write_msd(data / "MSD", n_train=8, n_test=3, seed=0)
    bad = sorted((data / "MSD" / "train" / "image").glob("*.jpg"))[0]
    bad.write_bytes(bad.read_bytes()[:100])   # an interrupted download
    runs = tmp_path / "runs"
    spec = SweepSpec(("kvasir", "msd"), ("segdino",), (0,), "smoke", None,
                     {"data.root": str(data), "run.runs_dir": str(runs), "train.epochs": 1, "data.size": 64,
                      "train.device": "cpu"})
    with pytest.raises(sweep.SweepError, match=rf"1 of 2 runs failed .*msd/segdino/s0 \(DataError: .*{bad.stem}"):
        run_sweep(spec, progress=False, devices=["cpu", "cpu"], keep_going=True)
    assert run_state(runs / "kvasir" / "segdino__test__smoke__s0")[0] == "done"
    assert list(pd.read_csv(runs / "results.csv")["dataset"]) == ["kvasir"]


@pytest.mark.slow
def test_a_failed_submitit_job_is_reported_with_the_cause_its_run_recorded(tmp_path):
    """submitit's own error text ends with its log paths; the summary quotes the run's FAILED record instead."""
    import benchmark.sweep as sweep
    from benchmark.data.synthetic import write_kvasir

    data = tmp_path / "data"
    write_kvasir(data / "Kvasir-SEG", n_train=24, n_test=8, seed=0)
    bad = sorted((data / "Kvasir-SEG" / "images").glob("*.jpg"))[0]
    bad.write_bytes(bad.read_bytes()[:100])
    spec = SweepSpec(("kvasir",), ("segdino",), (0,), "smoke", None,
                     {"data.root": str(data), "run.runs_dir": str(tmp_path / "runs"), "train.epochs": 1,
                      "data.size": 64, "train.device": "cpu"})
    with pytest.raises(sweep.SweepError, match=rf"\(job \d+: DataError: cannot read image .*{bad.stem}.*; log "):
        run_sweep(spec, executor="submitit-local", progress=False)


def test_submitit_local_executor_runs_the_same_path(tmp_path, kvasir_root):
    rows = run_sweep(_spec(kvasir_root, tmp_path, seeds=(0, 1)), executor="submitit-local", progress=False)
    assert sorted(r["seed"] for r in rows) == [0, 1]
    assert len(pd.read_csv(tmp_path / "results.csv")) == 2
    assert list((tmp_path / ".submitit").iterdir())


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_gives_the_uninterrupted_table(tmp_path, kvasir_root):
    base = [sys.executable, "-m", "benchmark.cli", "run", "--datasets", "kvasir", "--methods", "segdino,unet",
            "--seeds", "0,1", "--preset", "smoke", "--data-root", str(kvasir_root), "--epochs", "8", "--size", "64",
            "--device", "cpu"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    subprocess.run(base + ["--runs-dir", str(tmp_path / "clean")], check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(base + ["--runs-dir", str(killed)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    target = killed / "kvasir" / "segdino__test__smoke__s1" / "checkpoint.pt"   # the second run, mid-training
    deadline = time.time() + 300
    while not target.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert target.exists() and not (target.parent / "DONE").exists()
    subprocess.run(base + ["--runs-dir", str(killed)], check=True, env=env, capture_output=True)

    pd.testing.assert_frame_equal(_results(tmp_path / "clean").reset_index(drop=True),
                                  _results(killed).reset_index(drop=True))
    assert len([p for p in killed.glob("kvasir/*__s*") if p.is_dir()]) == 4   # nothing lost, nothing duplicated


def _spawned_workers(pid: int) -> list[int]:
    """The multiprocessing worker processes started by process `pid`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and b"spawn_main" in cmdline:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the worker processes through /proc")
def test_a_worker_killed_by_the_system_is_named_and_the_rerun_resumes(tmp_path, kvasir_root):
    """A worker process killed outright (as the kernel's out-of-memory killer does) breaks the process pool: the
    sweep says so instead of blaming every run, keeps what finished, and the same command completes the rest."""
    cmd = [sys.executable, "-m", "benchmark.cli", "run", "--datasets", "kvasir", "--methods", "segdino,unet",
           "--seeds", "0", "--preset", "smoke", "--data-root", str(kvasir_root), "--epochs", "30", "--size", "64",
           "--device", "cpu", "--devices", "cpu,cpu", "--keep-going", "--runs-dir", str(tmp_path)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not list(tmp_path.glob("kvasir/*/checkpoint.pt")):
        time.sleep(0.05)
    workers = _spawned_workers(proc.pid)
    assert workers and proc.poll() is None
    os.kill(workers[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, out + err
    assert "a worker process died" in " ".join(err.split()) and "run the same command again" in " ".join(err.split())
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    assert len(pd.read_csv(tmp_path / "results.csv")) == 2
    assert all(run_state(d)[0] == "done" for d in tmp_path.glob("kvasir/*__s0"))


def test_run_all_dry_run_plans_the_paper_matrix(tmp_path, kvasir_root):
    from typer.testing import CliRunner

    from benchmark.cli import app

    result = CliRunner().invoke(app, ["run", "--all", "--dry-run", "--data-root", str(kvasir_root),
                                      "--runs-dir", str(tmp_path)])
    assert "planned: 72 runs" in result.output           # 6 datasets x 4 methods x 3 seeds
    assert result.exit_code == 2 and "no data" in result.output                       # only Kvasir-SEG is there
    assert "60 runs have no data" in " ".join(result.output.split()), result.output
    assert not any(tmp_path.iterdir())                     # nothing trained, nothing written
    result = CliRunner().invoke(app, ["run", "--all", "--dry-run", "--data-root", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "planned:" not in result.output   # 72 rows of one error: just the error
    assert "72 runs have no data" in " ".join(result.output.split()), result.output
    run_sweep(_spec(kvasir_root, tmp_path), progress=False)
    result = CliRunner().invoke(app, ["run", "--datasets", "kvasir", "--methods", "segdino", "--seeds", "0,1",
                                      "--preset", "smoke", "--dry-run", "--data-root", str(kvasir_root),
                                      "--runs-dir", str(tmp_path), "--epochs", "1", "--size", "64"])
    assert result.exit_code == 0 and "done" in result.output and "new" in result.output, result.output


def test_a_sweep_with_another_config_refuses_finished_runs_before_any_work(tmp_path, kvasir_root):
    from typer.testing import CliRunner

    from benchmark.cli import app
    from benchmark.sweep import plan_status
    from benchmark.train import RunConflict

    run_sweep(_spec(kvasir_root, tmp_path, epochs=1), progress=False)
    changed = _spec(kvasir_root, tmp_path, seeds=(0, 1), epochs=2)
    assert [r["state"] for r in plan_status(changed)] == ["conflict", "new"]
    with pytest.raises(RunConflict, match=r"1 planned run clash.*train.epochs: 1 there, 2 now"):
        run_sweep(changed, progress=False)
    assert not (tmp_path / "kvasir" / "segdino__test__smoke__s1").exists()   # nothing started
    result = CliRunner().invoke(app, ["run", "--datasets", "kvasir", "--methods", "segdino", "--seeds", "0,1",
                                      "--preset", "smoke", "--epochs", "2", "--size", "64", "--device", "cpu",
                                      "--data-root", str(kvasir_root), "--runs-dir", str(tmp_path), "--dry-run"])
    assert result.exit_code == 2 and "conflict" in result.output   # the table, then the refusal the run would give
    assert "1 run clashes with existing run directories, so `segbench run` would refuse" in result.output


@pytest.mark.slow
def test_local_workers_share_one_extraction_and_give_the_sequential_table(tmp_path, kvasir_root):
    """The multi-device local path (one worker per GPU on a GPU machine), here with two CPU workers."""
    spec = _spec(kvasir_root, tmp_path / "workers", ("segdino", "unet"), (0, 1), epochs=2)
    rows = run_sweep(spec, devices=["cpu", "cpu"], progress=False)
    assert [(r["method"], r["seed"]) for r in rows] == [("segdino", 0), ("segdino", 1), ("unet", 0), ("unet", 1)]
    assert sum(r["extracted_features"] for r in rows) == 1
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, usable_cores() // 2))   # as each worker had: CPU sums depend on threads
    try:
        sequential = run_sweep(_spec(kvasir_root, tmp_path / "seq", ("segdino", "unet"), (0, 1), epochs=2),
                               progress=False)
    finally:
        torch.set_num_threads(threads)
    assert all(r["was"] == "new" for r in sequential)
    pd.testing.assert_frame_equal(_results(tmp_path / "workers").drop(columns="run_dir", errors="ignore"),
                                  _results(tmp_path / "seq").drop(columns="run_dir", errors="ignore"))
    assert all(r["was"] == "done" for r in run_sweep(spec, devices=["cpu", "cpu"], progress=False))


def test_unknown_local_device_fails_before_any_work(tmp_path, kvasir_root):
    with pytest.raises(ValueError, match="'gpu0' is not a device; use e.g. cuda:0,cuda:1"):
        run_sweep(_spec(kvasir_root, tmp_path), devices=["gpu0"], progress=False)
    assert not (tmp_path / "kvasir").exists()


def test_local_devices_default_to_every_visible_gpu(monkeypatch):
    from benchmark.sweep import local_devices

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert local_devices(None, "auto") == ["cuda:0", "cuda:1"] == local_devices([], "cuda")
    assert local_devices(None, "cpu") == []                               # the config asks for the CPU
    assert local_devices(["cuda:1", "cuda:1"], "auto") == ["cuda:1", "cuda:1"]   # two runs at a time on one GPU
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert local_devices(None, "auto") == []                              # one GPU: this process, sequentially


def test_runs_per_gpu_puts_several_workers_on_each_device(monkeypatch):
    from benchmark.sweep import local_devices

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert local_devices(None, "auto", 2) == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]   # spread over the GPUs
    assert local_devices(["cuda:1"], "auto", 3) == ["cuda:1"] * 3
    assert local_devices(None, "cpu", 2) == ["cpu", "cpu"]
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert local_devices(None, "cuda", 4) == ["cuda:0"] * 4
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert local_devices(None, "auto", 2) == ["cpu", "cpu"] and local_devices(None, "auto", 1) == []


def test_a_gpu_the_machine_lacks_is_refused_before_any_run(tmp_path, kvasir_root, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    spec = _spec(kvasir_root, tmp_path)
    spec = SweepSpec(spec.datasets, spec.methods, spec.seeds, spec.preset, None,
                     {**spec.overrides, "train.device": "cuda:0"})
    with pytest.raises(ValueError, match="device cuda:0: this machine has no usable CUDA GPU"):
        run_sweep(spec, progress=False)
    assert not (tmp_path / "kvasir").exists()


def test_runs_per_gpu_must_be_positive(tmp_path, kvasir_root):
    with pytest.raises(ValueError, match="--runs-per-gpu must be at least 1"):
        run_sweep(_spec(kvasir_root, tmp_path), runs_per_gpu=0, progress=False)


def test_a_dataset_missing_under_the_data_root_fails_before_any_run(tmp_path, kvasir_root):
    """Only Kvasir-SEG under --data-root: a kvasir + tn3k sweep stops before training kvasir, naming tn3k."""
    from benchmark.data.base import DataError

    spec = SweepSpec(("kvasir", "tn3k"), ("segdino",), (0,), "smoke", None,
                     {"data.root": str(kvasir_root), "run.runs_dir": str(tmp_path), "train.epochs": 1,
                      "data.size": 64, "train.device": "cpu"})
    with pytest.raises(DataError, match=r"TN3K.*In a sweep, --data-root holds each dataset.*leave tn3k out"):
        run_sweep(spec, progress=False)
    assert not (tmp_path / "kvasir").exists()


def test_a_finished_run_on_files_that_changed_since_is_a_conflict(tmp_path, kvasir_root):
    """A dry run and the sweep name it before any work; re-scoring it on another test split is refused too."""
    import shutil

    import numpy as np
    from PIL import Image

    import benchmark.sweep as S
    from benchmark.evaluate import evaluate_run
    from benchmark.sweep import plan_status
    from benchmark.train import RunConflict

    root = tmp_path / "data"
    shutil.copytree(kvasir_root, root)
    spec = _spec(root, tmp_path / "runs")
    run_sweep(spec, progress=False)
    spec_dict = S.plan(spec)[0].to_dict()
    assert [r["state"] for r in plan_status(spec)] == ["done"]
    lists = root / "Kvasir-SEG" / "val.txt"
    stems = lists.read_text().split()
    lists.write_text("\n".join(stems[:-1]) + "\n")         # one test image fewer
    rows = plan_status(spec)
    assert rows[0]["state"] == "conflict" and f"of its 8 test images, 1 file not there now (first: {stems[-1]})" \
        in rows[0]["why"]
    with pytest.raises(RunConflict, match="1 planned run clash.*other files"):
        run_sweep(spec, progress=False)
    run_dir = tmp_path / "runs" / "kvasir" / "segdino__test__smoke__s0"
    with pytest.raises(RunConflict, match="of its 8 test images, 1 file not there now"):
        evaluate_run(run_dir, profiles=("segdino",))
    # a Slurm sweep's submitter that waited for the run and finds it finished checks its files too
    assert "of its 8 test images" in S._wait_for_other(spec_dict, "pid 1 on h")["conflict"]
    lists.write_text("\n".join(stems) + "\n")
    image = root / "Kvasir-SEG" / "images" / f"{stems[0]}.jpg"   # the same names, another test image
    Image.fromarray(np.asarray(Image.open(image))[::-1].copy()).save(image, quality=90)
    rows = plan_status(spec)   # a listing sees the file's new size
    assert rows[0]["state"] == "conflict" and "files of its official test split changed size" in rows[0]["why"]
    with pytest.raises(RunConflict, match="1 planned run clash.*official test split changed size"):
        run_sweep(spec, progress=False)
    split = json.loads((run_dir / "split.json").read_text())
    del split["file_sizes"]   # a run recorded before file sizes: a listing cannot see it, evaluate's decoding can
    (run_dir / "split.json").write_text(json.dumps(split))
    assert [r["state"] for r in plan_status(spec)] == ["done"]
    with pytest.raises(RunConflict, match="same file names, but the contents of its official test split changed"):
        evaluate_run(run_dir, profiles=("segdino",))
