"""Shared fixtures: no network, tiny random backbone, generated miniature datasets."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def kvasir_root(tmp_path_factory):
    """A miniature Kvasir-SEG in its native layout; returns the folder holding `Kvasir-SEG/`."""
    from benchmark.data.synthetic import write_kvasir

    root = tmp_path_factory.mktemp("data")
    write_kvasir(root / "Kvasir-SEG", n_train=24, n_test=8, seed=0)
    return root


@pytest.fixture(scope="session")
def smoke_overrides(kvasir_root):
    return {"data.root": str(kvasir_root), "train.epochs": 2, "train.device": "cpu", "data.size": 64}
