"""Run side of the fake ``tensorrt``: Runtime, ICudaEngine, IExecutionContext on the fake CUDA.

The "engine" computes the tiny test graph (``tests/deploy/conftest.py``): anomaly map = channel-mean
brightness / 255, score = its max. Semantics mirrored (TensorRT 10.13.3 / 11.1 ``NvInferRuntime.h``
and the developer guide's CUDA Graphs section):

* ``deserialize_cuda_engine`` returns None for an engine of another TensorRT version; the engine
  lives on the device current on the calling thread;
* ``get_tensor_profile_shape(name, 0)`` is ``[min, opt, max]`` (``pyCore.cpp`` l.187);
  ``set_input_shape`` outside ``[min, max]`` returns False;
* ``execute_async_v3`` launches kernels into the stream: it fails when the stream is not on the
  calling thread's current device; the first enqueue after a shape change does deferred, non-
  capturable work, so inside a stream capture it invalidates the capture;
* a captured enqueue is tied to the input shape at capture: replaying it after ``set_input_shape``
  changed that context is undefined -- the fake records every replay (shape at capture and now)
  and writes NaN in that case, so a test sees it;
* ``create_execution_context(USER_MANAGED)`` has no activation memory until ``set_device_memory``
  with at least ``device_memory_size_v2`` bytes (``setDeviceMemoryV2``: the memory is in use from
  enqueue to completion; contexts that do not run in parallel may share it).
"""

from __future__ import annotations

import itertools
import threading
import types
from typing import Any

import numpy as np

from .trt_builder import ENGINE_MAGIC, read_blob

SCRATCH_BYTES = 1 << 16


def runtime_classes(trt: types.ModuleType, state: Any, cuda: Any) -> None:  # noqa: C901 - one class per API
    """Attach Runtime and the engine classes to the fake module ``trt``."""
    ids = itertools.count(1)

    def error(msg: str) -> None:
        state.messages.append(("ERROR", msg))

    def views(shape: tuple, addrs: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        b, h, w, _ = shape
        x = np.ctypeslib.as_array(cuda.buffer(addrs["image"], b * h * w * 3)).reshape(shape)
        amap = np.ctypeslib.as_array(cuda.buffer(addrs["anomaly_map"], b * h * w * 4)).view(np.float32)
        score = np.ctypeslib.as_array(cuda.buffer(addrs["score"], b * 4)).view(np.float32)
        return x, amap.reshape(b, 1, h, w), score

    def compute(shape: tuple, addrs: dict[str, int], undefined: bool = False) -> None:
        x, amap, score = views(shape, addrs)
        if undefined:
            amap[:], score[:] = np.nan, np.nan
            return
        m = x.astype(np.float32).mean(axis=3)[:, None] / 255.0
        amap[:] = m
        score[:] = m.reshape(len(m), -1).max(axis=1)

    class Context:
        def __init__(self, engine: "Engine", strategy: Any) -> None:
            self.engine, self.id = engine, next(ids)
            self.shape: tuple | None = None
            self.addresses: dict[str, int] = {}
            self.memory = engine.device_memory_size_v2 if strategy != trt.ExecutionContextAllocationStrategy.USER_MANAGED \
                else 0
            self._needs_flush = False
            state.contexts.append(self)

        def set_device_memory(self, memory: int, size: int) -> None:
            if size < self.engine.device_memory_size_v2:
                error(f"setDeviceMemoryV2: {size} bytes < device_memory_size_v2 {self.engine.device_memory_size_v2}")
                return
            self.memory = size

        def set_input_shape(self, name: str, shape: Any) -> bool:
            shape = tuple(int(v) for v in shape)
            lo, _, hi = self.engine.rec["profile"]
            if name != "image" or len(shape) != 4 or not all(a <= s <= c for a, s, c in zip(lo, shape, hi)):
                error(f"setInputShape({name}, {shape}): outside the optimisation profile [{lo}, {hi}]")
                return False
            if shape != self.shape:
                self.shape, self._needs_flush = shape, True
            state.shape_log.append((self.id, shape))
            return True

        def get_tensor_shape(self, name: str) -> Any:
            return trt.Dims(self.shape or ())

        def set_tensor_address(self, name: str, memory: int) -> bool:
            if name not in self.engine.io:
                error(f"setTensorAddress: no tensor {name}")
                return False
            self.addresses[name] = int(memory)
            return True

        def execute_async_v3(self, stream_handle: int) -> bool:
            if self.shape is None or set(self.addresses) != set(self.engine.io) or not self.memory:
                error("enqueueV3: input shape, tensor addresses or device memory not set")
                return False
            capturing = cuda.capturing(stream_handle)
            if capturing and self._needs_flush:
                error("enqueueV3: deferred shape update inside a stream capture (enqueue once before capture)")
                cuda.invalidate_capture(stream_handle)
                return False
            shape, addrs = self.shape, dict(self.addresses)
            state.executions.append({"context": self.id, "batch": shape[0], "captured": capturing,
                                     "thread": threading.current_thread().name})
            if capturing:
                def op() -> None:  # a replay: the kernels of the captured shape, on the context's state now
                    now = self.shape
                    state.replays.append({"context": self.id, "captured": shape[0], "now": now[0] if now else None})
                    compute(shape, addrs, undefined=now != shape)
            else:
                def op() -> None:
                    compute(shape, addrs)
            err = cuda.launch_kernel(stream_handle, op, "enqueueV3")
            if err:
                error(f"enqueueV3: kernel launch failed: {err.name}")
                return False
            if not capturing:
                self._needs_flush = False
            return True

    class Engine:
        def __init__(self, rec: dict[str, Any], device: int) -> None:
            self.rec, self.device = rec, device
            _, h, w, _ = rec["profile"][0]
            self.io = {"image": (trt.TensorIOMode.INPUT, trt.uint8, (-1, h, w, 3)),
                       "anomaly_map": (trt.TensorIOMode.OUTPUT, trt.float32, (-1, 1, h, w)),
                       "score": (trt.TensorIOMode.OUTPUT, trt.float32, (-1,))}
            self.num_io_tensors = len(self.io)
            self.num_optimization_profiles = 1
            self.device_memory_size_v2 = SCRATCH_BYTES

        def get_tensor_name(self, i: int) -> str:
            return list(self.io)[i]

        def get_tensor_mode(self, name: str) -> Any:
            return self.io[name][0] if name in self.io else trt.TensorIOMode.NONE

        def get_tensor_dtype(self, name: str) -> Any:
            return self.io[name][1]

        def get_tensor_shape(self, name: str) -> Any:
            return trt.Dims(self.io[name][2])

        def get_tensor_profile_shape(self, name: str, profile_index: int) -> list:
            if name != "image" or profile_index != 0:
                return [trt.Dims(()) for _ in range(3)]
            return [trt.Dims(d) for d in self.rec["profile"]]

        def create_execution_context(self, strategy: Any = None) -> Context:
            return Context(self, trt.ExecutionContextAllocationStrategy.STATIC if strategy is None else strategy)

    class Runtime:
        def __init__(self, logger: Any) -> None:
            self.logger = logger

        def deserialize_cuda_engine(self, serialized: bytes) -> Engine | None:
            rec = read_blob(bytes(serialized), ENGINE_MAGIC, "engine", trt.__version__, state.messages)
            return None if rec is None else Engine(rec, cuda.current_device())

    trt.Runtime = Runtime
