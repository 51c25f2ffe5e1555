"""One conformance test over every registered backend (Polygraphy-style contract).

Backends that cannot run here are skipped with their own reason (TensorRT needs
an NVIDIA GPU and the tensorrt + cuda-bindings packages). ONNX Runtime and
OpenVINO run the same ONNX file. The torch backend runs
an AOTInductor package of the tiny graph, compiled here for the CPU (or the GPU
when there is one): that takes about a minute, so its row is slow-marked.
"""

from __future__ import annotations

import numpy as np
import pytest

from cdo_deploy.backends import BACKENDS, create_backend
from cdo_deploy.errors import CdoError


def build_tiny_pt2(path, size: int, max_batch: int = 8) -> None:
    """AOTInductor package of the tiny brightness graph (the torch twin of ``tiny.build_onnx``)."""
    import torch

    class Brightness(torch.nn.Module):
        def forward(self, image: torch.Tensor):
            amap = image.float().mean(3, keepdim=True).permute(0, 3, 1, 2) / 255.0
            return amap, amap.flatten(1).amax(1)

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    example = torch.zeros((2, size, size, 3), dtype=torch.uint8, device=dev)
    ep = torch.export.export(Brightness(), (example,),
                             dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=max_batch)},))
    meta = {"cdo_device": dev, "cdo_height": str(size), "cdo_width": str(size), "cdo_max_batch": str(max_batch),
            "cdo_precision": "fp32"}
    torch._inductor.aoti_compile_and_package(ep, package_path=str(path),
                                             inductor_configs={"aot_inductor.metadata": meta})


@pytest.fixture(scope="module")
def torch_pt2(tmp_path_factory, tiny):
    path = tmp_path_factory.mktemp("aoti") / "model_aoti_fp32.pt2"
    build_tiny_pt2(path, tiny.size)
    return path


@pytest.fixture(scope="module")
def model_files(tiny_bundle, tmp_path_factory, tiny):
    files = {"onnxruntime": tiny_bundle / "model.onnx", "openvino": tiny_bundle / "model.onnx"}
    if BACKENDS.get("tensorrt").availability() is None:
        engine = tmp_path_factory.mktemp("engine") / "model.engine"
        tiny.build_engine(files["onnxruntime"], engine, tiny.size)
        files["tensorrt"] = engine
    return files


def _params():
    out = []
    for name in BACKENDS.list():
        reason = BACKENDS.get(name).availability()
        marks = [pytest.mark.skipif(reason is not None, reason=f"{name}: {reason}")]
        if name == "tensorrt":
            marks += [pytest.mark.tensorrt, pytest.mark.gpu]
        if name == "torch":
            marks += [pytest.mark.slow]  # compiles an AOTInductor package (~1 min on CPU)
        out.append(pytest.param(name, marks=marks, id=name))
    return out


@pytest.mark.parametrize("name", _params())
def test_backend_conformance(name, model_files, tiny, part, request):
    from cdo_deploy.preprocess import to_model_input

    if name == "torch":
        model_files = {**model_files, "torch": request.getfixturevalue("torch_pt2")}
    be = create_backend(name, model_files[name], device="cpu" if name == "onnxruntime" else "auto", max_batch=8)
    assert be.input_hw == (tiny.size, tiny.size) and be.device_label
    imgs = np.stack([to_model_input(part(i % 2 == 1, seed=i), tiny.size, tiny.size) for i in range(5)])
    ref_maps, ref_scores = tiny.reference(imgs)
    for batch in (1, 5, 5, 5, 1):  # repeats exercise warm-up, CUDA-graph capture and replay
        out = be.infer(imgs[:batch])
        assert out.anomaly_map.shape == (batch, 1, tiny.size, tiny.size) and out.anomaly_map.dtype == np.float32
        assert out.score.shape == (batch,) and out.ms > 0
        np.testing.assert_allclose(out.anomaly_map, ref_maps[:batch], atol=1e-5)
        np.testing.assert_allclose(out.score, ref_scores[:batch], atol=1e-5)
    with pytest.raises(CdoError, match="uint8"):
        be.infer(imgs.astype(np.float32))
    with pytest.raises(CdoError, match="NHWC"):
        be.infer(imgs[..., :2])
    with pytest.raises(CdoError, match="expects 32x32"):
        be.infer(np.zeros((1, 16, 16, 3), np.uint8))
    with pytest.raises(CdoError, match="max_batch"):
        be.infer(np.zeros((9, tiny.size, tiny.size, 3), np.uint8))
    be.close()
    be.close()
    with pytest.raises(CdoError, match="load"):
        be.infer(imgs[:1])
    with pytest.raises(CdoError, match="closed"):
        be.load()


@pytest.mark.parametrize("name", BACKENDS.list(), ids=[f"be-{n}" for n in BACKENDS.list()])
def test_availability_is_none_or_a_reason_and_missing_files_fail_cleanly(name, tmp_path):
    cls = BACKENDS.get(name)
    reason = cls.availability()
    assert reason is None or ("install" in reason or "device" in reason)
    with pytest.raises(CdoError) as e:
        create_backend(name, tmp_path / "nope.bin")
    assert ("not found" in str(e.value)) if reason is None else ("not available" in str(e.value))
