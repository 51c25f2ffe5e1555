"""OpenVINO backend specifics (the shared contract is test_backend_conformance.py): devices, settings, errors.

Real OpenVINO sessions on the tiny brightness bundle; GPU/NPU tests skip with the
reason where OpenVINO reports no such device.
"""

from __future__ import annotations

import numpy as np
import pytest

from cdo_deploy.backends import BACKENDS, create_backend
from cdo_deploy.errors import CdoError

pytestmark = pytest.mark.skipif(BACKENDS.get("openvino").availability() is not None,
                                reason=str(BACKENDS.get("openvino").availability()))


def _devices() -> dict[str, str]:
    from cdo_deploy.backends import openvino_devices

    return openvino_devices()


def test_devices_include_the_cpu_and_unknown_devices_fail_with_the_list(tiny_bundle):
    devices = _devices()
    assert "CPU" in devices and devices["CPU"]
    with pytest.raises(CdoError, match="bad device 'cuda:0' for openvino"):
        create_backend("openvino", tiny_bundle / "model.onnx", device="cuda:0")
    if not any(d.startswith("NPU") for d in devices):
        with pytest.raises(CdoError, match=r"reports no NPU device here \(it reports: .*CPU"):
            create_backend("openvino", tiny_bundle / "model.onnx", device="npu")


@pytest.mark.parametrize("kind", ["gpu", "npu"])
def test_intel_gpu_and_npu_match_the_cpu(kind, tiny_bundle, tiny, part):
    if not any(d.startswith(kind.upper()) for d in _devices()):
        pytest.skip(f"OpenVINO reports no {kind.upper()} here (devices: {', '.join(_devices())}); "
                    "needs Intel hardware and its driver")
    from cdo_deploy.preprocess import to_model_input

    x = np.stack([to_model_input(part(i % 2 == 1, seed=i), tiny.size, tiny.size) for i in range(3)])
    with create_backend("openvino", tiny_bundle / "model.onnx", device=kind) as be:
        out = be.infer(x)
    np.testing.assert_allclose(out.anomaly_map, tiny.reference(x)[0], atol=1e-3)


def test_threads_hint_and_fp32_precision_reach_the_compiled_model(tiny_bundle):
    be = create_backend("openvino", tiny_bundle / "model.onnx", device="cpu", threads=1, hint="throughput")
    c = be._compiled
    assert int(c.get_property("INFERENCE_NUM_THREADS")) == 1
    assert str(c.get_property("PERFORMANCE_HINT")).upper().endswith("THROUGHPUT")
    assert "float32" in str(c.get_property("INFERENCE_PRECISION_HINT")).lower()
    assert be.device_label.startswith("CPU") and "OpenVINO" in be.device_label
    be.close()
    default = create_backend("openvino", tiny_bundle / "model.onnx", device="auto")
    assert str(default._compiled.get_property("PERFORMANCE_HINT")).upper().endswith("LATENCY")
    default.close()


def test_onnxruntime_threads_stop_spinning(tiny_bundle):
    be = create_backend("onnxruntime", tiny_bundle / "model.onnx", device="cpu", threads=1)
    opts = be._sess.get_session_options()
    assert opts.intra_op_num_threads == 1
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    be.close()


@pytest.mark.parametrize("threads, hint, match", [(-1, "latency", "threads"), (1, "fast", "hint")])
def test_bad_options_are_user_errors(tiny_bundle, threads, hint, match):
    with pytest.raises(CdoError, match=match):
        create_backend("openvino", tiny_bundle / "model.onnx", threads=threads, hint=hint)


def test_unreadable_and_foreign_models_fail_cleanly(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not an onnx file")
    with pytest.raises(CdoError, match="openvino cannot read"):
        create_backend("openvino", bad)
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "other",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    other = tmp_path / "other.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(other))
    with pytest.raises(CdoError, match="not a cdo bundle graph"):
        create_backend("openvino", other)


def test_an_ir_in_the_bundle_is_preferred_over_the_onnx_file(tiny_bundle, tmp_path, tiny, part):
    """cdo-export --openvino writes IRs under model.json 'openvino'; the backend runs them."""
    import shutil

    import openvino as ov

    from cdo_deploy.bundle import load_bundle_meta
    from cdo_deploy.formats import list_model_files, resolve_model_file
    from cdo_deploy.preprocess import to_model_input

    b = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, b)
    ov.save_model(ov.convert_model(str(b / "model.onnx")), str(b / "model_openvino.xml"), compress_to_fp16=False)
    meta = load_bundle_meta(b)
    meta.openvino = {"fp32": "model_openvino.xml"}
    meta.save(b)
    meta = load_bundle_meta(b)
    files = list_model_files(b, meta, "openvino")
    assert [(f.variant, f.path.name) for f in files] == [("fp32", "model_openvino.xml")]
    assert resolve_model_file(b, meta, "openvino").format == "openvino-ir"
    x = to_model_input(part(True), tiny.size, tiny.size)[None]
    with create_backend("openvino", files[0].path, device="cpu") as be:
        np.testing.assert_allclose(be.infer(x).anomaly_map, tiny.reference(x)[0], atol=1e-5)


def test_auto_rule_int8_on_openvino_everything_else_on_onnxruntime(tmp_path):
    """The documented auto rule (cdo_deploy.formats.auto_order), on real files of a bundle folder."""
    from cdo_deploy.bundle import BundleMeta
    from cdo_deploy.formats import resolve_model_file

    for name in ("model.onnx", "model_int8.onnx"):
        (tmp_path / name).write_bytes(b"x")
    meta = BundleMeta(height=32, width=32, backbone="t", variants={"fp32": "model.onnx", "int8": "model_int8.onnx"})
    both = ("onnxruntime", "openvino")

    def pick(variant, available):
        f = resolve_model_file(tmp_path, meta, "auto", variant, available)
        return f.backend, f.variant

    assert pick(None, both) == ("onnxruntime", "fp32")
    assert pick("int8", both) == ("openvino", "int8")
    assert pick("int8", ("onnxruntime",)) == ("onnxruntime", "int8")


def test_openvino_never_phones_home(tiny_bundle, tmp_path):
    """`import openvino` sends a Google Analytics event; cdo's backend, device list and IR export must not."""
    import subprocess
    import sys

    from tests.netguard import blocked_env

    env, attempts = blocked_env(tmp_path)
    code = (
        "import numpy as np\n"
        "from cdo_deploy.backends import available_backends, create_backend, openvino_devices\n"
        "assert 'openvino' in available_backends() and 'CPU' in openvino_devices()\n"
        f"be = create_backend('openvino', {str(tiny_bundle / 'model.onnx')!r}, device='cpu')\n"
        "be.infer(np.zeros((1, 32, 32, 3), np.uint8))\n"
        "from cdo_deploy.backends.openvino import import_openvino\n"
        f"ov = import_openvino(); ov.save_model(ov.convert_model({str(tiny_bundle / 'model.onnx')!r}), "
        f"{str(tmp_path / 'm.xml')!r})\n"
        "import time; time.sleep(1)  # telemetry is sent from a background process\n"
    )
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert attempts.read_text() == "", attempts.read_text()[:2000]
