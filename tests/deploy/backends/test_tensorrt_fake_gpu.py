"""The TensorRT backend on a fake GPU that mirrors TensorRT 10.x/11.x and cuda-bindings (``tests/fakes``).

TensorRT cannot be installed here; the fake reproduces the semantics the backend depends on (see
``tests/fakes/__init__.py``): per-thread current device, stream capture, a CUDA graph tied to the
shape at capture, the optimisation profile's [min, max]. Each test names the defect it pins.
"""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest

from cdo_deploy.backends import BACKENDS, create_backend
from cdo_deploy.backends.tensorrt import CudaError
from cdo_deploy.errors import CdoError
from tests.fakes import install_fake_gpu, write_engine

VERSIONS = ("10.13.3", "11.1.0")


def _images(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.fixture(params=VERSIONS)
def gpu(request, monkeypatch):
    return install_fake_gpu(monkeypatch, request.param, devices=2)


def test_each_batch_size_replays_its_own_graph_on_its_own_context(gpu, tmp_path, tiny):
    """Defect 1: graphs of several batch sizes shared one context, whose shape the next batch changed."""
    engine = write_engine(tmp_path / "m.engine", gpu.trt, (tiny.size, tiny.size), (1, 4, 8))
    be = create_backend("tensorrt", engine, max_batch=8)
    imgs = _images(8, tiny.size)
    ref_maps, ref_scores = tiny.reference(imgs)
    for b in (4, 4, 4, 2, 2, 2, 4, 3, 3, 3, 4, 2, 8, 8, 8, 1, 4):  # what micro-batching produces
        out = be.infer(imgs[:b])
        np.testing.assert_allclose(out.score, ref_scores[:b], atol=1e-6)
        np.testing.assert_allclose(out.anomaly_map, ref_maps[:b], atol=1e-6)
    fake = gpu.trt.fake
    assert fake.replays and all(r["captured"] == r["now"] for r in fake.replays), fake.replays
    assert {r["captured"] for r in fake.replays} == {2, 3, 4, 8}  # batch 1 ran once: never captured
    assert len(fake.contexts) == 5 and not fake.messages
    be.close()
    assert gpu.cuda.live_allocations() == 0


def test_inference_thread_sets_the_engine_device(gpu, tmp_path, tiny):
    """Defect 2: cudaSetDevice ran on the loading thread only; kernels went to the wrong GPU."""
    engine = write_engine(tmp_path / "m.engine", gpu.trt, (tiny.size, tiny.size), (1, 2, 4))
    be = create_backend("tensorrt", engine, device="cuda:1", max_batch=4)
    imgs = _images(3, tiny.size)
    results: list = []

    def worker() -> None:
        try:
            results.append(be.infer(imgs).score)
        except CdoError as e:
            results.append(e)

    t = threading.Thread(target=worker, name="cdo-infer")
    t.start()
    t.join(10)
    assert not isinstance(results[0], Exception), results[0]
    np.testing.assert_allclose(results[0], tiny.reference(imgs)[1], atol=1e-6)
    launches = [x for x in gpu.cuda.launches if x["thread"] == "cdo-infer"]
    assert launches and all(x["current_device"] == x["stream_device"] == 1 for x in launches)
    be.close()


def test_batches_below_the_profile_minimum_are_padded(gpu, tmp_path, tiny):
    """Defect 3: only the profile maximum was read; an engine built with min batch 4 refused batch 1."""
    engine = write_engine(tmp_path / "m.engine", gpu.trt, (tiny.size, tiny.size), (4, 8, 16))
    be = create_backend("tensorrt", engine, max_batch=32)
    assert (be.min_batch, be.max_batch) == (4, 16)
    imgs = _images(6, tiny.size)
    for b in (1, 1, 1, 3, 6, 6, 6):
        out = be.infer(imgs[:b])
        assert out.score.shape == (b,) and out.anomaly_map.shape == (b, 1, tiny.size, tiny.size)
        np.testing.assert_allclose(out.score, tiny.reference(imgs[:b])[1], atol=1e-6)
    assert {e["batch"] for e in gpu.trt.fake.executions} == {4, 6} and not gpu.trt.fake.messages
    be.close()
    # an engine whose minimum exceeds the caller's max_batch still runs (buffers sized for the minimum)
    with create_backend("tensorrt", engine, max_batch=2) as small:
        np.testing.assert_allclose(small.infer(imgs[:2]).score, tiny.reference(imgs[:2])[1], atol=1e-6)


def test_a_refused_capture_falls_back_to_plain_enqueue_and_leaves_no_capture(gpu, tmp_path, tiny):
    """Suspected 7: a failing cudaStreamBeginCapture raised out of inference."""
    engine = write_engine(tmp_path / "m.engine", gpu.trt, (tiny.size, tiny.size), (1, 2, 4))
    be = create_backend("tensorrt", engine, max_batch=4)
    imgs = _images(2, tiny.size)
    be.infer(imgs)  # warm-up: plain enqueue
    gpu.cuda.fail_next["cudaStreamBeginCapture"] = gpu.cudart.cudaError_t.cudaErrorStreamCaptureUnsupported
    for _ in range(3):
        np.testing.assert_allclose(be.infer(imgs).score, tiny.reference(imgs)[1], atol=1e-6)
    assert not gpu.trt.fake.replays and not gpu.cuda.capturing(be._stream)
    be.close()


def test_an_exception_inside_the_capture_ends_it(gpu, tmp_path, tiny, monkeypatch):
    """Suspected 7: an exception while capturing left the stream in capture mode."""
    engine = write_engine(tmp_path / "m.engine", gpu.trt, (tiny.size, tiny.size), (1, 2, 4))
    be = create_backend("tensorrt", engine, max_batch=4)
    imgs = _images(2, tiny.size)
    be.infer(imgs)
    real = gpu.cudart.cudaMemcpyAsync
    calls = {"n": 0}

    def flaky(*args):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("driver hiccup inside the capture")
        return real(*args)

    monkeypatch.setattr(gpu.cudart, "cudaMemcpyAsync", flaky)
    out = be.infer(imgs)
    assert not gpu.cuda.capturing(be._stream)
    np.testing.assert_allclose(out.score, tiny.reference(imgs)[1], atol=1e-6)
    be.close()


def test_an_allocation_failure_at_load_is_a_cuda_error_and_other_backends_keep_running(gpu, tmp_path, tiny):
    engine = write_engine(tmp_path / "m.engine", gpu.trt, (tiny.size, tiny.size), (1, 2, 4))
    be = create_backend("tensorrt", engine, max_batch=4)
    imgs = _images(1, tiny.size)
    gpu.cuda.fail_next["cudaMalloc"] = gpu.cudart.cudaError_t.cudaErrorMemoryAllocation
    with pytest.raises(CudaError, match=r"cudaMalloc\(activations\) failed: cudaErrorMemoryAllocation"):
        create_backend("tensorrt", engine, max_batch=4)
    np.testing.assert_allclose(be.infer(imgs).score, tiny.reference(imgs)[1], atol=1e-6)
    be.close()


def test_an_engine_of_another_tensorrt_version_says_rebuild(monkeypatch, tmp_path, tiny):
    old = install_fake_gpu(monkeypatch, "10.13.3")
    engine = write_engine(tmp_path / "m.engine", old.trt, (tiny.size, tiny.size), (1, 2, 4))
    install_fake_gpu(monkeypatch, "11.1.0")
    with pytest.raises(CdoError, match="cannot deserialize.*rebuild it on this machine"):
        create_backend("tensorrt", engine)


@pytest.mark.parametrize("driver, runtime, needle", [
    (12040, 13000, r"driver supports CUDA 12\.4 but cuda-bindings 13\.0\.0 is built for CUDA 13\.0: "
                   r"pip install 'cdo\[tensorrt-cu12\]'"),
    (0, 13000, "no NVIDIA driver found"),
])
def test_unavailable_reason_names_the_driver_runtime_mismatch(monkeypatch, driver, runtime, needle):
    """Suspected 6: a CUDA-12 driver with cuda-bindings 13 was reported as 'no usable CUDA device' only."""
    install_fake_gpu(monkeypatch, "10.13.3", driver_version=driver, runtime_version=runtime)
    reason = BACKENDS.get("tensorrt").availability()
    assert reason is not None and "cudaErrorInsufficientDriver" in reason
    assert __import__("re").search(needle, reason), reason


def test_build_then_inspect_a_folder_on_gpu_1_with_min_batch_2(gpu, tiny_bundle, tmp_path, demo_images, records):
    """Defects 1-3 together, the way a line runs: cdo-inspect's pipeline infers on its own thread in
    micro-batches of varying size, after a batch-1 warm-up, on the second GPU."""
    from cdo_deploy.engine_build import build_engine
    from cdo_deploy.inspection import InspectConfig, run_inspection

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    build_engine(bundle, "fp32", min_batch=2, opt_batch=2, max_batch=4)
    src, expected = demo_images
    res = run_inspection(InspectConfig(bundle, str(src), out=tmp_path / "out", once=True, backend="tensorrt",
                                       device="cuda:1", max_batch=4, max_wait_ms=50, overlays="none", workers=2))
    got = {r["source"]: r["decision"] for r in records(res.results)}
    assert got == expected and res.summary.errors == 0
    fake = gpu.trt.fake
    assert all(r["captured"] == r["now"] for r in fake.replays)
    assert all(x["current_device"] == x["stream_device"] == 1 for x in gpu.cuda.launches)
    assert {e["thread"] for e in fake.executions} >= {"MainThread", "cdo-infer"}
    assert not [m for m in fake.messages if m[0] == "ERROR"], fake.messages


def test_the_fake_cuda_enums_and_messages_match_the_installed_cuda_bindings():
    pytest.importorskip("cuda.bindings.runtime", reason="cuda-bindings not installed")
    from cuda.bindings import runtime as real

    from tests.fakes import cudart as fake

    for enum_name in ("cudaError_t", "cudaMemcpyKind", "cudaStreamCaptureMode", "cudaStreamCaptureStatus"):
        for member in getattr(fake, enum_name):
            assert int(getattr(getattr(real, enum_name), member.name)) == int(member), (enum_name, member)
    for err, text in fake.ERROR_STRINGS.items():
        assert real.cudaGetErrorString(getattr(real.cudaError_t, err.name))[1] == text
    assert real.cudaStreamNonBlocking == 1
