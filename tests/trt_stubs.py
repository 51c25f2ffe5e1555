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
