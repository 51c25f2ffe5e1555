"""Backend base class and registry (Polygraphy's runner split).

The public ``load`` / ``infer`` / ``close`` check state and inputs and time
the call; a backend implements only ``_load``, ``_infer`` and ``_close``.
Heavy libraries are imported inside ``_load`` so that listing backends costs
nothing, and ``availability()`` says, without loading a model, whether the
backend can run here and if not what to install.

Example:
    >>> from cdo_deploy.backends import BACKENDS
    >>> "onnxruntime" in BACKENDS
    True
"""

from __future__ import annotations

import abc
import importlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..bundle import INPUT_NAME, OUTPUT_NAMES
from ..errors import CdoError
from ..registry import Registry

__all__ = ["BACKENDS", "HINTS", "Backend", "BackendOutput"]

log = logging.getLogger(__name__)

#: runtime backends by name; values are ``Backend`` subclasses.
BACKENDS: Registry[type["Backend"]] = Registry("backend")

#: performance hints (``Backend.set_options``): ``latency`` = one request at a time, as a line
#: inspecting part by part; ``throughput`` = the runtime may run requests in parallel streams.
HINTS = ("latency", "throughput")


@dataclass
class BackendOutput:
    """Outputs of one batch.

    Attributes:
        anomaly_map: (B, 1, H, W) float32.
        score: (B,) float32.
        ms: wall time of the call (upload, compute, download) in ms.
    """

    anomaly_map: np.ndarray
    score: np.ndarray
    ms: float


class Backend(abc.ABC):
    """One loaded model on one device.

    Args:
        model_path: the model file (``.onnx`` or TensorRT engine).
        device: ``auto``, ``cpu``, ``cuda[:N]``; ONNX Runtime also takes
            ``tensorrt[:N]`` (its TensorRT execution provider).
        max_batch: largest batch the caller will send (sizes buffers, profiles).
    """

    name: ClassVar[str] = ""
    #: short description of what must be installed, for error messages.
    install_hint: ClassVar[str] = ""

    def __init__(self, model_path: str | Path, device: str = "auto", max_batch: int = 32) -> None:
        self.model_path = Path(model_path)
        self.device = device
        self.max_batch = int(max_batch)
        self.input_hw: tuple[int, int] | None = None
        self.device_label = ""
        self.threads = 0
        self.hint = "latency"
        self._loaded = False
        self._closed = False

    @classmethod
    @abc.abstractmethod
    def availability(cls) -> str | None:
        """``None`` if usable on this machine, else the reason (with what to install)."""

    @abc.abstractmethod
    def _load(self) -> None:
        """Create the session/engine; set ``input_hw`` and ``device_label``."""

    @abc.abstractmethod
    def _infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run (B, H, W, 3) uint8 -> ((B, 1, H, W) float32, (B,) float32)."""

    def _close(self) -> None:
        """Release resources (default: nothing)."""

    @staticmethod
    def _module_missing(module: str, hint: str) -> str | None:
        """``availability()`` helper: ``None`` when ``module`` imports, else the reason with ``hint``."""
        try:
            importlib.import_module(module)
        except ImportError:
            return f"{module} is not installed ({hint})"
        return None

    def _check_graph_io(self, inputs: list[str], outputs: list[str]) -> None:
        """``_load()`` helper: the model must be a cdo bundle graph (``image`` -> ``anomaly_map``, ``score``).

        Raises:
            CdoError: naming what the model has instead.
        """
        if INPUT_NAME not in inputs or any(n not in outputs for n in OUTPUT_NAMES):
            raise CdoError(
                f"{self.model_path}: not a cdo bundle graph (inputs {inputs}, outputs {outputs}; "
                f"expected {INPUT_NAME!r} -> {', '.join(OUTPUT_NAMES)})"
            )

    def set_options(self, threads: int = 0, hint: str = "latency") -> "Backend":
        """CPU runtime settings, applied by the next :meth:`load`.

        Args:
            threads: CPU threads for inference; 0 = the runtime's default (one per core).
                ONNX Runtime also stops its idle threads from spinning when a count is
                given, so that runtimes or pipeline stages sharing the CPU do not steal
                from each other. GPU backends ignore it.
            hint: one of :data:`HINTS`; OpenVINO's ``PERFORMANCE_HINT``, ignored elsewhere.

        Raises:
            CdoError: a negative thread count or an unknown hint, or the backend is loaded.
        """
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise CdoError(f"threads must be an integer >= 0 (0 = the runtime's default), got {threads!r}")
        if hint not in HINTS:
            raise CdoError(f"unknown performance hint {hint!r} (use {' or '.join(HINTS)})")
        if self._loaded:
            raise CdoError(f"{self.name}: set_options() must come before load()")
        self.threads, self.hint = threads, hint
        return self

    def load(self) -> "Backend":
        """Load the model; idempotent.

        Raises:
            CdoError: backend unavailable or the model file missing/unreadable.
        """
        if self._closed:
            raise CdoError(f"{self.name}: backend was closed; create a new one")
        if self._loaded:
            return self
        reason = self.availability()
        if reason is not None:
            raise CdoError(f"backend {self.name!r} is not available: {reason}")
        if not self.model_path.is_file():
            raise CdoError(f"{self.name}: model file not found: {self.model_path}")
        t0 = time.perf_counter()
        try:
            self._load()
        except BaseException:
            try:
                self._close()  # release what a half-finished load allocated
            except Exception:  # noqa: BLE001 - the load error is the one to report
                log.debug("cleanup after failed load of %s raised", self.model_path, exc_info=True)
            raise
        self._loaded = True
        log.info("%s: loaded %s on %s in %.0f ms", self.name, self.model_path.name,
                 self.device_label or self.device, (time.perf_counter() - t0) * 1e3)
        return self

    def infer(self, images: np.ndarray) -> BackendOutput:
        """Run one batch.

        Args:
            images: (B, H, W, 3) uint8 RGB at model resolution, 1 <= B <= max_batch.

        Returns:
            ``BackendOutput`` with (B, 1, H, W) maps, (B,) scores and the time in ms.

        Raises:
            CdoError: not loaded, or the batch has the wrong dtype/shape.
        """
        if not self._loaded or self._closed:
            raise CdoError(f"{self.name}: call load() before infer() (and not after close())")
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
            raise CdoError(f"{self.name}: input {INPUT_NAME!r} must be a uint8 numpy array, "
                           f"got {getattr(images, 'dtype', type(images).__name__)}")
        if images.ndim != 4 or images.shape[3] != 3 or images.shape[0] < 1:
            raise CdoError(f"{self.name}: input {INPUT_NAME!r} must be (B, H, W, 3) NHWC, got {images.shape}")
        if self.input_hw is not None and tuple(images.shape[1:3]) != self.input_hw:
            raise CdoError(f"{self.name}: input is {images.shape[1]}x{images.shape[2]}, "
                           f"model expects {self.input_hw[0]}x{self.input_hw[1]} (pre-process first)")
        if images.shape[0] > self.max_batch:
            raise CdoError(f"{self.name}: batch {images.shape[0]} exceeds max_batch {self.max_batch}")
        images = np.ascontiguousarray(images)
        t0 = time.perf_counter()
        maps, scores = self._infer(images)
        ms = (time.perf_counter() - t0) * 1e3
        return BackendOutput(np.asarray(maps, np.float32), np.asarray(scores, np.float32).reshape(-1), ms)

    def close(self) -> None:
        """Release resources; safe to call twice."""
        if self._loaded and not self._closed:
            self._close()
        self._closed = True

    def __enter__(self) -> "Backend":
        return self.load()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.model_path)!r}, device={self.device!r})"
