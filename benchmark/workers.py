"""CPU work spread over worker processes, results in order: a test split scored at native size while the GPU
predicts the next batches (mask decoding, bilinear upsampling and the metrics take 10-90 ms an image on one core;
the paper matrix scores ~100,000 test images).

On Linux the workers are forks of the run's process, as PyTorch's DataLoader workers are: they inherit its code and
the job without pickling or importing anything, and never touch the GPU (CUDA cannot be used in a forked child; the
CPU work here does not need it). Elsewhere they are spawned (macOS cannot fork safely), which pickles the job and
imports the main script again: a script calling segbench must keep its work under `if __name__ == "__main__":`.
Workers ignore Ctrl-C (the main process stops them), die with the main process (Linux), and run torch on one thread.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterable, Iterator

AHEAD = 4   # items queued per worker: enough to keep each busy, few enough to bound memory (a map or two each)


def usable_cores() -> int:
    """The cores this process may run on (a Slurm job's allocation, not the node's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # macOS, Windows
        return os.cpu_count() or 1


CORES_VARIABLE = "SEGBENCH_CORES"   # a sweep's local worker's share of the cores, set for the runs it executes


def cpu_share() -> int:
    """This run's cores: CORES_VARIABLE when runs go side by side in a sweep, else the usable cores."""
    return max(1, int(os.environ.get(CORES_VARIABLE) or usable_cores()))


def scoring_processes(setting: int) -> int:
    """`train.num_workers` for scoring: that many processes, or for 0 one per core of this run's share less the one
    that predicts, at most 8."""
    return setting if setting > 0 else max(1, min(8, cpu_share() - 1))


POOL_MIN_ITEMS = 100   # fewer: starting the workers costs more than they save


def processes_for(n_items: int, setting: int) -> int:
    return scoring_processes(setting) if n_items >= POOL_MIN_ITEMS else 1


_JOB: Callable | None = None


def _install(job: Callable, parent: int) -> None:
    global _JOB
    _JOB = job
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):   # killed with the main process (SIGKILL, the OOM killer): a worker left
        import ctypes                      # behind would hold the run's lock, which a fork inherits

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
        if os.getppid() != parent:   # it died before the line above
            os._exit(1)
    import torch
    torch.set_num_threads(1)


_END = object()


def ordered_map(job: Callable, items: Iterable, processes: int) -> Iterator:
    """`job(item)` for each item, yielded in the order of `items`, whatever the number of processes (1: in this
    process). `items` is pulled lazily, at most AHEAD per worker ahead of the results, so a generator of GPU batches
    keeps predicting while the workers score. An exception in a job is raised here, for the first failing item in
    order, and the queued items are dropped."""
    if processes <= 1:
        yield from map(job, items)
        return
    items = iter(items)
    first = next(items, _END)
    if first is _END:
        return
    pending: deque = deque()
    pool = None
    try:
        with _sigint_held():   # every worker forks at the first submit: a Ctrl-C lands after, not between two forks
            pool = ProcessPoolExecutor(processes, mp_context=_context(), initializer=_install,
                                       initargs=(job, os.getpid()))
            pending.append(pool.submit(_run, first))
        for item in items:
            pending.append(pool.submit(_run, item))
            if len(pending) >= AHEAD * processes:
                yield _result(pending.popleft())
        while pending:
            yield _result(pending.popleft())
    except BrokenProcessPool:
        raise _died() from None
    finally:   # an error, Ctrl-C or a consumer that stopped early: nothing queued runs on
        if pool is not None:
            _stop(pool)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Shut the pool down without replacing the exception under way, if any, with one of its own."""
    try:
        pool.shutdown(wait=True, cancel_futures=True)
    except Exception:   # noqa: BLE001 - a pool broken or half started: its processes are ended directly
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.kill()


class _sigint_held:
    """A Ctrl-C during the block is noted and sent again after it, to the handler in place before (Python runs
    signal handlers in the main thread only; elsewhere there is nothing to hold). Blocking the signal would not
    do: a process-directed SIGINT goes to any thread that does not block it."""

    def __enter__(self):
        self.active, self.caught = _main_thread(), False
        if self.active:
            self.previous = signal.signal(signal.SIGINT, self._note)

    def _note(self, signum, frame):
        self.caught = True

    def __exit__(self, *exc):
        if self.active:   # None: a handler not set from Python, taken as the default
            signal.signal(signal.SIGINT, signal.SIG_DFL if self.previous is None else self.previous)
            if self.caught:
                os.kill(os.getpid(), signal.SIGINT)


def _main_thread() -> bool:
    import threading
    return threading.current_thread() is threading.main_thread()


def _context():
    """fork on Linux; a fork server would import segbench again from sys.path as it was at start (a script that put
    a checkout on sys.path would score with the installed copy's code) and each worker the main script."""
    return multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")


def _run(item):
    return _JOB(item)


def _result(future):
    try:
        return future.result()
    except BrokenProcessPool:
        raise _died() from None


def _died() -> RuntimeError:
    return RuntimeError("a scoring worker process died (out of memory, or, where workers are spawned, a main script "
                        "that starts segbench work outside `if __name__ == \"__main__\":`; its error is above); score "
                        "in the main process with --set train.num_workers=1 (segbench score: --workers 1)")
