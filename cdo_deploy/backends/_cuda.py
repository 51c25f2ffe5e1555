"""cuda-bindings helpers for the TensorRT backend: status checks, pinned/device buffers, driver hints.

cuda-bindings (``from cuda.bindings import runtime``) returns ``(cudaError_t, *values)`` from
every call; :func:`check_cuda` turns a failed status into a :class:`CudaError`.

Example:
    >>> from cdo_deploy.backends._cuda import cuda_version
    >>> cuda_version(12040)
    '12.4'
"""

from __future__ import annotations

import ctypes
import logging
from typing import Any

import numpy as np

from ..errors import CdoError

__all__ = ["INSTALL", "CudaError", "Buffer", "check_cuda", "cudart", "cuda_version", "driver_hint"]

log = logging.getLogger(__name__)

INSTALL = ("pip install 'cdo[tensorrt-cu13]' for a CUDA 13 driver or 'cdo[tensorrt-cu12]' for a CUDA 12 driver "
           "(TensorRT >= 10.1 and the matching cuda-bindings)")


class CudaError(CdoError):
    """A CUDA runtime call returned an error status."""


def cudart() -> Any:
    """``cuda.bindings.runtime``, or a :class:`CdoError` saying what to install."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        raise CdoError(f"cuda-bindings is not installed ({INSTALL}); it provides cuda.bindings.runtime") from None
    return runtime


def check_cuda(result: Any, what: str) -> Any:
    """Check a cuda-bindings call's status and unwrap its values.

    cuda-bindings returns ``(cudaError_t, *values)``.

    Args:
        result: what the call returned.
        what: call name for the message.

    Returns:
        ``None``, the single value, or a tuple of values.

    Raises:
        CudaError: the status is not ``cudaSuccess``.
    """
    rt = cudart()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != rt.cudaError_t.cudaSuccess:
        _, msg = rt.cudaGetErrorString(err)
        text = msg.decode() if isinstance(msg, bytes) else str(msg)
        raise CudaError(f"{what} failed: {getattr(err, 'name', err)} ({text})")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def cuda_version(v: int) -> str:
    """CUDA's ``1000 * major + 10 * minor`` as ``'major.minor'``."""
    return f"{v // 1000}.{v % 1000 // 10}"


def driver_hint(rt: Any) -> str:
    """Why CUDA is unusable, from the driver and runtime versions ('' when they match).

    A CUDA-12 driver cannot run cuda-bindings 13 (``cudaErrorInsufficientDriver``): pip picks the
    newest cuda-bindings unless an extra ties it to the driver.
    """
    err_d, drv = rt.cudaDriverGetVersion()
    err_r, run = rt.cudaRuntimeGetVersion()
    ok = rt.cudaError_t.cudaSuccess
    if err_d != ok or not drv:
        return "; no NVIDIA driver found (cudaDriverGetVersion = 0): install the driver, check nvidia-smi"
    if err_r != ok or not run or drv // 1000 >= run // 1000:
        return ""
    try:
        from cuda import bindings

        pkg = f"cuda-bindings {bindings.__version__}"
    except (ImportError, AttributeError):
        pkg = "cuda-bindings"
    return (f"; the NVIDIA driver supports CUDA {cuda_version(drv)} but {pkg} is built for CUDA "
            f"{cuda_version(run)}: pip install 'cdo[tensorrt-cu{drv // 1000}]' (TensorRT and cuda-bindings "
            f"for CUDA {drv // 1000}), or update the driver")


class Buffer:
    """A pinned host array and its device twin, sized for the largest batch.

    Args:
        name: tensor name.
        shape: ``(max_batch, ...)``.
        dtype: element type.
    """

    def __init__(self, name: str, shape: tuple[int, ...], dtype: Any) -> None:
        rt = cudart()
        self.name, self.dtype = name, np.dtype(dtype)
        self.host_ptr: Any = None
        self.device_ptr: Any = None
        self.item_bytes = int(np.prod(shape[1:])) * self.dtype.itemsize
        self.nbytes = self.item_bytes * shape[0]
        self.host_ptr = check_cuda(rt.cudaMallocHost(self.nbytes), "cudaMallocHost")
        raw = (ctypes.c_uint8 * self.nbytes).from_address(int(self.host_ptr))
        self.host = np.frombuffer(memoryview(raw), dtype=self.dtype).reshape(shape)
        try:
            self.device_ptr = check_cuda(rt.cudaMalloc(self.nbytes), "cudaMalloc")
        except CudaError:
            self.free()
            raise

    def free(self) -> None:
        rt = cudart()
        if self.device_ptr is not None:
            check_cuda(rt.cudaFree(self.device_ptr), "cudaFree")
            self.device_ptr = None
        if self.host_ptr is not None:
            self.host = np.empty(0, self.dtype)
            check_cuda(rt.cudaFreeHost(self.host_ptr), "cudaFreeHost")
            self.host_ptr = None
