"""A fake ``cuda.bindings.runtime`` with the real module's call shapes and the CUDA semantics our backend relies on.

Mirrors cuda-bindings 13.x (``cuda/bindings/runtime.pyx``, checked against the installed 13.5 wheel's
docstrings): every call returns ``(cudaError_t, *values)``, values are ``None`` on error, enum values
as in CUDA's ``driver_types.h`` (``tests/fakes/test_fakes.py`` compares them with the real wheel when it
is installed). Semantics kept from the CUDA Runtime API / Programming Guide:

* the current device is per host thread (``cudaSetDevice``: "for the calling host thread"), 0 by default;
* a stream belongs to the device current when it was created; a kernel launched into a stream of
  another device fails (Programming Guide, "Stream and Event Behavior"), a memcpy does not;
* ``cudaStreamBeginCapture`` puts a stream in capture mode: work is recorded into a graph, not run;
  synchronising a capturing stream fails with ``cudaErrorStreamCaptureUnsupported`` and invalidates
  the capture; ``cudaStreamEndCapture`` of an invalidated capture returns
  ``cudaErrorStreamCaptureInvalidated`` and ends capture mode;
* work queued on a stream runs at ``cudaStreamSynchronize`` (asynchronous execution, in order).

Memory is host memory (ctypes buffers) tagged host/device, so copies really move bytes. Fault
injection: ``cuda.fail_next["cudaStreamBeginCapture"] = cudaError_t.cudaErrorStreamCaptureUnsupported``.
"""

from __future__ import annotations

import ctypes
import enum
import threading
import types
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["FakeCuda", "cudaError_t"]


class cudaError_t(enum.IntEnum):  # noqa: N801 - the real name
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorMemoryAllocation = 2
    cudaErrorInsufficientDriver = 35
    cudaErrorNoDevice = 100
    cudaErrorInvalidDevice = 101
    cudaErrorInvalidResourceHandle = 400
    cudaErrorIllegalState = 401
    cudaErrorStreamCaptureUnsupported = 900
    cudaErrorStreamCaptureInvalidated = 901


ERROR_STRINGS = {
    cudaError_t.cudaSuccess: b"no error",
    cudaError_t.cudaErrorInvalidValue: b"invalid argument",
    cudaError_t.cudaErrorMemoryAllocation: b"out of memory",
    cudaError_t.cudaErrorInsufficientDriver: b"CUDA driver version is insufficient for CUDA runtime version",
    cudaError_t.cudaErrorNoDevice: b"no CUDA-capable device is detected",
    cudaError_t.cudaErrorInvalidDevice: b"invalid device ordinal",
    cudaError_t.cudaErrorInvalidResourceHandle: b"invalid resource handle",
    cudaError_t.cudaErrorIllegalState: b"the operation cannot be performed in the present state",
    cudaError_t.cudaErrorStreamCaptureUnsupported: b"operation not permitted when stream is capturing",
    cudaError_t.cudaErrorStreamCaptureInvalidated: b"operation failed due to a previous error during capture",
}


class cudaMemcpyKind(enum.IntEnum):  # noqa: N801
    cudaMemcpyHostToHost = 0
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2
    cudaMemcpyDeviceToDevice = 3
    cudaMemcpyDefault = 4


class cudaStreamCaptureMode(enum.IntEnum):  # noqa: N801
    cudaStreamCaptureModeGlobal = 0
    cudaStreamCaptureModeThreadLocal = 1
    cudaStreamCaptureModeRelaxed = 2


class cudaStreamCaptureStatus(enum.IntEnum):  # noqa: N801
    cudaStreamCaptureStatusNone = 0
    cudaStreamCaptureStatusActive = 1
    cudaStreamCaptureStatusInvalidated = 2


OK = cudaError_t.cudaSuccess


@dataclass
class _Alloc:
    kind: str  # "host" | "device"
    device: int
    buf: Any


@dataclass
class _Capture:
    nodes: list[Callable[[], None]] = field(default_factory=list)
    invalidated: bool = False


class FakeStream:
    """``cudaStream_t``: ``int(stream)`` is its handle, as in cuda-bindings."""

    def __init__(self, handle: int, device: int) -> None:
        self.handle, self.device = handle, device
        self.queue: list[Callable[[], None]] = []
        self.capture: _Capture | None = None

    def __int__(self) -> int:
        return self.handle


class FakeGraph:
    def __init__(self, nodes: list[Callable[[], None]]) -> None:
        self.nodes = list(nodes)


class FakeCuda:
    """The state behind one fake ``cuda.bindings.runtime`` module (``module`` attribute).

    Args:
        devices: GPUs visible.
        driver_version: CUDA version the driver supports (1000 * major + 10 * minor; 0 = no driver).
        runtime_version: CUDA version of the runtime (cuda-bindings) in use.
    """

    def __init__(self, devices: int = 1, driver_version: int = 13000, runtime_version: int = 13000) -> None:
        self.devices, self.driver_version, self.runtime_version = devices, driver_version, runtime_version
        self.fail_next: dict[str, cudaError_t] = {}
        self.launches: list[dict[str, Any]] = []  # every kernel launch: thread, current device, stream device
        self._tls = threading.local()
        self._allocs: dict[int, _Alloc] = {}
        self._streams: dict[int, FakeStream] = {}
        self._next_handle = 0x1000
        self._last_error = OK
        self.module = self._module()

    # -- helpers the fake TensorRT uses ------------------------------------------------
    def current_device(self) -> int:
        return getattr(self._tls, "device", 0)

    def stream(self, handle: int) -> FakeStream | None:
        return self._streams.get(int(handle))

    def buffer(self, ptr: int, nbytes: int, kind: str = "device") -> Any:
        """A ctypes view of ``nbytes`` at ``ptr`` inside one allocation of ``kind``."""
        base, alloc = self._find(ptr)
        if alloc is None or alloc.kind != kind or ptr + nbytes > base + ctypes.sizeof(alloc.buf):
            raise AssertionError(f"fake CUDA: {nbytes} bytes at {ptr:#x} are not inside one {kind} allocation")
        return (ctypes.c_uint8 * nbytes).from_address(ptr)

    def launch_kernel(self, handle: int, op: Callable[[], None], what: str) -> cudaError_t:
        """Queue (or capture) a kernel; fails if the stream is not on the thread's current device."""
        s = self.stream(handle)
        if s is None:
            return cudaError_t.cudaErrorInvalidResourceHandle
        cur = self.current_device()
        self.launches.append({"what": what, "thread": threading.current_thread().name, "current_device": cur,
                              "stream_device": s.device, "capturing": s.capture is not None})
        if cur != s.device:
            return cudaError_t.cudaErrorInvalidResourceHandle
        self._submit(s, op)
        return OK

    def invalidate_capture(self, handle: int) -> None:
        s = self.stream(handle)
        if s is not None and s.capture is not None:
            s.capture.invalidated = True

    def capturing(self, handle: int) -> bool:
        s = self.stream(handle)
        return s is not None and s.capture is not None

    def live_allocations(self) -> int:
        return len(self._allocs)

    # -- internals -----------------------------------------------------------------------
    def _find(self, ptr: int) -> tuple[int, _Alloc | None]:
        for base, alloc in self._allocs.items():
            if base <= ptr < base + ctypes.sizeof(alloc.buf):
                return base, alloc
        return 0, None

    def _submit(self, s: FakeStream, op: Callable[[], None]) -> None:
        if s.capture is not None:
            s.capture.nodes.append(op)
        else:
            s.queue.append(op)

    def _injected(self, name: str) -> cudaError_t | None:
        err = self.fail_next.pop(name, None)
        if err is not None:
            self._last_error = err
        return err

    def _alloc(self, size: int, kind: str) -> tuple:
        buf = ctypes.create_string_buffer(max(int(size), 1))
        ptr = ctypes.addressof(buf)
        self._allocs[ptr] = _Alloc(kind, self.current_device(), buf)
        return OK, ptr

    def _free(self, ptr: Any, kind: str) -> tuple:
        alloc = self._allocs.get(int(ptr))
        if alloc is None or alloc.kind != kind:
            return (cudaError_t.cudaErrorInvalidValue,)
        del self._allocs[int(ptr)]
        return (OK,)

    def _module(self) -> types.ModuleType:  # noqa: C901 - one function per CUDA call
        m = types.ModuleType("cuda.bindings.runtime")
        m.cudaError_t, m.cudaMemcpyKind = cudaError_t, cudaMemcpyKind
        m.cudaStreamCaptureMode, m.cudaStreamCaptureStatus = cudaStreamCaptureMode, cudaStreamCaptureStatus
        m.cudaStreamNonBlocking = 1

        def driver_ok() -> bool:
            return self.driver_version // 1000 >= self.runtime_version // 1000 > 0

        def cudaGetErrorString(err: cudaError_t) -> tuple:
            return OK, ERROR_STRINGS.get(err, b"unknown error")

        def cudaGetLastError() -> tuple:
            err, self._last_error = self._last_error, OK
            return (err,)

        def cudaDriverGetVersion() -> tuple:
            return OK, self.driver_version

        def cudaRuntimeGetVersion() -> tuple:
            return OK, self.runtime_version

        def cudaGetDeviceCount() -> tuple:
            if not driver_ok():
                return cudaError_t.cudaErrorInsufficientDriver, None
            if not self.devices:
                return cudaError_t.cudaErrorNoDevice, None
            return OK, self.devices

        def cudaSetDevice(device: int) -> tuple:
            if not 0 <= int(device) < self.devices:
                return (cudaError_t.cudaErrorInvalidDevice,)
            self._tls.device = int(device)
            return (OK,)

        def cudaGetDevice() -> tuple:
            return OK, self.current_device()

        def cudaMallocHost(size: int) -> tuple:
            err = self._injected("cudaMallocHost")
            return (err, None) if err else self._alloc(size, "host")

        def cudaMalloc(size: int) -> tuple:
            err = self._injected("cudaMalloc")
            return (err, None) if err else self._alloc(size, "device")

        def cudaFreeHost(ptr: Any) -> tuple:
            return self._free(ptr, "host")

        def cudaFree(ptr: Any) -> tuple:
            return self._free(ptr, "device")

        def cudaStreamCreateWithFlags(flags: int) -> tuple:
            self._next_handle += 0x10
            s = FakeStream(self._next_handle, self.current_device())
            self._streams[s.handle] = s
            return OK, s

        def cudaStreamDestroy(stream: Any) -> tuple:
            return (OK,) if self._streams.pop(int(stream), None) else (cudaError_t.cudaErrorInvalidResourceHandle,)

        def cudaMemcpyAsync(dst: Any, src: Any, count: int, kind: cudaMemcpyKind, stream: Any) -> tuple:
            s = self.stream(stream)
            if s is None:
                return (cudaError_t.cudaErrorInvalidResourceHandle,)
            kinds = {cudaMemcpyKind.cudaMemcpyHostToDevice: ("device", "host"),
                     cudaMemcpyKind.cudaMemcpyDeviceToHost: ("host", "device")}
            if kind not in kinds:
                return (cudaError_t.cudaErrorInvalidValue,)
            dst_view = self.buffer(int(dst), count, kinds[kind][0])
            src_view = self.buffer(int(src), count, kinds[kind][1])
            self._submit(s, lambda: ctypes.memmove(dst_view, src_view, count))
            return (OK,)

        def cudaStreamSynchronize(stream: Any) -> tuple:
            s = self.stream(stream)
            if s is None:
                return (cudaError_t.cudaErrorInvalidResourceHandle,)
            if s.capture is not None:
                s.capture.invalidated = True
                return (cudaError_t.cudaErrorStreamCaptureUnsupported,)
            while s.queue:
                s.queue.pop(0)()
            return (OK,)

        def cudaStreamBeginCapture(stream: Any, mode: cudaStreamCaptureMode) -> tuple:
            s = self.stream(stream)
            err = self._injected("cudaStreamBeginCapture")
            if err:
                return (err,)
            if s is None:
                return (cudaError_t.cudaErrorInvalidResourceHandle,)
            if s.capture is not None:
                return (cudaError_t.cudaErrorIllegalState,)
            s.capture = _Capture()
            return (OK,)

        def cudaStreamEndCapture(stream: Any) -> tuple:
            s = self.stream(stream)
            if s is None or s.capture is None:
                return cudaError_t.cudaErrorIllegalState, None
            cap, s.capture = s.capture, None
            if cap.invalidated:
                self._last_error = cudaError_t.cudaErrorStreamCaptureInvalidated
                return cudaError_t.cudaErrorStreamCaptureInvalidated, None
            return OK, FakeGraph(cap.nodes)

        def cudaStreamIsCapturing(stream: Any) -> tuple:
            s = self.stream(stream)
            if s is None:
                return cudaError_t.cudaErrorInvalidResourceHandle, None
            if s.capture is None:
                return OK, cudaStreamCaptureStatus.cudaStreamCaptureStatusNone
            return OK, (cudaStreamCaptureStatus.cudaStreamCaptureStatusInvalidated if s.capture.invalidated
                        else cudaStreamCaptureStatus.cudaStreamCaptureStatusActive)

        def cudaGraphInstantiate(graph: FakeGraph, flags: int) -> tuple:
            err = self._injected("cudaGraphInstantiate")
            return (err, None) if err else (OK, FakeGraph(graph.nodes))

        def cudaGraphLaunch(exe: FakeGraph, stream: Any) -> tuple:
            s = self.stream(stream)
            if s is None:
                return (cudaError_t.cudaErrorInvalidResourceHandle,)
            if self.current_device() != s.device:
                return (cudaError_t.cudaErrorInvalidResourceHandle,)
            for node in exe.nodes:
                self._submit(s, node)
            return (OK,)

        def cudaGraphDestroy(graph: Any) -> tuple:
            return (OK,)

        cudaGraphExecDestroy = cudaGraphDestroy
        for name, fn in list(locals().items()):
            if name.startswith("cuda"):
                setattr(m, name, fn)
        return m
