"""TensorRT engine building (cdo_deploy.engine_build).

TensorRT cannot be installed here, so three layers of checks:

* the build plan (which ONNX file, strong or weak typing, which flags) per
  TensorRT major version, as pure logic;
* the wiring of ``build_engine`` against a *recording fake* ``tensorrt`` module
  (network flags written as ``1 << int(flag)``, optimisation profile, workspace,
  timing cache read and written, parser errors reported, ``model.json`` updated).
  The fake only records calls; that the names exist in the real API is checked
  by mypy against ``tensorrt-stubs`` (test_engine_build_types.py);
* a real build and run on a GPU with TensorRT (skip-marked: no TensorRT here).
"""

from __future__ import annotations

import enum
import shutil
import sys
import types

import numpy as np
import pytest

from cdo_deploy.bundle import BundleMeta, load_bundle_meta
from cdo_deploy.engine_build import build_engine, plan_build
from cdo_deploy.errors import CdoError
from cdo_train.export.formats import module_available

VARIANTS = {"fp32": "model.onnx", "fp16": "model_fp16.onnx", "int8": "model_int8.onnx"}


def test_plan_tensorrt_11_is_strongly_typed_with_precision_from_the_onnx_variant():
    for precision, file in VARIANTS.items():
        plan = plan_build(VARIANTS, precision, trt_major=11)
        assert (plan.onnx_file, plan.strongly_typed, plan.builder_flags) == (file, True, ())
        assert plan.engine_file == f"model_{precision}.engine"
    with pytest.raises(CdoError, match="strongly typed networks only"):
        plan_build(VARIANTS, "fp16", trt_major=11, strongly_typed=False)


def test_plan_tensorrt_10_uses_weak_typing_flags_and_pins_the_head_unless_asked():
    assert plan_build(VARIANTS, "fp16", 10).builder_flags == ("FP16", "PREFER_PRECISION_CONSTRAINTS")
    assert plan_build(VARIANTS, "int8", 10).builder_flags == ("INT8", "PREFER_PRECISION_CONSTRAINTS")
    assert plan_build(VARIANTS, "int8", 10).pin_head_fp32
    assert plan_build(VARIANTS, "fp32", 10).builder_flags == ()
    strong = plan_build(VARIANTS, "fp16", 10, strongly_typed=True)
    assert strong.strongly_typed and strong.builder_flags == () and not strong.pin_head_fp32
    cmd = strong.trtexec((64, 64), (1, 8, 32))
    assert "--onnx=model_fp16.onnx --stronglyTyped" in cmd and "--maxShapes=image:32x64x64x3" in cmd


def test_plan_errors():
    with pytest.raises(CdoError, match="no int8 ONNX variant.*--int8"):
        plan_build({"fp32": "model.onnx"}, "int8", 11)
    with pytest.raises(CdoError, match="TensorRT >= 10"):
        plan_build(VARIANTS, "fp16", 8)
    with pytest.raises(CdoError, match="one of fp32, fp16, int8"):
        plan_build(VARIANTS, "bf16", 11)


@pytest.fixture
def fake_bundle(tmp_path):
    BundleMeta(height=64, width=48, backbone="resnet18", variants=dict(VARIANTS)).save(tmp_path)
    for f in VARIANTS.values():
        (tmp_path / f).write_bytes(b"onnx")
    return tmp_path


def _fake_tensorrt(version: str, parse_ok: bool = True) -> types.ModuleType:
    """A module with the TensorRT names build_engine uses; records every call in ``trt.calls``."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version
    calls: list[tuple] = []
    trt.calls = calls
    trt.NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", {"STRONGLY_TYPED": 1})
    trt.BuilderFlag = enum.IntEnum("BuilderFlag", {"FP16": 0, "INT8": 1, "TF32": 6, "PREFER_PRECISION_CONSTRAINTS": 10})
    trt.MemoryPoolType = enum.IntEnum("MemoryPoolType", {"WORKSPACE": 0})
    trt.LayerType = enum.IntEnum("LayerType", {"CONSTANT": 1, "SHAPE": 2, "CONVOLUTION": 3, "CAST": 4, "QUANTIZE": 5,
                                               "DEQUANTIZE": 6, "IDENTITY": 7})
    trt.float32, trt.float16, trt.int64 = "float32", "float16", "int64"
    trt.Dims = tuple

    class Logger:
        WARNING = 2

        def __init__(self, level):
            pass

    def layer(name, dtype):
        out = types.SimpleNamespace(dtype=dtype)
        lay = types.SimpleNamespace(name=name, type=trt.LayerType.CONVOLUTION, num_outputs=1, precision=None,
                                    get_output=lambda k: out)
        lay.set_output_type = lambda k, t: calls.append(("set_output_type", name, t))
        return lay

    class Network:
        layers = [layer("/model/teacher/conv1/Conv", "float32"), layer("/model/head/Conv", "float32"),
                  layer("/model/head/Shape", "int64")]
        num_layers = 3

        def get_layer(self, i):
            return self.layers[i]

    class Cache:
        def __init__(self, data):
            self.data = bytes(data)

        def serialize(self):
            return self.data + b"+new"

    class Config:
        def __init__(self):
            self.cache = None

        def set_memory_pool_limit(self, pool, size):
            calls.append(("workspace", pool, size))

        def set_flag(self, flag):
            calls.append(("set_flag", flag.name))

        def clear_flag(self, flag):
            calls.append(("clear_flag", flag.name))

        def add_optimization_profile(self, profile):
            calls.append(("profile", profile.shapes))

        def create_timing_cache(self, data):
            return Cache(data)

        def set_timing_cache(self, cache, ignore_mismatch):
            self.cache = cache
            calls.append(("timing_cache", cache.data))
            return True

        def get_timing_cache(self):
            return self.cache

    class Profile:
        def set_shape(self, name, lo, opt, hi):
            self.shapes = (name, lo, opt, hi)

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            calls.append(("create_network", flags))
            return Network()

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            return b"ENGINE"

    class OnnxParser:
        def __init__(self, network, logger):
            self.num_errors = 0 if parse_ok else 2

        def parse_from_file(self, path):
            calls.append(("parse", path.rsplit("/", 1)[-1]))
            return parse_ok

        def get_error(self, i):
            return f"In node {i} (importResize): UNSUPPORTED_NODE: antialias"

    trt.Logger, trt.Builder, trt.OnnxParser = Logger, Builder, OnnxParser
    return trt


def test_build_engine_wiring_tensorrt_11(fake_bundle, monkeypatch):
    trt = _fake_tensorrt("11.0.1")
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    (fake_bundle / "timing.cache").write_bytes(b"OLD")
    path = build_engine(fake_bundle, "fp16", 2, 4, 16, workspace_mb=512)
    assert path == fake_bundle / "model_fp16.engine" and path.read_bytes() == b"ENGINE"
    assert ("create_network", 1 << 1) in trt.calls and ("parse", "model_fp16.onnx") in trt.calls
    assert ("profile", ("image", (2, 64, 48, 3), (4, 64, 48, 3), (16, 64, 48, 3))) in trt.calls
    assert ("workspace", trt.MemoryPoolType.WORKSPACE, 512 << 20) in trt.calls
    assert ("timing_cache", b"OLD") in trt.calls and (fake_bundle / "timing.cache").read_bytes() == b"OLD+new"
    assert not [c for c in trt.calls if c[0] in ("set_flag", "set_output_type")]
    assert load_bundle_meta(fake_bundle).engines == {"fp16": "model_fp16.engine"}


def test_build_engine_wiring_tensorrt_10_weak_typing_pins_the_head(fake_bundle, monkeypatch):
    trt = _fake_tensorrt("10.13.0.35")
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    build_engine(fake_bundle, "int8", timing_cache=fake_bundle / "my.cache")
    assert ("create_network", 0) in trt.calls and ("parse", "model_int8.onnx") in trt.calls
    assert [c[1] for c in trt.calls if c[0] == "set_flag"] == ["INT8", "PREFER_PRECISION_CONSTRAINTS"]
    assert [c[1] for c in trt.calls if c[0] == "set_output_type"] == ["/model/head/Conv"]
    assert (fake_bundle / "my.cache").read_bytes() == b"+new"
    assert load_bundle_meta(fake_bundle).engines == {"int8": "model_int8.engine"}


def test_parser_errors_are_reported_and_nothing_is_written(fake_bundle, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "tensorrt", _fake_tensorrt("11.1.0", parse_ok=False))
    with pytest.raises(CdoError, match=r"cannot parse .*model\.onnx: In node 0 .*UNSUPPORTED_NODE.*\(\+1 more"):
        build_engine(fake_bundle, "fp32")
    assert sum("TensorRT ONNX parser" in r.message for r in caplog.records) == 2
    assert not list(fake_bundle.glob("*.engine")) and load_bundle_meta(fake_bundle).engines == {}


@pytest.mark.skipif(module_available("tensorrt"), reason="TensorRT is installed here")
def test_missing_tensorrt_is_a_cdo_error_naming_the_package(fake_bundle):
    with pytest.raises(CdoError, match="pip install tensorrt"):
        build_engine(fake_bundle, "fp16")


def test_bad_arguments_fail_before_tensorrt_is_needed(fake_bundle, tmp_path):
    with pytest.raises(CdoError, match="batch range"):
        build_engine(fake_bundle, "fp16", min_batch=4, opt_batch=2)
    with pytest.raises(CdoError, match="no such bundle folder"):
        build_engine(tmp_path / "missing_dir_is_reported", "fp16")


@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.skipif(not module_available("tensorrt"), reason="needs TensorRT (not installable here)")
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_real_engine_matches_onnxruntime(exported, tmp_path, precision):
    from cdo_deploy.backends import create_backend
    from cdo_train.export.verify import onnx_session, run_onnx

    bundle = tmp_path / "bundle"
    shutil.copytree(exported.bundle, bundle)
    engine = build_engine(bundle, precision, 1, 4, 8, workspace_mb=1024)
    assert load_bundle_meta(bundle).engines[precision] == engine.name
    images = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    ref = run_onnx(onnx_session(bundle / load_bundle_meta(bundle).variants[precision]), images)
    be = create_backend("tensorrt", engine, max_batch=8)
    got = be.infer(images)
    be.close()
    span = float(ref[0].max() - ref[0].min())
    assert float(np.abs(got.score - ref[1]).max()) <= (1e-3 if precision == "fp32" else 0.02) * span


def test_engine_build_loads_without_torch_or_cdo_train():
    from tests.conftest import modules_after

    loaded = modules_after("import cdo_deploy.engine_build")
    bad = [m for m in loaded if m == "torch" or m.startswith(("torch.", "cdo_train", "onnx"))]
    assert not bad, bad
