"""Type-check cdo_deploy/engine_build.py against the ``tensorrt-stubs`` package.

TensorRT cannot be installed on CI, so this is how the TensorRT Python API
names used by the engine builder (Builder, create_network, OnnxParser,
set_memory_pool_limit, create_timing_cache, build_serialized_network, ...) are
checked. The stubs (10.13) install a ``tensorrt/`` folder with a few syntax
slips (a parameter named ``in``), so they are copied and patched first.
"""

from __future__ import annotations

import importlib.util

import pytest

from tests.trt_stubs import assert_mypy_catches


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy not installed (pip install mypy)")
def test_engine_build_type_checks_against_tensorrt_stubs(tmp_path):
    assert_mypy_catches(tmp_path, "cdo_deploy/engine_build.py", "build_serialized_network", "build_engine_v2")
