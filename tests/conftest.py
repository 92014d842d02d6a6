"""Shared test set-up: GPU tests skip without CUDA; KeOps builds outside the repo; realdata location."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
REALDATA = REPO.parent / "shared" / "realdata"

os.environ.setdefault("MPLBACKEND", "Agg")
# KeOps compiles its kernels on first use: into a temporary folder, never the repository (kept
# between runs on one machine, keyed inside by host, CUDA version and GPU: vocab/assign.py)
os.environ.setdefault("FACEVOCAB_KEOPS_CACHE", os.path.join(tempfile.gettempdir(), "facevocab-keops-tests"))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def realdata() -> Path:
    if not REALDATA.is_dir():
        pytest.skip(f"{REALDATA} is absent")
    return REALDATA
