"""Session fixtures shared by all tests, and automatic skips for gpu/tensorrt/slow markers."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def pytest_collection_modifyitems(config, items):
    skips = {
        "gpu": (not _has_cuda(), "needs a CUDA GPU (none here)"),
        "tensorrt": (importlib.util.find_spec("tensorrt") is None, "needs TensorRT (not installable here)"),
        "slow": (os.environ.get("CDO_SLOW") != "1", "slow test: set CDO_SLOW=1"),
    }
    for item in items:
        for marker, (skip, why) in skips.items():
            if skip and marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=why))


def cli(name: str) -> str:
    """Path of a console script installed next to this interpreter."""
    path = BIN / name
    return str(path) if path.exists() else shutil.which(name) or name


def run_cli(name: str, *args, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    """Run a console script in a subprocess and capture its output."""
    return subprocess.run([cli(name), *map(str, args)], capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture(scope="session")
def tiny_demo_root(tmp_path_factory) -> Path:
    """A tiny MVTec-layout demo dataset: 2 classes, 64 px."""
    from cdo_train.data import make_demo_dataset

    root = tmp_path_factory.mktemp("tiny_demo")
    return make_demo_dataset(root, classes=["weave", "grain"], n_train=8, n_test_good=3, n_test_defect=5, size=64)
