"""ONNX Runtime backend: runs ``model*.onnx`` of a bundle.

Execution providers by ``device``:
    ``auto``           every available one of TensorRT, CUDA, CPU, in that order
    ``cpu``            CPU only
    ``cuda[:N]``       CUDA on GPU N, CPU fallback
    ``tensorrt[:N]``   TensorRT EP on GPU N (engine cache in ``$CDO_TRT_CACHE`` or
                       ``~/.cache/cdo/ort-trt``), then CUDA, then CPU

``set_options(threads=N)`` fixes the intra-op thread count and turns off the
idle spinning of those threads (``session.intra_op.allow_spinning = 0``): a
runtime that shares the CPU with pipeline stages or another runtime should not
burn it while waiting.

Example:
    >>> from cdo_deploy.backends import create_backend
    >>> be = create_backend("onnxruntime", "bundle/model.onnx", device="cpu")  # doctest: +SKIP
    >>> be.infer(images).score                                                 # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..bundle import INPUT_NAME, OUTPUT_NAMES
from ..errors import CdoError
from .base import BACKENDS, Backend

__all__ = ["OnnxRuntimeBackend", "providers_for"]

log = logging.getLogger(__name__)

_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def _split_device(device: str) -> tuple[str, int]:
    kind, _, idx = device.partition(":")
    try:
        return kind, int(idx or 0)
    except ValueError:
        raise CdoError(f"bad device {device!r} (use auto, cpu, cuda[:N] or tensorrt[:N])") from None


def providers_for(device: str, available: list[str]) -> list[Any]:
    """ONNX Runtime provider list for a device string.

    Raises:
        CdoError: the requested provider is not in ``available``.
    """
    kind, idx = _split_device(device)
    if kind == "auto":
        return [p for p in _ORDER if p in available]
    if kind == "cpu":
        return ["CPUExecutionProvider"]
    wanted = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}.get(kind)
    if wanted is None:
        raise CdoError(f"bad device {device!r} for onnxruntime (use auto, cpu, cuda[:N] or tensorrt[:N])")
    if wanted not in available:
        raise CdoError(
            f"onnxruntime has no {wanted} here (available: {', '.join(available)}); "
            "install onnxruntime-gpu matching your CUDA, or use --device cpu"
        )
    out: list[Any] = []
    if kind == "tensorrt":
        cache = os.environ.get("CDO_TRT_CACHE") or str(Path.home() / ".cache" / "cdo" / "ort-trt")
        Path(cache).mkdir(parents=True, exist_ok=True)
        out.append((wanted, {"device_id": idx, "trt_engine_cache_enable": True,
                             "trt_engine_cache_path": cache, "trt_fp16_enable": True}))
    if "CUDAExecutionProvider" in available:
        out.append(("CUDAExecutionProvider", {"device_id": idx}))
    out.append("CPUExecutionProvider")
    return out


@BACKENDS.register("onnxruntime")
class OnnxRuntimeBackend(Backend):
    """A bundle ONNX file in an ``onnxruntime.InferenceSession``."""

    name = "onnxruntime"
    install_hint = "pip install 'cdo[deploy]' (onnxruntime, or onnxruntime-gpu for CUDA/TensorRT)"

    @classmethod
    def availability(cls) -> str | None:
        return cls._module_missing("onnxruntime", cls.install_hint)

    def _load(self) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        if self.threads:
            opts.intra_op_num_threads = self.threads
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = providers_for(self.device, ort.get_available_providers())
        try:
            self._sess = ort.InferenceSession(str(self.model_path), sess_options=opts, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types
            raise CdoError(f"onnxruntime cannot load {self.model_path}: {e}") from None
        inputs = {i.name: i for i in self._sess.get_inputs()}
        self._check_graph_io(list(inputs), [o.name for o in self._sess.get_outputs()])
        shape = inputs[INPUT_NAME].shape
        if isinstance(shape[1], int) and isinstance(shape[2], int):
            self.input_hw = (shape[1], shape[2])
        self.device_label = ",".join(p.replace("ExecutionProvider", "") for p in self._sess.get_providers())

    def _infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        maps, scores = self._sess.run(list(OUTPUT_NAMES), {INPUT_NAME: images})
        return maps, scores

    def _close(self) -> None:
        self._sess = None
