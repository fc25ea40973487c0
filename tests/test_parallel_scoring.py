"""The test split scored in worker processes (`evaluate.score_split` with workers > 1): the same numbers, rows and
errors as in one process, while the predictions are pulled lazily."""
from __future__ import annotations

import os

import numpy as np
import pytest

from benchmark import evaluate, workers
from benchmark.data.base import DataError
from benchmark.data.image_cache import load_resized
from benchmark.data.synthetic import write_msd, write_tn3k
from benchmark.registry import open_dataset


def _split(root, dataset, size=64):
    source = open_dataset(dataset, root)
    return source, load_resized(source, source.splits["test"], size)


def _probs(split, seed=0):
    """Predictions with the mask's shape and noise: every threshold and both empty cases matter."""
    rng = np.random.default_rng(seed)
    masks = np.asarray(split.masks, dtype=np.float32)
    probs = np.clip(0.7 * masks + 0.3 * rng.random(masks.shape, dtype=np.float32), 0, 1)
    probs[0] = 0.0   # an empty prediction
    return probs


def _batches(probs, size=5):
    for start in range(0, len(probs), size):
        yield start, probs[start:start + size]


@pytest.fixture(autouse=True)
def _pool_for_any_split(monkeypatch):
    monkeypatch.setattr(workers, "POOL_MIN_ITEMS", 0)


@pytest.mark.parametrize(("dataset", "writer", "profiles"), [
    ("msd", write_msd, ("mirror",)),                          # native size: masks read in the workers
    ("tn3k", write_tn3k, ("segdino", "medical-native")),       # network and native size in one pass
])
def test_workers_give_the_numbers_and_rows_of_one_process(tmp_path, dataset, writer, profiles):
    writer(tmp_path / dataset, n_train=2, n_test=14)
    source, split = _split(tmp_path / dataset, dataset)
    probs = _probs(split)
    one = evaluate.score_split(probs, split, source, profiles, workers=1)
    two = evaluate.score_split(_batches(probs), split, source, profiles, workers=2)
    assert list(two) == list(profiles)
    for name in profiles:
        assert two[name][0] == one[name][0]          # summaries bit for bit (rows recorded in split order)
        assert two[name][1] == one[name][1]
        assert [r["key"] for r in two[name][1]] == [r.key for r in split.refs]
    assert one[profiles[-1]][0]["counts"]["n_images"] == len(split)


def test_a_worker_error_names_the_sample_as_in_one_process(tmp_path):
    write_msd(tmp_path / "msd", n_train=2, n_test=12)
    source, split = _split(tmp_path / "msd", "msd")
    split.refs[7].mask.write_bytes(b"not a png")   # decoded into the cache already: only scoring reads it again
    for n in (1, 2):
        with pytest.raises(DataError, match=split.refs[7].mask.name):
            evaluate.score_split(_probs(split), split, source, ("mirror",), workers=n)


def test_predictions_are_pulled_a_few_batches_ahead_of_the_scores(tmp_path):
    write_msd(tmp_path / "msd", n_train=2, n_test=30)
    source, split = _split(tmp_path / "msd", "msd")
    probs, pulled = _probs(split), []

    def lazily():
        for start, batch in _batches(probs, 1):
            pulled.append(start)
            yield start, batch

    job = evaluate.ImageScores(source, ("mirror",), 2)
    items = ((split.refs[i], b[0], None) for i, b in lazily())
    results = workers.ordered_map(job, items, 2)
    next(results)
    assert len(pulled) <= workers.AHEAD * 2 + 1   # not the whole split before the first score comes back
    assert len(list(results)) == len(split) - 1
    assert len(pulled) == len(split)


def _pid(_):
    return os.getpid()


def test_the_work_runs_in_other_processes_and_one_means_this_one():
    assert set(workers.ordered_map(_pid, range(12), 1)) == {os.getpid()}
    assert os.getpid() not in set(workers.ordered_map(_pid, range(12), 2))


def test_workers_default_to_the_cores_but_one_of_this_runs_share(monkeypatch):
    monkeypatch.delenv(workers.CORES_VARIABLE, raising=False)
    assert workers.scoring_processes(3) == 3
    assert workers.scoring_processes(0) == max(1, min(8, workers.usable_cores() - 1))
    monkeypatch.setattr(workers, "usable_cores", lambda: 32)
    assert workers.scoring_processes(0) == 8
    monkeypatch.setenv(workers.CORES_VARIABLE, "4")   # one of four runs side by side on a 16-core job
    assert workers.scoring_processes(0) == 3
    monkeypatch.setenv(workers.CORES_VARIABLE, "1")
    assert workers.scoring_processes(0) == 1


def test_folder_scoring_in_workers_gives_the_rows_of_one_process(tmp_path):
    from PIL import Image

    from benchmark.metrics import score_directories
    from benchmark.metrics import score_split as score_dataset_split

    write_msd(tmp_path / "msd", n_train=2, n_test=12)
    source = open_dataset("msd", tmp_path / "msd")
    rng = np.random.default_rng(1)
    (tmp_path / "pred").mkdir()
    for ref in source.splits["test"]:   # the mask, shifted and noisy, as an 8-bit probability map
        mask = np.asarray(Image.open(ref.mask).convert("L"), dtype=np.float32)
        noisy = np.clip(0.8 * np.roll(mask, 3, axis=1) + rng.uniform(0, 50, mask.shape), 0, 255)
        Image.fromarray(noisy.astype(np.uint8)).save(tmp_path / "pred" / f"{ref.key}.png")
    gt_dir = tmp_path / "msd" / "test" / "mask"
    for profile in ("mirror", "segdino"):
        one = score_directories(tmp_path / "pred", gt_dir, profile, workers=1)
        assert score_directories(tmp_path / "pred", gt_dir, profile, workers=2) == one
        assert one[0]["counts"]["n_images"] == 12
    one = score_dataset_split(tmp_path / "pred", source, "test", "mirror", workers=1)
    assert score_dataset_split(tmp_path / "pred", source, "test", "mirror", workers=2) == one


def test_class_maps_upsample_to_the_same_bits_on_one_thread_and_several():
    import torch

    rng = np.random.default_rng(3)
    probs = rng.random((3, 64, 64), dtype=np.float32)
    probs /= probs.sum(axis=0, keepdims=True)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = evaluate.native_probability(probs, (301, 407))
        torch.set_num_threads(2)
        two = evaluate.native_probability(probs, (301, 407))
    finally:
        torch.set_num_threads(threads)
    assert one.shape == (3, 301, 407) and np.array_equal(one, two)   # 1 x 3 x H x W differed (walk19 D1)
    for k in range(3):
        assert np.array_equal(one[k], evaluate.native_probability(probs[k], (301, 407)))


def _sleepy(item):
    import time
    time.sleep(0.05)
    return item


def test_workers_die_with_the_main_process(tmp_path):
    """A main process killed outright (the OOM killer) must not leave workers holding its run lock."""
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    script = tmp_path / "main.py"
    script.write_text(textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(__import__('pathlib').Path(__file__).parent)!r})
        from benchmark import workers
        from test_parallel_scoring import _sleepy
        results = workers.ordered_map(_sleepy, range(10_000), 2)
        next(results)
        print(" ".join(str(c.pid) for c in __import__("multiprocessing").active_children()), flush=True)
        import time; time.sleep(60)
    """))
    here = str(__import__("pathlib").Path(workers.__file__).parents[1])   # this benchmark, not an installed one
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}
    main = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    pids = [int(p) for p in main.stdout.readline().split()]
    assert len(pids) == 2
    main.send_signal(signal.SIGKILL)
    main.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_worker_killed_outright_is_named_with_the_fix():
    import signal

    results = workers.ordered_map(_sleepy, range(1000), 2)
    next(results)
    for child in __import__("multiprocessing").active_children():
        os.kill(child.pid, signal.SIGKILL)
    __import__("time").sleep(1)   # the pool knows it is broken: the next submit raises (walk19 D4), not a result
    with pytest.raises(RuntimeError, match="scoring worker process died.*num_workers=1"):
        list(results)


def test_a_ctrl_c_while_the_workers_start_stops_the_map_and_every_worker(monkeypatch):
    """Workers fork one after another: a Ctrl-C between two forks left a half-started pool whose shutdown failed
    or hung, and workers behind (walk19 D3). It is held until they have all started."""
    import multiprocessing
    import signal
    from concurrent.futures import ProcessPoolExecutor

    real, started = ProcessPoolExecutor._spawn_process, []

    def spawn(self):
        real(self)
        started.append(1)
        if len(started) == 1:
            os.kill(os.getpid(), signal.SIGINT)   # between the first fork and the second

    monkeypatch.setattr(ProcessPoolExecutor, "_spawn_process", spawn)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)   # Python's own, whatever a test left
    try:
        with pytest.raises(KeyboardInterrupt):
            list(workers.ordered_map(_sleepy, range(50), 2))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert len(started) == 2
    assert not multiprocessing.active_children()


def test_evaluate_scores_in_this_machines_workers_with_the_same_numbers(tmp_path, kvasir_root, monkeypatch):
    import json
    import shutil

    from tests.test_cli import invoke

    runs = tmp_path / "runs"
    code, out = invoke("train", "--preset", "smoke", "--data-root", kvasir_root, "--runs-dir", runs, "--epochs", 1,
                       "--size", 64)
    assert code == 0, out
    run = runs / "kvasir" / "segdino__test__smoke__s0"
    shutil.copytree(run, tmp_path / "copy")
    used = []

    def recording(job, items, processes):
        used.append(processes)
        return workers.ordered_map(job, items, processes)

    monkeypatch.setattr(evaluate, "ordered_map", recording)
    for folder, n in ((run, "1"), (tmp_path / "copy", "2")):
        code, out = invoke("evaluate", folder, "--profile", "mirror", "--workers", n)
        assert code == 0, out
    assert used == [1, 2]
    one, two = (json.loads((f / "metrics.json").read_text())["profiles"]["mirror"] for f in (run, tmp_path / "copy"))
    assert one == two
