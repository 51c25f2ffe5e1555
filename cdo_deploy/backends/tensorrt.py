"""Native TensorRT backend: runs an engine listed under ``engines`` in ``model.json``.

Uses the TensorRT 10+ named-tensor API (``set_input_shape``,
``set_tensor_address``, ``execute_async_v3``) on a non-default CUDA stream and
cuda-python for memory and streams (``from cuda.bindings import runtime``;
cuda-bindings 13 removed ``cuda.cudart``). Every CUDA call's status is checked.

Per batch ``B`` the work is: copy the input from a pinned host buffer to the
device, enqueue, copy both outputs back, synchronise. With ``cuda_graphs=True``
(default) the first run of each batch size is a plain enqueue (warm-up, which
also flushes TensorRT's deferred shape updates); the second captures the same
work into a CUDA graph that every later run replays with one
``cudaGraphLaunch``. A refused capture falls back to plain enqueue for that
batch size. Buffers are allocated once for the engine's largest batch so
tensor addresses, and with them the captured graphs, stay valid.

Engines are specific to GPU and TensorRT version: build them on the line PC
(``trtexec --onnx=model.onnx --saveEngine=model_fp16.engine --fp16
--minShapes=image:1x{H}x{W}x3 --optShapes=image:8x{H}x{W}x3
--maxShapes=image:32x{H}x{W}x3``) and list them in ``model.json`` ``engines``.

Example:
    >>> be = create_backend("tensorrt", "bundle/model_fp16.engine", device="cuda:0")  # doctest: +SKIP
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from ..bundle import INPUT_NAME, OUTPUT_NAMES
from ..errors import CdoError
from .base import BACKENDS, Backend

if TYPE_CHECKING:
    import tensorrt as trt

__all__ = ["CudaError", "TensorRTBackend", "check_cuda"]

log = logging.getLogger(__name__)

_INSTALL = "pip install tensorrt cuda-python (TensorRT >= 10 matching the NVIDIA driver)"


class CudaError(CdoError):
    """A CUDA runtime call returned an error status."""


def _cudart() -> Any:
    try:
        from cuda.bindings import runtime
    except ImportError:
        raise CdoError(f"cuda-python is not installed ({_INSTALL}); it provides cuda.bindings.runtime") from None
    return runtime


def check_cuda(result: Any, what: str) -> Any:
    """Check a cuda-python call's status and unwrap its values.

    cuda-python returns ``(cudaError_t, *values)``.

    Args:
        result: what the call returned.
        what: call name for the message.

    Returns:
        ``None``, the single value, or a tuple of values.

    Raises:
        CudaError: the status is not ``cudaSuccess``.
    """
    cudart = _cudart()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        _, msg = cudart.cudaGetErrorString(err)
        text = msg.decode() if isinstance(msg, bytes) else str(msg)
        raise CudaError(f"{what} failed: {getattr(err, 'name', err)} ({text})")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def _installed(module: str) -> bool:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return False
    # a stubs-only package (tensorrt-stubs) is a namespace package without origin
    return spec is not None and spec.origin is not None and spec.loader is not None


class _Buffer:
    """A pinned host array and its device twin, sized for the largest batch."""

    def __init__(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
        cudart = _cudart()
        self.name, self.dtype = name, np.dtype(dtype)
        self.host_ptr: Any = None
        self.device_ptr: Any = None
        self.item_bytes = int(np.prod(shape[1:])) * self.dtype.itemsize
        self.nbytes = self.item_bytes * shape[0]
        self.host_ptr = check_cuda(cudart.cudaMallocHost(self.nbytes), "cudaMallocHost")
        raw = (ctypes.c_uint8 * self.nbytes).from_address(int(self.host_ptr))
        self.host = np.frombuffer(memoryview(raw), dtype=self.dtype).reshape(shape)
        try:
            self.device_ptr = check_cuda(cudart.cudaMalloc(self.nbytes), "cudaMalloc")
        except CudaError:
            self.free()
            raise

    def free(self) -> None:
        cudart = _cudart()
        if self.device_ptr is not None:
            check_cuda(cudart.cudaFree(self.device_ptr), "cudaFree")
            self.device_ptr = None
        if self.host_ptr is not None:
            self.host = np.empty(0, self.dtype)
            check_cuda(cudart.cudaFreeHost(self.host_ptr), "cudaFreeHost")
            self.host_ptr = None


@BACKENDS.register("tensorrt")
class TensorRTBackend(Backend):
    """A serialized TensorRT engine with pinned buffers, one stream, optional CUDA graphs.

    Args:
        model_path: the ``.engine`` file.
        device: ``auto`` (GPU 0) or ``cuda:N``.
        max_batch: capped to the engine's optimisation-profile maximum.
        cuda_graphs: capture and replay a CUDA graph per batch size.
    """

    name = "tensorrt"
    install_hint = _INSTALL

    def __init__(self, model_path: Any, device: str = "auto", max_batch: int = 32, cuda_graphs: bool = True) -> None:
        super().__init__(model_path, device, max_batch)
        self.cuda_graphs = cuda_graphs
        self._buffers: dict[str, _Buffer] = {}
        self._graphs: dict[int, tuple[Any, Any]] = {}
        self._warm: set[int] = set()
        self._refused: set[int] = set()
        self._shape_batch = 0
        self._stream: Any = None

    @classmethod
    def availability(cls) -> str | None:
        if not _installed("tensorrt"):
            return f"TensorRT is not installed ({_INSTALL})"
        if not _installed("cuda.bindings"):
            return f"cuda-python is not installed ({_INSTALL})"
        try:
            cudart = _cudart()
        except CdoError as e:
            return str(e)
        err, count = cudart.cudaGetDeviceCount()
        if err != cudart.cudaError_t.cudaSuccess or not count:
            return f"no usable CUDA device ({getattr(err, 'name', err)})"
        return None

    def _device_index(self) -> int:
        kind, _, idx = self.device.partition(":")
        if kind not in ("auto", "cuda"):
            raise CdoError(f"tensorrt runs on a CUDA GPU: use --device auto or cuda[:N], not {self.device!r}")
        try:
            return int(idx or 0)
        except ValueError:
            raise CdoError(f"bad device {self.device!r} (use cuda[:N])") from None

    def _load(self) -> None:
        import tensorrt as trt

        cudart = _cudart()
        gpu = self._device_index()
        check_cuda(cudart.cudaSetDevice(gpu), f"cudaSetDevice({gpu})")
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        engine = self._runtime.deserialize_cuda_engine(self.model_path.read_bytes())
        if engine is None:
            raise CdoError(f"{self.model_path}: TensorRT cannot deserialize this engine (built with another "
                           f"TensorRT version or GPU?); rebuild it on this machine")
        self._engine: trt.ICudaEngine = engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        missing = [n for n in (INPUT_NAME, *OUTPUT_NAMES) if n not in names]
        if missing or engine.get_tensor_mode(INPUT_NAME) != trt.TensorIOMode.INPUT:
            raise CdoError(f"{self.model_path}: not a cdo engine (tensors {names}, missing {missing})")
        in_shape = engine.get_tensor_shape(INPUT_NAME)  # (-1, H, W, 3)
        profile_max = engine.get_tensor_profile_shape(INPUT_NAME, 0)[2]  # [min, opt, max]
        engine_max = int(profile_max[0])
        if engine_max < self.max_batch:
            log.warning("%s: engine profile allows batch <= %d; capping max_batch %d",
                        self.model_path.name, engine_max, self.max_batch)
            self.max_batch = engine_max
        self.input_hw = (int(in_shape[1]), int(in_shape[2]))
        context = engine.create_execution_context()
        if context is None:
            raise CdoError(f"{self.model_path}: cannot create a TensorRT execution context (GPU memory?)")
        self._context: trt.IExecutionContext = context
        self._stream = check_cuda(cudart.cudaStreamCreateWithFlags(cudart.cudaStreamNonBlocking),
                                  "cudaStreamCreateWithFlags")
        h, w = self.input_hw
        shapes = {INPUT_NAME: (self.max_batch, h, w, 3), "anomaly_map": (self.max_batch, 1, h, w),
                  "score": (self.max_batch,)}
        for name, shape in shapes.items():
            buf = _Buffer(name, shape, trt.nptype(engine.get_tensor_dtype(name)))
            self._buffers[name] = buf
            if not context.set_tensor_address(name, int(buf.device_ptr)):
                raise CudaError(f"set_tensor_address({name!r}) refused")
        self.device_label = f"cuda:{gpu} TensorRT {trt.__version__}{' +graphs' if self.cuda_graphs else ''}"

    def _set_batch(self, batch: int) -> bool:
        """Set the input shape for ``batch``; return whether it changed."""
        if batch == self._shape_batch:
            return False
        h, w = self.input_hw or (0, 0)
        if not self._context.set_input_shape(INPUT_NAME, (batch, h, w, 3)):
            raise CudaError(f"set_input_shape({INPUT_NAME!r}, {(batch, h, w, 3)}) refused")
        self._shape_batch = batch
        return True

    def _enqueue(self, batch: int) -> bool:
        """Queue copy-in, execution and copy-out of ``batch`` images on the stream."""
        cudart = _cudart()
        inp = self._buffers[INPUT_NAME]
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        check_cuda(cudart.cudaMemcpyAsync(inp.device_ptr, inp.host_ptr, inp.item_bytes * batch, h2d,
                                          self._stream), "cudaMemcpyAsync(H2D)")
        if not self._context.execute_async_v3(int(self._stream)):
            return False
        for name in OUTPUT_NAMES:
            out = self._buffers[name]
            check_cuda(cudart.cudaMemcpyAsync(out.host_ptr, out.device_ptr, out.item_bytes * batch, d2h,
                                              self._stream), f"cudaMemcpyAsync(D2H {name})")
        return True

    def _capture(self, batch: int) -> tuple[Any, Any] | None:
        """Capture the enqueue of ``batch`` into a CUDA graph; ``None`` if refused."""
        cudart = _cudart()
        mode = cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        check_cuda(cudart.cudaStreamBeginCapture(self._stream, mode), "cudaStreamBeginCapture")
        try:
            ok = self._enqueue(batch)
        except CudaError as e:
            log.debug("enqueue during capture failed: %s", e)
            ok = False
        err, graph = cudart.cudaStreamEndCapture(self._stream)
        if not ok or err != cudart.cudaError_t.cudaSuccess or graph is None:
            cudart.cudaGetLastError()  # clear the sticky capture error
            if graph is not None and err == cudart.cudaError_t.cudaSuccess:
                check_cuda(cudart.cudaGraphDestroy(graph), "cudaGraphDestroy")
            return None
        try:
            exe = check_cuda(cudart.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
        except CudaError as e:
            log.debug("graph instantiation refused: %s", e)
            check_cuda(cudart.cudaGraphDestroy(graph), "cudaGraphDestroy")
            return None
        return graph, exe

    def _infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cudart = _cudart()
        batch = images.shape[0]
        self._buffers[INPUT_NAME].host[:batch] = images
        graph = self._graphs.get(batch)
        if graph is None:
            # a shape change needs one plain enqueue before capture (deferred updates)
            changed = self._set_batch(batch)
            if self.cuda_graphs and not changed and batch in self._warm and batch not in self._refused:
                graph = self._capture(batch)
                if graph is None:
                    log.info("CUDA graph capture refused for batch %d; using plain enqueue", batch)
                    self._refused.add(batch)
                else:
                    self._graphs[batch] = graph
        if graph is not None:
            check_cuda(cudart.cudaGraphLaunch(graph[1], self._stream), "cudaGraphLaunch")
        elif not self._enqueue(batch):
            raise CudaError(f"{self.model_path.name}: execute_async_v3 failed for batch {batch}")
        self._warm.add(batch)
        check_cuda(cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        maps = self._buffers["anomaly_map"].host[:batch].copy()
        scores = self._buffers["score"].host[:batch].copy()
        return maps, scores

    def _close(self) -> None:
        """Free graphs, buffers and the stream; tolerates a half-finished ``_load``."""
        cudart = _cudart()
        if self._stream is not None:
            check_cuda(cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        for graph, exe in self._graphs.values():
            check_cuda(cudart.cudaGraphExecDestroy(exe), "cudaGraphExecDestroy")
            check_cuda(cudart.cudaGraphDestroy(graph), "cudaGraphDestroy")
        self._graphs.clear()
        for buf in self._buffers.values():
            buf.free()
        self._buffers.clear()
        if self._stream is not None:
            check_cuda(cudart.cudaStreamDestroy(self._stream), "cudaStreamDestroy")
            self._stream = None
        for attr in ("_context", "_engine", "_runtime"):  # context before engine before runtime
            if hasattr(self, attr):
                delattr(self, attr)
