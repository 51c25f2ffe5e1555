"""TensorRT engine building (cdo_deploy.engine_build, cdo_deploy.engine_plan).

TensorRT cannot be installed here, so three layers of checks:

* the build plan (which ONNX file, typing, network/builder flags, fp32 pins) per TensorRT major
  version, as pure logic, and the ``trtexec`` line generated from it, checked against the options
  each version's trtexec parses (``tests/fakes/trt_tables.py``);
* ``build_engine`` against the fake ``tensorrt`` of ``tests/fakes``, whose enums and flag semantics
  are those of the 10.13.3 and 11.1 headers (strong typing via bit 1 on 10.x, always on and bit 0
  ignored on 11.x, no precision API on 11.x, TF32 on by default, ``create_timing_cache`` None for a
  cache of another version); that the names exist in the real API is checked by mypy against
  ``tensorrt-stubs`` (test_engine_build_types.py);
* a real build and run on a GPU with TensorRT (skip-marked: no TensorRT here).
"""

from __future__ import annotations

import json
import shlex
import shutil

import numpy as np
import pytest

from cdo_deploy.bundle import BundleMeta, load_bundle_meta, sha256_file
from cdo_deploy.engine_build import build_engine, plan_build, trtexec_line
from cdo_deploy.engine_plan import FP32_LAYERS, is_parser_helper, matches_layer
from cdo_deploy.errors import CdoError
from cdo_train.export.formats import module_available
from tests.fakes import install_fake_gpu
from tests.fakes import trt_tables as T

VARIANTS = {"fp32": "model.onnx", "fp16": "model_fp16.onnx", "int8": "model_int8.onnx"}
#: the fake parser's layers that the weak-typed builder must pin: named normalisation/head layers and
#: the helper fed by the head; not the cast, shape, constant, backbone layers or the backbone's helper
PINNED = {"/Transpose", "/Div", "/model/Sub", "/model/Div", "/model/head/Mul", "ONNXTRT_Broadcast_31",
          "/model/head/ReduceSum", "/model/head/Resize", "/model/head/Conv", "/model/head/ReduceMax"}


def test_plan_tensorrt_11_is_strongly_typed_without_flags_and_with_tf32_off():
    for precision, file in VARIANTS.items():
        plan = plan_build(VARIANTS, precision, trt_major=11)
        assert (plan.onnx_file, plan.strongly_typed, plan.builder_flags) == (file, True, ())
        assert plan.network_flags == () and plan.cleared_flags == ("TF32",) and not plan.pin_head_fp32
        assert plan.engine_file == f"model_{precision}.engine"
    with pytest.raises(CdoError, match="strongly typed networks only"):
        plan_build(VARIANTS, "fp16", trt_major=11, strongly_typed=False)


def test_plan_tensorrt_10_weak_typing_sets_fp16_for_int8_too_and_pins_the_head():
    assert plan_build(VARIANTS, "fp16", 10).builder_flags == ("FP16", "PREFER_PRECISION_CONSTRAINTS")
    assert plan_build(VARIANTS, "int8", 10).builder_flags == ("INT8", "FP16", "PREFER_PRECISION_CONSTRAINTS")
    assert plan_build(VARIANTS, "int8", 10).fp32_layers == FP32_LAYERS
    fp32 = plan_build(VARIANTS, "fp32", 10)
    assert (fp32.builder_flags, fp32.fp32_layers, fp32.cleared_flags) == ((), (), ("TF32",))
    strong = plan_build(VARIANTS, "fp16", 10, strongly_typed=True)
    assert strong.network_flags == ("STRONGLY_TYPED",) and strong.builder_flags == () and not strong.pin_head_fp32


def test_plan_errors():
    with pytest.raises(CdoError, match="no int8 ONNX variant.*--int8"):
        plan_build({"fp32": "model.onnx"}, "int8", 11)
    with pytest.raises(CdoError, match="TensorRT >= 10"):
        plan_build(VARIANTS, "fp16", 8)
    with pytest.raises(CdoError, match="one of fp32, fp16, int8"):
        plan_build(VARIANTS, "bf16", 11)


def test_layer_patterns_match_like_trtexec():
    assert matches_layer("/model/head/*", "/model/head/Conv_1") and not matches_layer("/model/head/*", "/model/Div")
    assert matches_layer("/Div*", "/Div") and matches_layer("/Div*", "/Div_17") and not matches_layer("/Div", "/Div_1")
    assert is_parser_helper("ONNXTRT_Broadcast_3") and is_parser_helper("(Unnamed Layer* 7) [Shuffle]")
    assert not is_parser_helper("/model/head/Conv")


def _trtexec(plan_line: str) -> dict[str, str]:
    args = shlex.split(plan_line)
    assert args[0] == "trtexec"
    return dict(a.split("=", 1) if "=" in a else (a, "") for a in args[1:])


@pytest.mark.parametrize("major, precision, strong", [(10, "fp32", None), (10, "fp16", None), (10, "int8", None),
                                                      (10, "fp16", True), (11, "fp32", None), (11, "fp16", None),
                                                      (11, "int8", None)])
def test_trtexec_line_uses_only_options_of_that_version_and_says_what_the_plan_does(major, precision, strong):
    """Defect 4: --fp16 on 11.x (removed), no --precisionConstraints/--layerPrecisions or --noTF32 on 10.x."""
    plan = plan_build(VARIANTS, precision, major, strong)
    opts = _trtexec(plan.trtexec((64, 48), (2, 4, 16), workspace_mb=512))
    assert set(opts) <= T.TRTEXEC_OPTIONS[major] and not set(opts) & T.TRTEXEC_DEPRECATED[major], opts
    assert opts["--onnx"] == VARIANTS[precision] and opts["--saveEngine"] == f"model_{precision}.engine"
    assert (opts["--minShapes"], opts["--maxShapes"]) == ("image:2x64x48x3", "image:16x64x48x3")
    assert opts["--memPoolSize"] == "workspace:512M" and "--noTF32" in opts
    weak = major == 10 and not strong and precision != "fp32"
    assert ("--fp16" in opts) == weak and ("--int8" in opts) == (weak and precision == "int8")
    assert ("--stronglyTyped" in opts) == (major == 10 and bool(strong))
    if weak:
        spec = ",".join(f"{p}:fp32" for p in FP32_LAYERS)
        assert opts["--precisionConstraints"] == "prefer"
        assert opts["--layerPrecisions"] == opts["--layerOutputTypes"] == spec
    else:
        assert not {"--precisionConstraints", "--layerPrecisions", "--layerOutputTypes"} & set(opts)


@pytest.fixture
def fake_bundle(tmp_path):
    for f in VARIANTS.values():
        (tmp_path / f).write_bytes(b"onnx")
    BundleMeta(height=64, width=48, backbone="resnet18", variants=dict(VARIANTS)).save(tmp_path)  # hashes them
    return tmp_path


def _named_pins(opts: dict[str, str], layers) -> set[str]:
    """The layers trtexec pins with the line's --layerPrecisions (named layers; skips shape/cast/constant)."""
    patterns = [p.rsplit(":", 1)[0] for p in opts.get("--layerPrecisions", "").split(",") if p]
    return {name for name, kind, _, dtype in layers
            if any(matches_layer(p, name) for p in patterns) and dtype == "float32" and kind not in
            ("CONSTANT", "SHAPE", "CAST")}


@pytest.mark.parametrize("version, precision, strong, flags, network_flags", [
    ("10.13.3", "fp16", None, {"FP16", "PREFER_PRECISION_CONSTRAINTS"}, 0),
    ("10.13.3", "int8", None, {"INT8", "FP16", "PREFER_PRECISION_CONSTRAINTS"}, 0),
    ("10.13.3", "fp32", None, set(), 0),
    ("10.13.3", "fp16", True, set(), 1 << 1),
    ("11.1.0", "fp16", None, set(), 0),
    ("11.1.0", "int8", None, set(), 0),
])
def test_build_engine_follows_the_plan_on_each_tensorrt_version(fake_bundle, monkeypatch, caplog, version, precision,
                                                                strong, flags, network_flags):
    """Defect 5 (the fake now has 11.x's enums: 1 << int(STRONGLY_TYPED) is the ignored bit 0 there) and
    suspected 9 (TF32 left on for fp16/int8, int8 without FP16, helper layers inside backbones pinned)."""
    gpu = install_fake_gpu(monkeypatch, version)
    caplog.set_level("INFO", logger="cdo_deploy.engine_build")
    (fake_bundle / "timing.cache").write_bytes(b"")
    path = build_engine(fake_bundle, precision, 2, 4, 16, workspace_mb=512, strongly_typed=strong)
    fake = gpu.trt.fake
    assert path == fake_bundle / f"model_{precision}.engine" and not fake.messages, fake.messages
    assert fake.network_flags == [network_flags] and fake.parsed == [VARIANTS[precision]]
    (build,) = fake.builds
    assert set(build["flags"]) == flags and build["strongly_typed"] == (version.startswith("11") or bool(strong))
    assert build["profile"] == [[2, 64, 48, 3], [4, 64, 48, 3], [16, 64, 48, 3]]
    assert build["workspace"] == {"WORKSPACE": 512 << 20}
    weak = bool(flags)
    assert set(build["pinned"]) == (PINNED if weak else set())
    assert set(build["output_types"]) == (PINNED if weak else set())
    meta = load_bundle_meta(fake_bundle)  # verifies every file, the new engine included
    assert meta.engines == {precision: f"model_{precision}.engine"} and meta.sha256[path.name] == sha256_file(path)
    # the logged trtexec line is the same plan: same flags, same named pins
    (line,) = [r.message.split(": ", 1)[1] for r in caplog.records if "with trtexec" in r.message]
    opts = _trtexec(line)
    tx_flags = {f for opt, f in (("--fp16", "FP16"), ("--int8", "INT8")) if opt in opts}
    tx_flags |= {"PREFER_PRECISION_CONSTRAINTS"} if opts.get("--precisionConstraints") == "prefer" else set()
    assert tx_flags == flags and "--noTF32" in opts
    assert _named_pins(opts, fake.layers) == {n for n in build["pinned"] if not is_parser_helper(n)}


def test_a_timing_cache_of_another_tensorrt_version_is_rebuilt(fake_bundle, monkeypatch, caplog):
    """Suspected 8: create_timing_cache returned None and set_timing_cache(None) raised TypeError."""
    old = install_fake_gpu(monkeypatch, "10.13.3")
    build_engine(fake_bundle, "fp16")
    old_cache = (fake_bundle / "timing.cache").read_bytes()
    assert json.loads(old_cache.split(b"\n", 1)[1])["version"] == "10.13.3"
    new = install_fake_gpu(monkeypatch, "11.1.0")
    build_engine(fake_bundle, "fp16")
    assert any("another TensorRT version or device" in r.message for r in caplog.records)
    assert json.loads((fake_bundle / "timing.cache").read_bytes().split(b"\n", 1)[1])["version"] == "11.1.0"
    # the same version reuses it (entries accumulate); another device starts a new one
    build_engine(fake_bundle, "fp16")
    assert json.loads((fake_bundle / "timing.cache").read_bytes().split(b"\n", 1)[1])["entries"] == \
        2 * len(new.trt.fake.layers)
    new.trt.fake.device_name = "NVIDIA L4"
    build_engine(fake_bundle, "fp16")
    doc = json.loads((fake_bundle / "timing.cache").read_bytes().split(b"\n", 1)[1])
    assert (doc["device"], doc["entries"]) == ("NVIDIA L4", len(new.trt.fake.layers))
    assert old.trt is not new.trt


def test_trtexec_line_needs_no_tensorrt(fake_bundle):
    line = trtexec_line(fake_bundle, "int8", 10, 1, 8, 32)
    assert line.startswith("trtexec --onnx=model_int8.onnx --int8 --fp16 --precisionConstraints=prefer ")
    assert "'--layerPrecisions=/Transpose*:fp32," in line  # quoted: the shell must not expand the wildcards
    with pytest.raises(CdoError, match="strongly typed networks only"):
        trtexec_line(fake_bundle, "fp16", 11, strongly_typed=False)


def test_parser_errors_are_reported_and_nothing_is_written(fake_bundle, monkeypatch, caplog):
    gpu = install_fake_gpu(monkeypatch, "11.1.0")
    gpu.trt.fake.parse_errors = ["In node 0 (importResize): UNSUPPORTED_NODE: antialias",
                                 "In node 1 (importResize): UNSUPPORTED_NODE: antialias"]
    with pytest.raises(CdoError, match=r"cannot parse .*model\.onnx: In node 0 .*UNSUPPORTED_NODE.*\(\+1 more"):
        build_engine(fake_bundle, "fp32")
    assert sum("TensorRT ONNX parser" in r.message for r in caplog.records) == 2
    assert not list(fake_bundle.glob("*.engine")) and load_bundle_meta(fake_bundle).engines == {}


@pytest.mark.skipif(module_available("tensorrt"), reason="TensorRT is installed here")
def test_missing_tensorrt_is_a_cdo_error_naming_the_package(fake_bundle):
    with pytest.raises(CdoError, match=r"pip install 'cdo\[tensorrt-cu13\]'"):
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


def test_an_int8_engine_from_the_cpu_uint8_variant_is_refused_before_tensorrt_loads(fake_bundle):
    meta = load_bundle_meta(fake_bundle)
    meta.int8_check = {"settings": {"activations": "uint8 asymmetric"}}
    meta.save(fake_bundle)
    with pytest.raises(CdoError, match="--int8-activations int8"):
        build_engine(fake_bundle, "int8")
