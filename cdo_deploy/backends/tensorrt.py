"""Native TensorRT backend: runs an engine listed under ``engines`` in ``model.json``.

Uses the TensorRT 10.1+ named-tensor API (``set_input_shape``,
``set_tensor_address``, ``execute_async_v3``) on a non-default CUDA stream and
cuda-bindings for memory and streams (``from cuda.bindings import runtime``;
cuda-bindings 13 removed ``cuda.cudart``). Every CUDA call's status is checked,
and ``cudaSetDevice`` is called on every thread that enqueues (the current
device is per host thread: the inspector loads on the main thread and infers on
``cdo-infer``).

Per batch ``B`` the work is: copy the input from a pinned host buffer to the
device, enqueue, copy both outputs back, synchronise. Batches below the
optimisation profile's minimum are padded with blank images (the padding's
outputs are dropped); ``max_batch`` is capped to the profile's maximum.

**One execution context per batch size.** A CUDA graph is tied to the input
shape and context state at capture (TensorRT developer guide, CUDA Graphs), so
each batch size gets its own context whose shape never changes, and its own
graph: the first run is a plain enqueue (warm-up, flushes TensorRT's deferred
shape work), the second captures, later runs replay with one
``cudaGraphLaunch``. The contexts share one activation-memory block
(``USER_MANAGED`` + ``set_device_memory``: allowed because they never run in
parallel -- one stream, one lock, a synchronise per call) and the pinned/device
I/O buffers sized for the largest batch. Cost on paper: one context (host
state, no device memory) and one graph (a few hundred nodes) per batch size
seen, at most ``max_batch``. The alternatives were worse for the pipeline's
micro-batching, whose batch size changes from call to call: re-capturing on
every change pays a plain enqueue plus capture and instantiation (about a
millisecond for a few hundred nodes) each time; no graphs pays TensorRT's host-
side launch of every kernel on every call, which at batch 1 is most of the
latency. A capture that fails (refused, invalidated, or anything raised while
capturing) always ends the capture and falls back to plain enqueue for that
batch size.

Engines are specific to GPU and TensorRT version: build them on the line PC
with ``cdo-inspect build-engine BUNDLE`` (or the ``trtexec`` line that
``cdo-inspect build-engine BUNDLE --trtexec-line MAJOR`` prints) and list them in
``model.json`` ``engines``.

Example:
    >>> be = create_backend("tensorrt", "bundle/model_fp16.engine", device="cuda:0")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..bundle import INPUT_NAME, OUTPUT_NAMES
from ..errors import CdoError
from ._cuda import INSTALL, Buffer, CudaError, check_cuda, cudart, driver_hint
from .base import BACKENDS, Backend

if TYPE_CHECKING:
    import tensorrt as trt

__all__ = ["CudaError", "TensorRTBackend", "check_cuda"]

log = logging.getLogger(__name__)


def _installed(module: str) -> bool:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return False
    # a stubs-only package (tensorrt-stubs) is a namespace package without origin
    return spec is not None and spec.origin is not None and spec.loader is not None


@dataclass
class _Slot:
    """One batch size: its execution context (shape fixed at creation) and its CUDA graph."""

    context: trt.IExecutionContext
    warm: bool = False
    graph: tuple[Any, Any] | None = None
    refused: bool = False


@BACKENDS.register("tensorrt")
class TensorRTBackend(Backend):
    """A serialized TensorRT engine: one context and CUDA graph per batch size, pinned buffers, one stream.

    Args:
        model_path: the ``.engine`` file.
        device: ``auto`` (GPU 0) or ``cuda:N``.
        max_batch: capped to the engine's optimisation-profile maximum.
        cuda_graphs: capture and replay a CUDA graph per batch size.
    """

    name = "tensorrt"
    install_hint = INSTALL

    def __init__(self, model_path: Any, device: str = "auto", max_batch: int = 32, cuda_graphs: bool = True) -> None:
        super().__init__(model_path, device, max_batch)
        self.cuda_graphs = cuda_graphs
        self.min_batch = 1
        self._gpu = 0
        self._buffers: dict[str, Buffer] = {}
        self._slots: dict[int, _Slot] = {}
        self._scratch: Any = None
        self._scratch_bytes = 0
        self._stream: Any = None
        self._lock = threading.Lock()

    @classmethod
    def availability(cls) -> str | None:
        if not _installed("tensorrt"):
            return f"TensorRT is not installed ({INSTALL})"
        if not _installed("cuda.bindings"):
            return f"cuda-bindings is not installed ({INSTALL})"
        try:
            rt = cudart()
        except CdoError as e:
            return str(e)
        err, count = rt.cudaGetDeviceCount()
        if err != rt.cudaError_t.cudaSuccess or not count:
            return f"no usable CUDA device ({getattr(err, 'name', err)}){driver_hint(rt)}"
        return None

    def _device_index(self) -> int:
        kind, _, idx = self.device.partition(":")
        if kind not in ("auto", "cuda"):
            raise CdoError(f"tensorrt runs on a CUDA GPU: use --device auto or cuda[:N], not {self.device!r}")
        try:
            return int(idx or 0)
        except ValueError:
            raise CdoError(f"bad device {self.device!r} (use cuda[:N])") from None

    def _use_device(self) -> None:
        """Make the engine's GPU current on the calling thread (cudaSetDevice is per host thread)."""
        check_cuda(cudart().cudaSetDevice(self._gpu), f"cudaSetDevice({self._gpu})")

    def _load(self) -> None:
        import tensorrt as trt

        rt = cudart()
        self._gpu = self._device_index()
        self._use_device()
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        engine = self._runtime.deserialize_cuda_engine(self.model_path.read_bytes())
        if engine is None:
            raise CdoError(f"{self.model_path}: TensorRT cannot deserialize this engine (built with another "
                           f"TensorRT version or GPU?); rebuild it on this machine")
        self._engine: trt.ICudaEngine = engine
        if not hasattr(engine, "device_memory_size_v2"):  # with set_device_memory(ptr, size): TensorRT 10.1
            raise CdoError(f"TensorRT {trt.__version__} is too old for the tensorrt backend: it needs >= 10.1 "
                           f"({INSTALL})")
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        missing = [n for n in (INPUT_NAME, *OUTPUT_NAMES) if n not in names]
        if missing or engine.get_tensor_mode(INPUT_NAME) != trt.TensorIOMode.INPUT:
            raise CdoError(f"{self.model_path}: not a cdo engine (tensors {names}, missing {missing})")
        in_shape = engine.get_tensor_shape(INPUT_NAME)  # (-1, H, W, 3)
        lo, opt, hi = (int(d[0]) for d in engine.get_tensor_profile_shape(INPUT_NAME, 0))  # [min, opt, max]
        if hi < self.max_batch:
            log.warning("%s: engine profile allows batch <= %d; capping max_batch %d",
                        self.model_path.name, hi, self.max_batch)
            self.max_batch = hi
        self.min_batch = lo
        if lo > 1:
            log.info("%s: engine profile starts at batch %d: smaller batches are padded", self.model_path.name, lo)
        self.input_hw = (int(in_shape[1]), int(in_shape[2]))
        self._stream = check_cuda(rt.cudaStreamCreateWithFlags(rt.cudaStreamNonBlocking), "cudaStreamCreateWithFlags")
        self._scratch_bytes = int(engine.device_memory_size_v2)
        if self._scratch_bytes:
            self._scratch = check_cuda(rt.cudaMalloc(self._scratch_bytes), "cudaMalloc(activations)")
        h, w = self.input_hw
        rows = max(self.max_batch, lo)  # padded batches reach the profile minimum
        shapes = {INPUT_NAME: (rows, h, w, 3), "anomaly_map": (rows, 1, h, w), "score": (rows,)}
        for name, shape in shapes.items():
            self._buffers[name] = Buffer(name, shape, trt.nptype(engine.get_tensor_dtype(name)))
        graphs = " +graphs" if self.cuda_graphs else ""
        self.device_label = f"cuda:{self._gpu} TensorRT {trt.__version__}{graphs} (batch {lo}/{opt}/{hi})"

    def _slot(self, batch: int) -> _Slot:
        """The context for ``batch``: created once, shape set once, sharing the activation memory."""
        slot = self._slots.get(batch)
        if slot is not None:
            return slot
        import tensorrt as trt

        context = self._engine.create_execution_context(trt.ExecutionContextAllocationStrategy.USER_MANAGED)
        if context is None:
            raise CdoError(f"{self.model_path}: cannot create a TensorRT execution context (GPU memory?)")
        if self._scratch_bytes:
            context.set_device_memory(int(self._scratch), self._scratch_bytes)
        for name, buf in self._buffers.items():
            if not context.set_tensor_address(name, int(buf.device_ptr)):
                raise CudaError(f"set_tensor_address({name!r}) refused")
        h, w = self.input_hw or (0, 0)
        if not context.set_input_shape(INPUT_NAME, (batch, h, w, 3)):
            raise CudaError(f"set_input_shape({INPUT_NAME!r}, {(batch, h, w, 3)}) refused (engine profile "
                            f"batch {self.min_batch}..{self.max_batch})")
        slot = self._slots[batch] = _Slot(context)
        return slot

    def _enqueue(self, slot: _Slot, batch: int) -> bool:
        """Queue copy-in, execution and copy-out of ``batch`` images on the stream."""
        rt = cudart()
        inp = self._buffers[INPUT_NAME]
        h2d, d2h = rt.cudaMemcpyKind.cudaMemcpyHostToDevice, rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        check_cuda(rt.cudaMemcpyAsync(inp.device_ptr, inp.host_ptr, inp.item_bytes * batch, h2d, self._stream),
                   "cudaMemcpyAsync(H2D)")
        if not slot.context.execute_async_v3(int(self._stream)):
            return False
        for name in OUTPUT_NAMES:
            out = self._buffers[name]
            check_cuda(rt.cudaMemcpyAsync(out.host_ptr, out.device_ptr, out.item_bytes * batch, d2h, self._stream),
                       f"cudaMemcpyAsync(D2H {name})")
        return True

    def _capture(self, slot: _Slot, batch: int) -> tuple[Any, Any] | None:
        """Capture the enqueue of ``batch`` into a CUDA graph; ``None`` if anything refused it.

        The capture is always ended, whatever happens inside it, so the stream never stays in
        capture mode.
        """
        rt = cudart()
        mode = rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        (err,) = rt.cudaStreamBeginCapture(self._stream, mode)
        if err != rt.cudaError_t.cudaSuccess:
            log.debug("cudaStreamBeginCapture refused: %s", getattr(err, "name", err))
            rt.cudaGetLastError()
            return None
        ok = False
        try:
            ok = self._enqueue(slot, batch)
        except Exception as e:  # noqa: BLE001 - any failure inside a capture means: no graph, plain enqueue
            log.debug("enqueue during capture failed: %s", e)
        finally:
            err, graph = rt.cudaStreamEndCapture(self._stream)
        if not ok or err != rt.cudaError_t.cudaSuccess or graph is None:
            rt.cudaGetLastError()  # clear the sticky capture error
            if graph is not None and err == rt.cudaError_t.cudaSuccess:
                check_cuda(rt.cudaGraphDestroy(graph), "cudaGraphDestroy")
            return None
        try:
            exe = check_cuda(rt.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
        except CudaError as e:
            log.debug("graph instantiation refused: %s", e)
            check_cuda(rt.cudaGraphDestroy(graph), "cudaGraphDestroy")
            return None
        return graph, exe

    def _infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rt = cudart()
        n = images.shape[0]
        batch = max(n, self.min_batch)
        with self._lock:  # contexts share buffers and activation memory: one batch at a time
            self._use_device()
            host = self._buffers[INPUT_NAME].host
            host[:n] = images
            host[n:batch] = 0  # padding up to the profile minimum
            slot = self._slot(batch)
            if self.cuda_graphs and slot.warm and slot.graph is None and not slot.refused:
                slot.graph = self._capture(slot, batch)
                if slot.graph is None:
                    log.info("CUDA graph capture refused for batch %d; using plain enqueue", batch)
                    slot.refused = True
            if slot.graph is not None:
                check_cuda(rt.cudaGraphLaunch(slot.graph[1], self._stream), "cudaGraphLaunch")
            elif not self._enqueue(slot, batch):
                raise CudaError(f"{self.model_path.name}: execute_async_v3 failed for batch {batch}")
            slot.warm = True
            check_cuda(rt.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
            maps = self._buffers["anomaly_map"].host[:n].copy()
            scores = self._buffers["score"].host[:n].copy()
        return maps, scores

    def _close(self) -> None:
        """Free graphs, contexts, buffers and the stream; tolerates a half-finished ``_load``."""
        rt = cudart()
        try:
            self._use_device()
        except CudaError as e:  # a load that failed on a bad device index: free what exists anyway
            log.debug("close: %s", e)
        if self._stream is not None:
            check_cuda(rt.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        for slot in self._slots.values():
            if slot.graph is not None:
                check_cuda(rt.cudaGraphExecDestroy(slot.graph[1]), "cudaGraphExecDestroy")
                check_cuda(rt.cudaGraphDestroy(slot.graph[0]), "cudaGraphDestroy")
        self._slots.clear()  # contexts before the memory they use, engine and runtime
        for buf in self._buffers.values():
            buf.free()
        self._buffers.clear()
        if self._scratch is not None:
            check_cuda(rt.cudaFree(self._scratch), "cudaFree(activations)")
            self._scratch = None
        if self._stream is not None:
            check_cuda(rt.cudaStreamDestroy(self._stream), "cudaStreamDestroy")
            self._stream = None
        for attr in ("_engine", "_runtime"):  # engine before runtime
            if hasattr(self, attr):
                delattr(self, attr)
