"""Runtime backends: ONNX Runtime, OpenVINO, native TensorRT and PyTorch AOTInductor, one registry.

Example:
    >>> from cdo_deploy.backends import BACKENDS, available_backends
    >>> BACKENDS.list()
    ['onnxruntime', 'openvino', 'tensorrt', 'torch']
    >>> "onnxruntime" in available_backends()
    True
"""

from __future__ import annotations

from pathlib import Path

from .base import BACKENDS, HINTS, Backend, BackendOutput
from .onnxruntime import OnnxRuntimeBackend
from .openvino import OpenVinoBackend, openvino_devices
from .tensorrt import TensorRTBackend
from .torch_aoti import TorchAotiBackend

__all__ = [
    "BACKENDS",
    "HINTS",
    "Backend",
    "BackendOutput",
    "OnnxRuntimeBackend",
    "OpenVinoBackend",
    "TensorRTBackend",
    "TorchAotiBackend",
    "available_backends",
    "create_backend",
    "openvino_devices",
]


def available_backends() -> tuple[str, ...]:
    """Names of the registered backends that can run on this machine."""
    return tuple(name for name in BACKENDS if BACKENDS.get(name).availability() is None)


def create_backend(name: str, model_path: str | Path, device: str = "auto", max_batch: int = 32,
                   threads: int = 0, hint: str = "latency") -> Backend:
    """Create and load a backend.

    Args:
        name: a registered backend.
        model_path: the model file it runs.
        device: ``auto``, ``cpu``, ``cuda[:N]`` ... (each backend documents its own).
        max_batch: largest batch the caller will send.
        threads: CPU threads for the runtime (0: its default), see :meth:`Backend.set_options`.
        hint: ``latency`` or ``throughput``, see :meth:`Backend.set_options`.

    Raises:
        CdoError: unknown or unavailable backend, bad options, unreadable model.
    """
    backend = BACKENDS.get(name)(model_path, device=device, max_batch=max_batch)
    return backend.set_options(threads=threads, hint=hint).load()
