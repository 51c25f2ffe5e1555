"""Type-check cdo_deploy/engine_build.py against the ``tensorrt-stubs`` package.

TensorRT cannot be installed on CI, so this is how the TensorRT Python API
names used by the engine builder (Builder, create_network, OnnxParser,
set_memory_pool_limit, create_timing_cache, build_serialized_network, ...) are
checked. The stubs (10.13) install a ``tensorrt/`` folder with a few syntax
slips (a parameter named ``in``), so they are copied and patched first.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.trt_stubs import patched_stubs

ROOT = Path(__file__).resolve().parents[2]
TARGET = ROOT / "cdo_deploy" / "engine_build.py"


def _mypy(cfg: Path, target: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(cfg), str(target)],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy not installed (pip install mypy)")
def test_engine_build_type_checks_against_tensorrt_stubs(tmp_path):
    stubs = patched_stubs(tmp_path / "stubs")
    if stubs is None:
        pytest.skip("tensorrt-stubs not installed (pip install --no-deps tensorrt-stubs)")
    cfg = tmp_path / "mypy.ini"
    cfg.write_text(
        "[mypy]\nfollow_imports = silent\ncheck_untyped_defs = True\ndisable_error_code = import-untyped\n"
        f"mypy_path = {stubs}\ncache_dir = {tmp_path / 'cache'}\n"
        "[mypy-tensorrt.*,tensorrt_bindings.*]\nignore_errors = True\n"
    )
    r = _mypy(cfg, TARGET, ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    # the check has teeth: a TensorRT API name that does not exist is reported
    bad = tmp_path / "bad"
    shutil.copytree(ROOT / "cdo_deploy", bad / "cdo_deploy", ignore=shutil.ignore_patterns("__pycache__"))
    target = bad / "cdo_deploy" / "engine_build.py"
    target.write_text(TARGET.read_text().replace("build_serialized_network(", "build_engine_v2("))
    r = _mypy(cfg, target, bad)
    assert r.returncode == 1 and "build_engine_v2" in r.stdout, r.stdout
