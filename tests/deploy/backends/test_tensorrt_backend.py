"""TensorRT backend pieces that can be checked without a GPU, plus GPU-only checks.

* ``check_cuda`` against the real cuda-bindings enums (installed here with torch;
  skipped otherwise). The backend's behaviour on a GPU is tested against a fake
  that mirrors TensorRT and cuda-bindings: ``test_tensorrt_fake_gpu.py``.
* A mypy type check of backends/tensorrt.py against the ``tensorrt-stubs``
  package, so API names (set_input_shape, set_tensor_address, execute_async_v3,
  get_tensor_profile_shape...) are checked without TensorRT. The stubs package
  (``pip install --no-deps tensorrt-stubs``; its dependencies cannot be built
  here) installs a ``tensorrt/`` folder without ``py.typed`` -- which makes
  ``import tensorrt`` succeed as an empty namespace package, hence the
  ``spec.origin`` check in ``TensorRTBackend.availability`` -- and has a few
  syntax slips (a parameter named ``in``), so the test copies and patches it.
* CUDA-graph replay on a real engine: needs TensorRT and a GPU (skip-marked).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from tests.trt_stubs import assert_mypy_catches

from cdo_deploy.backends import BACKENDS, create_backend
from cdo_deploy.errors import CdoError

ROOT = Path(__file__).resolve().parents[3]
TRT_REASON = BACKENDS.get("tensorrt").availability()
needs_trt = pytest.mark.skipif(TRT_REASON is not None, reason=f"TensorRT cannot run here: {TRT_REASON}")


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@pytest.mark.skipif(not _has("cuda.bindings"), reason="cuda-python (cuda-bindings) not installed")
def test_check_cuda_unwraps_values_and_raises_on_error_status():
    from cuda.bindings import runtime as cudart

    from cdo_deploy.backends.tensorrt import CudaError, check_cuda

    ok = cudart.cudaError_t.cudaSuccess
    assert check_cuda((ok,), "x") is None
    assert check_cuda((ok, 7), "x") == 7
    assert check_cuda((ok, 1, 2), "x") == (1, 2)
    oom = cudart.cudaError_t.cudaErrorMemoryAllocation
    with pytest.raises(CudaError, match=r"cudaMalloc failed: cudaErrorMemoryAllocation \(out of memory\)"):
        check_cuda((oom, None), "cudaMalloc")
    assert issubclass(CudaError, CdoError)


@pytest.mark.skipif(TRT_REASON is None, reason="TensorRT is available here")
def test_unavailable_tensorrt_is_a_one_line_cdo_error_naming_what_to_install(tmp_path):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"x")
    with pytest.raises(CdoError, match="tensorrt"):
        create_backend("tensorrt", engine)


@pytest.mark.skipif(not _has("mypy"), reason="mypy not installed (pip install mypy)")
def test_tensorrt_backend_type_checks_against_tensorrt_stubs(tmp_path):
    assert_mypy_catches(tmp_path, "cdo_deploy/backends/tensorrt.py", "execute_async_v3", "execute_async_v2")


@needs_trt
@pytest.mark.tensorrt
@pytest.mark.gpu
def test_cuda_graphs_are_captured_per_batch_size_and_replayed(tiny_bundle, tmp_path, tiny):
    engine = tmp_path / "model.engine"
    tiny.build_engine(tiny_bundle / "model.onnx", engine, tiny.size)
    be = create_backend("tensorrt", engine, max_batch=8)
    imgs = np.random.default_rng(0).integers(0, 256, (4, tiny.size, tiny.size, 3), dtype=np.uint8)
    outs = [be.infer(imgs).score for _ in range(3)] + [be.infer(imgs[:2]).score for _ in range(3)]
    assert {b for b, slot in be._slots.items() if slot.graph or slot.refused} == {2, 4}
    np.testing.assert_allclose(outs[0], outs[2], atol=1e-6)
    np.testing.assert_allclose(outs[3], outs[5], atol=1e-6)
    np.testing.assert_allclose(outs[0], tiny.reference(imgs)[1], atol=1e-5)
    be.close()


def test_tensorrt_extras_pair_tensorrt_and_cuda_bindings_of_one_cuda_major():
    """Suspected 6: ``tensorrt>=10`` + ``cuda-python>=12.9`` let pip pair a CUDA-12 driver with cuda-bindings 13."""
    import configparser

    from packaging.requirements import Requirement

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    extras = cfg["options.extras_require"]
    for cuda in (12, 13):
        lines = [line for line in extras[f"tensorrt-cu{cuda}"].splitlines() if line.strip()]
        reqs = {r.name: r for r in map(Requirement, lines)}
        assert set(reqs) == {f"tensorrt-cu{cuda}", "cuda-bindings"}, reqs
        bindings = reqs["cuda-bindings"].specifier
        assert bindings.contains(f"{cuda}.9.0") and not bindings.contains(f"{cuda + 1}.0.0") \
            and not bindings.contains(f"{cuda - 1}.9.0")
