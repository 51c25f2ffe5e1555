"""Locate and patch the ``tensorrt-stubs`` package for mypy checks of the TensorRT code paths.

TensorRT cannot be installed on CI, so its Python API names are checked by type-checking our
TensorRT modules against the stubs. The stubs (10.13) have a few syntax slips (a parameter named
``in``, a non-default argument after a default one), so they are copied and patched first.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path


def stubs_root() -> Path | None:
    """$CDO_TRT_STUBS, <venv>/tensorrt-stubs, or site-packages (pip install --no-deps tensorrt-stubs)."""
    for cand in (os.environ.get("CDO_TRT_STUBS"), str(Path(sys.prefix) / "tensorrt-stubs")):
        if cand and (Path(cand) / "tensorrt" / "__init__.pyi").exists():
            return Path(cand)
    spec = importlib.util.find_spec("tensorrt")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        if (Path(loc) / "__init__.pyi").exists():
            return Path(loc).parent
    return None


def patched_stubs(dst: Path) -> Path | None:
    """Copy the stubs to ``dst`` with their syntax slips fixed; None when they are not installed."""
    src = stubs_root()
    if src is None:
        return None
    for pkg in ("tensorrt", "tensorrt_bindings"):
        if not (src / pkg).is_dir():
            return None
        shutil.copytree(src / pkg, dst / pkg, ignore=shutil.ignore_patterns("*.py", "*.so", "__pycache__"))
    for pyi in dst.rglob("*.pyi"):
        text = re.sub(r"([(,] *)in: ", r"\1in_: ", pyi.read_text())  # 'in' is a keyword
        pyi.write_text(text.replace("channel_axis: int)", "channel_axis: int = ...)"))
    return dst


ROOT = Path(__file__).resolve().parents[1]


def _mypy(cfg: Path, target: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(cfg), str(target)],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


def assert_mypy_catches(tmp_path: Path, target: str, good_name: str, bad_name: str) -> None:
    """``target`` (a path under the repo) type-checks against the stubs, and the check has teeth:
    the same file with ``good_name`` replaced by the non-existent ``bad_name`` is rejected."""
    import pytest

    stubs = patched_stubs(tmp_path / "stubs")
    if stubs is None:
        pytest.skip("tensorrt-stubs not installed (pip install --no-deps tensorrt-stubs)")
    cfg = tmp_path / "mypy.ini"
    cfg.write_text(
        "[mypy]\nfollow_imports = silent\ncheck_untyped_defs = True\ndisable_error_code = import-untyped\n"
        f"mypy_path = {stubs}\ncache_dir = {ROOT / '.pytest_cache' / 'cdo-mypy'}\n"
        "[mypy-tensorrt.*,tensorrt_bindings.*,tensorrt_libs.*]\nignore_errors = True\nignore_missing_imports = True\n"
    )
    source = ROOT / target
    r = _mypy(cfg, source, ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    bad = tmp_path / "bad"
    shutil.copytree(ROOT / "cdo_deploy", bad / "cdo_deploy", ignore=shutil.ignore_patterns("__pycache__"))
    broken = bad / target
    broken.write_text(source.read_text().replace(good_name, bad_name))
    r = _mypy(cfg, broken, bad)
    assert r.returncode == 1 and bad_name in r.stdout, r.stdout
