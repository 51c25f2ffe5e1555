"""Session fixtures shared by all tests, and automatic skips for gpu/tensorrt/slow markers."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _no_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return True
    return not torch.cuda.is_available()


def _no_tensorrt() -> bool:
    # tensorrt-stubs installs an empty `tensorrt` namespace package: look for the real module.
    spec = importlib.util.find_spec("tensorrt")
    return spec is None or spec.origin is None or spec.origin == "namespace"


def pytest_collection_modifyitems(config, items):
    checks = {
        "gpu": (_no_cuda, "needs a CUDA GPU (none on this machine)"),
        "tensorrt": (_no_tensorrt, "needs TensorRT, which cannot be installed on CI or dev machines"),
        "slow": (lambda: os.environ.get("CDO_SLOW") != "1", "slow test: set CDO_SLOW=1 to run"),
    }
    verdict: dict[str, bool] = {}
    for item in items:
        for marker, (check, why) in checks.items():
            if item.get_closest_marker(marker) is None:
                continue
            if marker not in verdict:
                verdict[marker] = check()  # evaluated lazily: torch is imported only if a gpu test exists
            if verdict[marker]:
                item.add_marker(pytest.mark.skip(reason=why))


def cli(name: str) -> str:
    """Path of a console script installed next to this interpreter."""
    path = BIN / name
    return str(path) if path.exists() else shutil.which(name) or name


def run_cli(name: str, *args, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    """Run a console script in a subprocess and capture its output."""
    return subprocess.run([cli(name), *map(str, args)], capture_output=True, text=True, timeout=timeout, **kw)


def modules_after(code: str, timeout: float = 120) -> list[str]:
    """``sys.modules`` (sorted) of a fresh interpreter after it ran ``code``: import-weight checks."""
    probe = code + "\nimport json as _j, sys as _s; print(_j.dumps(sorted(_s.modules)))\n"
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.splitlines()[-1])


@pytest.fixture(scope="session")
def tiny_demo_root(tmp_path_factory) -> Path:
    """A tiny MVTec-layout demo dataset: 2 classes, 64 px."""
    from cdo_train.data import make_demo_dataset

    root = tmp_path_factory.mktemp("tiny_demo")
    return make_demo_dataset(root, classes=["weave", "grain"], n_train=8, n_test_good=3, n_test_defect=5, size=64)


TRAIN_ARGS = ("--class-name", "weave", "--image-size", "64", "--batch-size", "4", "--epochs", "1",
              "--eval-every", "1", "--no-progress", "--backbone", "resnet18", "--teacher-weights", "random",
              "--device", "cpu")


@pytest.fixture(scope="session")
def trained_run(tiny_demo_root: Path, tmp_path_factory) -> Path:
    """Run folder of a real ``cdo-train`` run (resnet18, random teacher, 64 px, 1 epoch on tiny ``weave``).

    Tiny on purpose (2 shared CPU cores); shared by the export and tools tests.
    """
    out = tmp_path_factory.mktemp("export_run")
    r = run_cli("cdo-train", "--data-root", tiny_demo_root, "--output-dir", out, *TRAIN_ARGS)
    assert r.returncode == 0, r.stderr
    run = out / "resnet18-none" / "weave" / "seed_111"
    assert (run / "model.safetensors").is_file()
    return run
