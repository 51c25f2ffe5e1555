"""Fakes of TensorRT and cuda-bindings that mirror the real headers, for a machine without either.

``install_fake_gpu(monkeypatch, trt_version="11.1.0", devices=2)`` puts a fake ``tensorrt`` and a
fake ``cuda.bindings.runtime`` into ``sys.modules`` for one test and returns a namespace with the
module objects and their recorded state:

* ``gpu.trt.fake``: what the fake TensorRT saw -- ``network_flags``, ``builds`` (flags, typing,
  pinned layers per build), ``contexts``, ``executions``, ``replays`` (per CUDA-graph replay: the
  batch at capture and the context's batch now), ``shape_log``, ``messages`` (errors it logged);
* ``gpu.cuda``: the fake CUDA runtime -- ``launches`` (thread, current device, stream device per
  kernel launch), ``fail_next`` (fault injection), ``capturing(stream)``.

Enum values and flag semantics per major version: ``trt_tables.py`` (with the header lines they come
from); behaviour: the docstrings of ``trt_builder.py``, ``trt_runtime.py`` and ``cudart.py``.
"""

from __future__ import annotations

import enum
import importlib.machinery
import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np

from . import trt_tables as T
from .cudart import FakeCuda
from .trt_builder import CDO_LAYERS, ENGINE_MAGIC, builder_classes
from .trt_runtime import runtime_classes

__all__ = ["CDO_LAYERS", "FakeCuda", "install_fake_gpu", "make_tensorrt", "write_engine"]


class Dims(tuple):
    """``trt.Dims``: a sequence of ints."""

    def __new__(cls, dims: Any = ()) -> "Dims":
        return super().__new__(cls, (int(d) for d in dims))


class _Loader(importlib.machinery.BuiltinImporter):
    """A loader object so ``importlib.util.find_spec`` reports the fake as a real module."""


def _spec(name: str) -> importlib.machinery.ModuleSpec:
    return importlib.machinery.ModuleSpec(name, _Loader, origin=f"<fake {name}>")


def make_tensorrt(version: str, cuda: FakeCuda, device_name: str = "NVIDIA H200") -> types.ModuleType:
    """A fake ``tensorrt`` module of ``version`` (major 10 or 11) running on ``cuda``."""
    major = int(version.split(".")[0])
    if major not in T.NETWORK_FLAGS:
        raise ValueError(f"the fake mirrors TensorRT 10.x and 11.x, not {version}")
    trt = types.ModuleType("tensorrt")
    trt.__spec__ = _spec("tensorrt")
    trt.__version__ = version
    trt.fake = types.SimpleNamespace(major=major, device_name=device_name, layers=list(CDO_LAYERS), parse_errors=[],
                                     parsed=[], network_flags=[], builds=[], contexts=[], executions=[], replays=[],
                                     shape_log=[], messages=[])
    trt.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", T.NETWORK_FLAGS[major])
    trt.BuilderFlag = enum.IntEnum("BuilderFlag", T.BUILDER_FLAGS[major])
    trt.LayerType = enum.IntEnum("LayerType", T.LAYER_TYPES)
    trt.TensorIOMode = enum.IntEnum("TensorIOMode", T.TENSOR_IO_MODES)
    trt.MemoryPoolType = enum.IntEnum("MemoryPoolType", T.MEMORY_POOL_TYPES)
    trt.ExecutionContextAllocationStrategy = enum.IntEnum("ExecutionContextAllocationStrategy",
                                                          T.ALLOCATION_STRATEGIES)
    trt.DataType = enum.IntEnum("DataType", {k: v[0] for k, v in T.DATA_TYPES.items()})
    numpy_types = {}
    for member, (_, alias, np_name) in T.DATA_TYPES.items():
        setattr(trt, alias, trt.DataType[member])
        numpy_types[trt.DataType[member]] = np_name

    def nptype(dtype: Any) -> Any:
        if numpy_types.get(dtype) is None:
            raise TypeError(f"could not resolve TensorRT datatype {dtype} to an equivalent numpy datatype")
        return getattr(np, numpy_types[dtype])

    trt.nptype, trt.Dims = nptype, Dims

    class Logger:
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

        def __init__(self, min_severity: int = 2) -> None:
            self.min_severity = min_severity

    trt.Logger = Logger
    builder_classes(trt, major, trt.fake)
    runtime_classes(trt, trt.fake, cuda)
    return trt


def install_fake_gpu(monkeypatch: Any, trt_version: str = "11.1.0", devices: int = 1, driver_version: int = 13000,
                     runtime_version: int = 13000) -> types.SimpleNamespace:
    """Fake ``tensorrt`` + ``cuda.bindings.runtime`` in ``sys.modules`` for the current test."""
    cuda = FakeCuda(devices, driver_version, runtime_version)
    trt = make_tensorrt(trt_version, cuda)
    pkg, bindings = types.ModuleType("cuda"), types.ModuleType("cuda.bindings")
    pkg.__spec__, bindings.__spec__, cuda.module.__spec__ = _spec("cuda"), _spec("cuda.bindings"), \
        _spec("cuda.bindings.runtime")
    pkg.__path__, bindings.__path__ = [], []
    pkg.bindings, bindings.runtime = bindings, cuda.module
    bindings.__version__ = f"{runtime_version // 1000}.{runtime_version % 1000 // 10}.0"
    for name, mod in (("tensorrt", trt), ("cuda", pkg), ("cuda.bindings", bindings),
                      ("cuda.bindings.runtime", cuda.module)):
        monkeypatch.setitem(sys.modules, name, mod)
    return types.SimpleNamespace(trt=trt, cuda=cuda, cudart=cuda.module)


def write_engine(path: Path, trt: types.ModuleType, hw: tuple[int, int], batches: tuple[int, int, int]) -> Path:
    """A serialized fake engine for ``trt`` with profile ``batches`` = (min, opt, max) at ``hw``."""
    h, w = hw
    rec = {"version": trt.__version__, "strongly_typed": True, "flags": [], "pinned": {},
           "profile": [[b, h, w, 3] for b in batches]}
    path.write_bytes(ENGINE_MAGIC + json.dumps(rec).encode())
    return path
