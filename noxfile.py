"""nox sessions run in the active environment (venv_backend="none"): one venv with torch is reused, never rebuilt."""
import os
import tempfile

import nox

nox.options.sessions = ["tests"]
nox.options.default_venv_backend = "none"

ENV = {"HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}


@nox.session(venv_backend="none")
def tests(session):
    """The whole test suite on CPU (tiny random backbone, generated miniature datasets, no network)."""
    session.run("python", "-m", "pytest", "-q", *session.posargs, env=ENV)


@nox.session(venv_backend="none")
def fast(session):
    """The suite without the slow end-to-end tests."""
    session.run("python", "-m", "pytest", "-q", "-m", "not slow and not gpu and not weights", *session.posargs, env=ENV)


@nox.session(venv_backend="none")
def smoke(session):
    """The demo end to end on its miniature datasets, in a temporary folder removed afterwards (about 1 GB); give
    a folder to keep it: `nox -s smoke -- --out segbench_smoke`."""
    if session.posargs:
        session.run("segbench", "demo", *session.posargs, env=ENV)
        return
    with tempfile.TemporaryDirectory(prefix="segbench-smoke-") as tmp:
        session.run("segbench", "demo", "--out", os.path.join(tmp, "demo"), env=ENV)


@nox.session(venv_backend="none")
def lint(session):
    session.run("ruff", "check", "segdino", "baselines", "benchmark", "reports", "tests", "scripts")
