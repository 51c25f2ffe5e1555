"""Runtime backends: ONNX Runtime, native TensorRT and PyTorch AOTInductor, one registry.

Example:
    >>> from cdo_deploy.backends import BACKENDS, available_backends
    >>> BACKENDS.list()
    ['onnxruntime', 'tensorrt', 'torch']
    >>> "onnxruntime" in available_backends()
    True
"""

from __future__ import annotations

from pathlib import Path

from .base import BACKENDS, Backend, BackendOutput
from .onnxruntime import OnnxRuntimeBackend
from .tensorrt import TensorRTBackend
from .torch_aoti import TorchAotiBackend

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendOutput",
    "OnnxRuntimeBackend",
    "TensorRTBackend",
    "TorchAotiBackend",
    "available_backends",
    "create_backend",
]


def available_backends() -> tuple[str, ...]:
    """Names of the registered backends that can run on this machine."""
    return tuple(name for name in BACKENDS if BACKENDS.get(name).availability() is None)


def create_backend(name: str, model_path: str | Path, device: str = "auto", max_batch: int = 32) -> Backend:
    """Create and load a backend.

    Raises:
        CdoError: unknown or unavailable backend, unreadable model.
    """
    return BACKENDS.get(name)(model_path, device=device, max_batch=max_batch).load()
