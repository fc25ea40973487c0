"""`segbench run --executor slurm`: the real submitit Slurm path, end to end, with only the scheduler faked.

tests/fake_slurm holds `sbatch`, `srun`, `sacct` and `scancel` scripts: sbatch keeps each submitted file in
$FAKE_SLURM_LOG and runs it in the background as Slurm would (array tasks one after another), so each job really
runs `srun ... python -m submitit.core._submit` and trains on the CPU.
"""
import json
import os
import subprocess
import time
import warnings
from pathlib import Path

import pandas as pd
import pytest

from benchmark import records
from benchmark.sweep import SlurmOptions, SweepError, run_sweep
from tests.test_sweep import _spec

FAKES = Path(__file__).parent / "fake_slurm"


@pytest.fixture
def slurm_log(tmp_path, monkeypatch):
    """The fake Slurm first on PATH; returns its log folder (<id>.sbatch per submission, task states)."""
    from submitit.slurm.slurm import SlurmInfoWatcher, SlurmJob

    log = tmp_path / "slurm"
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM_LOG", str(log))
    monkeypatch.setattr(SlurmJob, "watcher", SlurmInfoWatcher(delay_s=600))   # job ids restart in every test
    yield log
    _final_states(log)   # no job left running into the next test


def _submitted(log: Path) -> dict[str, str]:
    return {p.stem: p.read_text() for p in sorted(log.glob("*.sbatch"))}


def _final_states(log: Path, timeout: float = 60) -> dict[str, str]:
    """Task -> state from the fake sacct once none is pending or running (job.result() returns as soon as the
    result pickle exists, a moment before the batch shell ends)."""
    jobs = [arg for job in _submitted(log) for arg in ("-j", job)]
    deadline = time.time() + timeout
    while True:
        out = subprocess.run(["sacct", "-o", "JobID,State,NodeList", "--parsable2", *jobs], check=True,
                             capture_output=True, text=True).stdout
        states = dict(line.split("|")[:2] for line in out.splitlines()[1:])
        if not {"PENDING", "RUNNING"} & set(states.values()) or time.time() > deadline:
            return states
        time.sleep(0.1)


def _assert_done(runs: Path, seeds=(0, 1)):
    for s in seeds:
        run_dir = runs / "kvasir" / f"segdino__test__smoke__s{s}"
        assert records.is_done(run_dir) and json.loads((run_dir / "env.json").read_text())["device"] == "cpu"
    assert sorted(pd.read_csv(runs / "results.csv").seed) == list(seeds)


@pytest.mark.slow
def test_slurm_array_job_runs_the_sweep_and_reruns_submit_only_what_is_missing(tmp_path, kvasir_root, slurm_log):
    runs = tmp_path / "runs"
    options = SlurmOptions(partition="gpu", time_min=30, cpus_per_task=4, mem_gb=16)
    rows = run_sweep(_spec(kvasir_root, runs, seeds=(1, 2)), executor="slurm", slurm=options, progress=False)
    assert [(r["seed"], r["was"]) for r in rows] == [(1, "new"), (2, "new")]
    _assert_done(runs, (1, 2))
    [(job, sbatch)] = _submitted(slurm_log).items()
    for line in ("--partition=gpu", "--time=30", "--gpus-per-node=1", "--array=0-1%2", "--cpus-per-task=4",
                 "--mem=16GB", "--job-name=segbench", f"--output={runs}/.submitit/%A_%a/%A_%a_0_log.out"):
        assert f"#SBATCH {line}\n" in sbatch
    assert _final_states(slurm_log) == {f"{job}_0": "COMPLETED", f"{job}_1": "COMPLETED"}
    for task in (0, 1):   # srun expanded %A_%a; the job saw the array task's id
        assert f"job_id={job}_{task}," in (runs / ".submitit" / f"{job}_{task}" / f"{job}_{task}_0_log.out").read_text()

    with warnings.catch_warnings():
        warnings.simplefilter("error")   # e.g. submitit's "Received an empty job array"
        again = run_sweep(_spec(kvasir_root, runs, seeds=(1, 2)), executor="slurm", slurm=options, progress=False)
    assert [(r["seed"], r["was"]) for r in again] == [(1, "done"), (2, "done")]
    assert len(_submitted(slurm_log)) == 1                         # all done: nothing submitted

    more = run_sweep(_spec(kvasir_root, runs, seeds=(0, 1, 2)), executor="slurm", slurm=options, progress=False)
    assert [(r["seed"], r["was"]) for r in more] == [(0, "new"), (1, "done"), (2, "done")]   # plan order
    _assert_done(runs, (0, 1, 2))
    submitted = _submitted(slurm_log)
    assert len(submitted) == 2 and "--array" not in submitted[max(submitted)]   # one run missing: a plain job


@pytest.mark.slow
def test_cli_slurm_plain_jobs_of_gpus_runs_each(tmp_path, kvasir_root, slurm_log):
    from typer.testing import CliRunner

    from benchmark.cli import app

    runs = tmp_path / "runs"
    result = CliRunner().invoke(app, [
        "run", "--datasets", "kvasir", "--methods", "segdino", "--seeds", "0,1,2", "--preset", "smoke",
        "--data-root", str(kvasir_root), "--runs-dir", str(runs), "--epochs", "1", "--size", "64", "--device", "cpu",
        "--executor", "slurm", "--partition", "gpu", "--time-min", "30", "--gpus", "2", "--no-array",
        "--cpus-per-task", "3", "--mem-gb", "12"])
    assert result.exit_code == 0, result.output
    _assert_done(runs, (0, 1, 2))
    submitted = _submitted(slurm_log)
    assert len(submitted) == 2                                     # plain jobs of 2 GPUs: 2 runs, then 1
    for sbatch in submitted.values():
        assert "#SBATCH --partition=gpu\n" in sbatch and "#SBATCH --time=30\n" in sbatch
        assert "#SBATCH --gpus-per-node=2\n" in sbatch and "--array" not in sbatch
        assert "#SBATCH --cpus-per-task=3\n" in sbatch and "#SBATCH --mem=12GB\n" in sbatch
    assert _final_states(slurm_log) == dict.fromkeys(submitted, "COMPLETED")


@pytest.mark.slow
def test_a_failing_slurm_job_is_reported_after_the_others_finish(tmp_path, kvasir_root, slurm_log):
    runs = tmp_path / "runs"
    (runs / "kvasir").mkdir(parents=True)
    (runs / "kvasir" / "segdino__test__smoke__s1").write_text("a file where run s1's directory goes")
    with pytest.raises(SweepError, match=r"1 of 2 submitted jobs failed.*kvasir/segdino/s1 \(job \d+_1: .*log "):
        run_sweep(_spec(kvasir_root, runs, seeds=(0, 1)), executor="slurm", slurm=SlurmOptions(gpus_per_node=0),
                  progress=False)
    [(job, sbatch)] = _submitted(slurm_log).items()
    assert "--gpus-per-node" not in sbatch and "--partition" not in sbatch
    assert _final_states(slurm_log) == {f"{job}_0": "COMPLETED", f"{job}_1": "FAILED"}
    assert list(pd.read_csv(runs / "results.csv").seed) == [0]   # the finished run is recorded all the same


@pytest.mark.slow
def test_slurm_jobs_pack_runs_per_gpu_side_by_side(tmp_path, kvasir_root, slurm_log):
    # gpus 0 x runs_per_gpu 2: each job takes 2 runs and runs them as 2 local workers; 3 runs -> 2 array tasks
    runs = tmp_path / "runs"
    options = SlurmOptions(gpus_per_node=0, runs_per_gpu=2, cpus_per_task=2)
    rows = run_sweep(_spec(kvasir_root, runs, seeds=(0, 1, 2)), executor="slurm", slurm=options, progress=False)
    assert [(r["seed"], r["was"]) for r in rows] == [(0, "new"), (1, "new"), (2, "new")]
    _assert_done(runs, (0, 1, 2))
    [(job, sbatch)] = _submitted(slurm_log).items()
    assert "#SBATCH --array=0-1%2\n" in sbatch
    assert _final_states(slurm_log) == {f"{job}_0": "COMPLETED", f"{job}_1": "COMPLETED"}
    env = {s: json.loads((runs / "kvasir" / f"segdino__test__smoke__s{s}" / "env.json").read_text()) for s in (0, 1, 2)}
    assert [env[s]["slurm_job"] for s in (0, 1, 2)] == [f"{job}_0", f"{job}_0", f"{job}_1"]   # 2 runs, 1 run
    assert env[0]["started"] <= env[1]["finished"] and env[1]["started"] <= env[0]["finished"]   # side by side


def test_a_preempted_or_timed_out_job_requeues_the_same_run():
    """submitit calls checkpoint() on the job's signal; the resubmission is the same run, which resumes from its
    checkpoint.pt (train_run resumes any partial run directory)."""
    from benchmark.sweep import SlurmRun

    cfg = {"data": {"dataset": "kvasir"}, "train": {"seed": 3}}
    again = SlurmRun().checkpoint(cfg)
    assert isinstance(again.function, SlurmRun) and again.args == (cfg,) and not again.kwargs
    from benchmark.sweep import SlurmRuns

    packed = SlurmRuns(runs_per_gpu=2).checkpoint([cfg, cfg])
    assert packed.function.runs_per_gpu == 2 and packed.args == ([cfg, cfg],)


def test_slurm_executor_without_slurm_says_what_to_use_instead(tmp_path, kvasir_root, monkeypatch):
    """Off a Slurm cluster submitit finds no `srun`: the error keeps its words and names the executors that work."""
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    if any((Path(d) / "srun").exists() for d in ("/usr/bin", "/bin")):
        pytest.skip("this machine has srun")
    with pytest.raises(SweepError, match=r'Could not detect "srun".*use --executor local or submitit-local'):
        run_sweep(_spec(kvasir_root, tmp_path, seeds=(0,)), executor="slurm", progress=False)
    assert not list(tmp_path.glob("kvasir/*"))   # nothing started


class _FakeJob:
    def __init__(self, job_id, fn, arg, params, behaviour):
        self.job_id, self.fn, self.arg, self.params, self._behaviour = job_id, fn, arg, dict(params), behaviour
        self.paths = type("Paths", (), {"stderr": f"/log/{job_id}.err"})()

    def done(self):
        return True

    def result(self):
        return self._behaviour(self)


def _fake_executor(behaviour, refuse_after=None):
    """A submitit executor that records each submission with its parameters and answers with `behaviour(job)`;
    submissions after the first `refuse_after` fail as sbatch would at a submission limit."""
    class Executor:
        submitted = []

        def __init__(self, folder, cluster):
            self.params = {}

        def update_parameters(self, **params):
            self.params.update(params)

        def submit(self, fn, arg):
            if refuse_after is not None and len(Executor.submitted) >= refuse_after:
                raise RuntimeError("sbatch: error: QOSMaxSubmitJobPerUserLimit\n")
            job = _FakeJob(str(len(Executor.submitted) + 1), fn, arg, self.params, behaviour)
            Executor.submitted.append(job)
            return job

        def map_array(self, fn, args):
            return [self.submit(fn, a) for a in args]
    return Executor


@pytest.mark.parametrize("case", ["taken over", "refused", "fails again"])
def test_a_run_whose_other_trainer_stopped_is_submitted_again_on_one_gpu(tmp_path, monkeypatch, case):
    """Four runs in one 4-GPU job; seed 0 was busy and its trainer stopped unfinished: it is submitted again as a job
    of its own with one GPU's share. A refused submission or a failed takeover is that run's failure alone."""
    import benchmark.sweep as S
    from benchmark.config import load_config

    def behaviour(job):
        if isinstance(job.fn, S.SlurmRuns):
            return [{"seed": d["train"]["seed"]} if d["train"]["seed"] else {"busy": "pid 1 on h"} for d in job.arg]
        if case == "fails again":
            raise RuntimeError("CUDA out of memory")
        return {"seed": job.arg["train"]["seed"], "taken_over": True}
    executor = _fake_executor(behaviour, refuse_after=1 if case == "refused" else None)
    monkeypatch.setattr(S.submitit, "AutoExecutor", executor)
    monkeypatch.setattr(S, "run_state", lambda run_dir: ("new", ""))
    monkeypatch.setattr(S, "write_results", lambda runs_dir: runs_dir / "results.csv")
    monkeypatch.setattr(S, "_wait_for_other", lambda d, holder: {"stopped": f"{S._label(d)} (stopped)"})
    dicts = [load_config("smoke", overrides={"train.seed": s, "run.runs_dir": str(tmp_path)}).to_dict()
             for s in range(4)]
    slurm = SlurmOptions(gpus_per_node=4, cpus_per_task=16, mem_gb=64)
    if case == "taken over":
        rows = S._run_submitit(dicts, "slurm", slurm, False)
        assert rows == [{"seed": 0, "taken_over": True}, {"seed": 1}, {"seed": 2}, {"seed": 3}]   # plan order
        first, again = executor.submitted
        assert first.params["gpus_per_node"] == 4 and isinstance(first.fn, S.SlurmRuns)
        assert isinstance(again.fn, S.SlurmRun) and again.arg["train"]["seed"] == 0
        assert (again.params["gpus_per_node"], again.params["cpus_per_task"], again.params["mem_gb"]) == (1, 4, 16)
        return
    with pytest.raises(SweepError) as info:
        S._run_submitit(dicts, "slurm", slurm, False)
    message = str(info.value)
    assert [r["seed"] for r in info.value.rows] == [1, 2, 3]   # the finished runs of the first job are kept
    if case == "refused":
        assert message.startswith("1 run could not be submitted again") and "QOSMaxSubmitJobPerUserLimit" in message
        assert "s1" not in message   # the job whose other runs finished is not blamed
    else:
        assert message.startswith("1 of 2 submitted jobs failed") and "kvasir/segdino/s0 (job 2: CUDA out of" in message


def test_a_stopped_run_is_taken_over_while_a_live_busy_run_is_still_waited_for(tmp_path, monkeypatch):
    """Busy runs are settled as their trainers let go, in any order: seed 1's trainer died, so it is submitted again
    at once, though seed 0 (ahead of it in the job) is still being trained by a live process."""
    import benchmark.sweep as S
    from benchmark.config import load_config

    def behaviour(job):
        if isinstance(job.fn, S.SlurmRuns):
            return [{"busy": f"pid {d['train']['seed']} on h"} for d in job.arg]
        return {"seed": job.arg["train"]["seed"], "taken_over": True}
    executor = _fake_executor(behaviour)
    events = []

    def other_trainer(d, holder):
        seed = d["train"]["seed"]
        if seed == 1:
            events.append("s1 stopped")
            return {"stopped": f"{S._label(d)} (stopped)"}
        if len(executor.submitted) < 2:   # seed 0's trainer is alive until seed 1 has been submitted again
            return None
        events.append("s0 done")
        return {"seed": 0}
    monkeypatch.setattr(S.submitit, "AutoExecutor", executor)
    monkeypatch.setattr(S, "run_state", lambda run_dir: ("new", ""))
    monkeypatch.setattr(S, "_wait_for_other", other_trainer)
    monkeypatch.setattr(S, "POLL_S", 0.01)
    dicts = [load_config("smoke", overrides={"train.seed": s, "run.runs_dir": str(tmp_path)}).to_dict()
             for s in range(2)]
    rows = S._run_submitit(dicts, "slurm", SlurmOptions(gpus_per_node=2, cpus_per_task=8, mem_gb=32), False)
    assert rows == [{"seed": 0}, {"seed": 1, "taken_over": True}]
    assert events == ["s1 stopped", "s0 done"]
    assert executor.submitted[1].arg["train"]["seed"] == 1
