"""GenICam / Basler industrial cameras (GigE Vision, USB3 Vision) through pypylon.

Needs the extra ``pip install 'cdo[pylon]'`` (pypylon: Basler's pylon runtime, Basler's licence).
``--source pylon`` (the first camera), ``pylon:SERIAL`` or ``pylon:NAME`` (``DeviceUserID``).
Settings (:class:`~cdo_deploy.sources.pylon_settings.CameraSettings`) are applied at open and
after every reconnect. Frames are grabbed one by one into ``buffers`` driver buffers, converted
to BGR/grey uint8 (:mod:`._pylon_convert`) and released before they are queued.

Guarantees:
    * triggered (``--trigger software|line1|...``): the source is not ``live``,
      the pipeline blocks instead of dropping, and every part that has no result
      becomes an error record and counts as ``missed``: a gap in the camera's frame
      counter (buffer underrun, transfer loss), an incomplete frame, a software
      trigger the camera was not ready for, a fired trigger whose frame never came,
      triggers lost with the camera;
    * free-run (``--trigger off``): ``live``; like any live stream the oldest frames
      are dropped when inference falls behind, and counter gaps count as ``dropped``;
    * the camera lost (cable pulled, camera reset, device closed): one error record,
      then reconnection with exponential back-off to the same serial number, settings
      reapplied, ``reconnects`` counted;
    * ``stop`` (SIGTERM): software triggers stop, frames already triggered are
      received (up to ``drain_s``) and finished.

Every record carries ``source_meta``: ``camera`` (serial), ``model``, ``camera_name``
(when set), ``frame_id`` (the camera's frame counter, = the record's ``frame``),
``image_number`` (host count since grabbing started) and ``camera_timestamp``
(camera ticks: ns on USB3 and ace 2, ``GevTimestampTickFrequency`` on GigE).
With software triggers the latency runs from the trigger (``latency_ms.read`` =
trigger to frame in memory, ``total`` = trigger to decision).

Example:
    >>> PylonSource.accepts("pylon:40123456"), PylonSource.accepts("camera:0")
    (True, False)
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any, Callable, Iterable

from ..errors import CdoError
from ._pylon_convert import FrameConverter
from ._pylon_device import camera_name, device_property, find_device, import_pylon, open_camera
from .base import SOURCES, Item, Source
from .pylon_settings import CameraSettings

__all__ = ["PylonSource", "frame_gap"]

log = logging.getLogger(__name__)


def frame_gap(last: int | None, frame_id: int) -> int:
    """Frames missing between two consecutive frame-counter values.

    GigE Vision 1.x block ids are 16 bit and skip 0 when they wrap (65535 -> 1);
    a counter that goes back otherwise restarted (camera reset) and counts no gap.

    Example:
        >>> frame_gap(None, 7), frame_gap(7, 8), frame_gap(7, 10), frame_gap(65534, 1), frame_gap(9, 0)
        (0, 0, 2, 1, 0)
    """
    if last is None:
        return 0
    if frame_id > last:
        return frame_id - last - 1
    if last >= 0xFF00 and frame_id < 0x100:
        return (0xFFFF - last) + max(0, frame_id - 1)
    return 0


class _Lost(Exception):
    """The camera stopped answering (removed, reset, closed under the source)."""


@SOURCES.register("pylon")
class PylonSource(Source):
    """One pylon camera, free-running or triggered, with reconnection.

    Args:
        spec: ``pylon``, ``pylon:SERIAL`` or ``pylon:NAME``.
        done: ignored (frame counters restart with every run).
        camera: settings to apply; default: the camera as configured.
        max_frames: stop after this many frames; with software triggers, fire exactly this many.
        backoff_s: first reconnect delay in s; doubles per failed attempt up to ``backoff_max_s``.
        frame_timeout_s: a fired software trigger without a frame after this long is missed.
        drain_s: at stop, wait at most this long for frames already triggered.
    """

    def __init__(self, spec: str, done: Iterable[str] = (), *, camera: CameraSettings | None = None,
                 max_frames: int | None = None, backoff_s: float = 0.5, backoff_max_s: float = 10.0,
                 frame_timeout_s: float = 1.0, drain_s: float = 1.0) -> None:
        super().__init__(spec, ())
        self.name = spec.split(":", 1)[1] if ":" in spec else None
        if self.name == "":
            raise CdoError("empty camera name in --source pylon: (use pylon, pylon:SERIAL or pylon:NAME)")
        self.settings = camera or CameraSettings()
        self.max_frames, self.backoff_s, self.backoff_max_s = max_frames, backoff_s, backoff_max_s
        self.frame_timeout_s, self.drain_s = frame_timeout_s, drain_s
        self.frames = self.triggers = 0
        self.triggered, self.trigger_source = False, "Off"
        self._pylon: Any = None
        self._genicam: Any = None
        self._camera: Any = None
        self._serial: str | None = None
        self._identity: dict[str, Any] = {}
        self._convert: FrameConverter | None = None
        self._lock = threading.RLock()  # guards counters, pending triggers, queued error items
        self._cam_lock = threading.Lock()  # one camera operation from outside the grab loop at a time
        self._pending: deque[tuple[float, float]] = deque()  # fired triggers awaiting a frame: (perf, wall)
        self._events: deque[Item] = deque()  # error items raised outside the grab thread
        self._index = 0
        self._last_id: int | None = None
        self._expired = 0  # triggers reported missed by timeout since the last frame
        self._next_fire = 0.0
        self._stopping = False
        self._what = "not open"

    @classmethod
    def accepts(cls, spec: str) -> bool:
        return spec == "pylon" or spec.startswith("pylon:")

    @property
    def live(self) -> bool:  # type: ignore[override]
        return not self.triggered

    @property
    def camera(self) -> Any:
        """The open ``pypylon.pylon.InstantCamera`` (``None`` while disconnected)."""
        return self._camera

    def health(self) -> dict[str, Any]:
        return {"connected": self._camera is not None, "trigger": self.trigger_source, "triggered": self.triggered}

    @property
    def self_triggering(self) -> bool:
        """Software trigger fired by the source itself (``trigger_interval_s`` set)."""
        return self.trigger_source == "Software" and self.settings.trigger_interval_s is not None

    # -- open / close -------------------------------------------------------
    def open(self) -> None:
        self._pylon, self._genicam = import_pylon()
        info = find_device(self._pylon, self.name if self._serial is None else self._serial)
        self._serial = device_property(info, "SerialNumber")
        self._identity = {"camera": self._serial, "model": device_property(info, "ModelName")}
        if device_property(info, "UserDefinedName"):
            self._identity["camera_name"] = device_property(info, "UserDefinedName")
        camera = open_camera(self._pylon, self._genicam, info, self.settings)
        try:
            self._read_mode(camera)
            self._convert = self._convert or FrameConverter(self._pylon)
            camera.StartGrabbing(self._pylon.GrabStrategy_OneByOne)
        except self._genicam.GenericException as e:
            camera.Close()
            raise CdoError(f"pylon camera {camera_name(camera)}: cannot start grabbing: {e}") from None
        self._camera, self._last_id = camera, None
        self._next_fire = time.perf_counter()
        log.info("%s", self.describe())

    def _read_mode(self, camera: Any) -> None:
        nm, g = camera.GetNodeMap(), self._genicam
        sel, mode = nm.GetNode("TriggerSelector"), nm.GetNode("TriggerMode")
        if sel is not None and g.IsWritable(sel) and "FrameStart" in list(sel.Symbolics):
            sel.SetValue("FrameStart")
        self.triggered = mode is not None and g.IsAvailable(mode) and mode.GetValue() == "On"
        self.trigger_source = nm.GetNode("TriggerSource").GetValue() if self.triggered else "Off"
        fmt = camera.PixelFormat.GetValue() if g.IsAvailable(nm.GetNode("PixelFormat")) else "?"
        self._what = (f"{fmt} {camera.Width.GetValue()}x{camera.Height.GetValue()}, "
                      f"trigger {self.trigger_source}")

    def describe(self) -> str:
        return f"pylon camera {self._identity.get('model', '')} {self._serial or self.name or ''} ({self._what})"

    def _release(self) -> None:
        cam, self._camera = self._camera, None
        if cam is None:
            return
        for step in (cam.StopGrabbing, cam.Close, cam.DestroyDevice):
            try:
                step()
            except Exception as e:  # a lost device may refuse; nothing left to save
                log.debug("pylon %s: %s", step.__name__, e)

    def close(self) -> None:
        with self._cam_lock:
            self._release()
        log.info("pylon camera %s: %d frames, %d software triggers, %d missed, %d dropped, %d reconnects",
                 self._serial, self.frames, self.triggers, self.missed, self.dropped, self.reconnects)

    # -- software trigger ---------------------------------------------------
    def trigger(self, timeout_s: float = 1.0) -> bool:
        """Fire one software trigger; thread-safe (a PLC hook may call it while ``run`` grabs).

        Waits up to ``timeout_s`` for the camera to be ready. A trigger that cannot be
        fired (camera busy, disconnected) becomes an error record and counts as missed.

        Returns:
            Whether the trigger was fired.

        Raises:
            CdoError: the camera is not in software-trigger mode, or the source stopped.
        """
        if self.trigger_source != "Software":
            raise CdoError(f"{self.describe()}: trigger() needs --trigger software")
        if self._stopping:
            raise CdoError(f"{self.describe()}: stopped; no more triggers")
        with self._cam_lock:
            with self._lock:
                self.triggers += 1
            cam, fired = self._camera, None
            if cam is None:
                self._missed(1, "software trigger while the camera is disconnected")
                return False
            try:
                if cam.WaitForFrameTriggerReady(int(timeout_s * 1e3), self._pylon.TimeoutHandling_Return):
                    fired = (time.perf_counter(), time.time())
                    with self._lock:  # pending before the trigger: its frame may come at once
                        self._pending.append(fired)
                    cam.ExecuteSoftwareTrigger()
                    return True
                why = f"camera not ready for a trigger within {timeout_s * 1e3:.0f} ms (still exposing/reading out)"
            except self._genicam.GenericException as e:
                why = f"software trigger failed: {str(e).splitlines()[0]}"
                with self._lock:
                    if fired is not None and fired in self._pending:
                        self._pending.remove(fired)
            self._missed(1, why)
            return False

    # -- records ------------------------------------------------------------
    def _item(self, frame_id: int | None, **kw: Any) -> Item:
        with self._lock:
            sid = f"pylon:{self._serial}#{self._index}"
            self._index += 1
        kw.setdefault("t_acquired", time.time())
        kw.setdefault("t_mono", time.perf_counter())
        return Item(sid, frame=frame_id, **kw)

    def _missed(self, n: int, why: str, **meta: Any) -> None:
        with self._lock:
            self.missed += n
            self._events.append(self._item(None, error=f"missed {n} part(s): {why}",
                                           source_meta={**self._identity, "missed": n, **meta}))
        log.warning("pylon camera %s: missed %d part(s): %s", self._serial, n, why)

    def _flush(self, emit: Callable[[Item], None]) -> None:
        while True:
            with self._lock:
                if not self._events:
                    return
                item = self._events.popleft()
            emit(item)

    # -- acquisition --------------------------------------------------------
    def run(self, emit: Callable[[Item], None], stop: threading.Event) -> None:
        if self._camera is None:
            self.open()
        try:
            while not stop.is_set() and not self._finished():
                try:
                    self._step(emit)
                except _Lost as e:
                    if not self._reconnect(emit, stop, str(e)):
                        break
            self._stopping = True
            if self._camera is not None and self.triggered and stop.is_set():
                self._drain(emit)
        finally:
            self._stopping = True
            self._flush(emit)

    def _finished(self) -> bool:
        if self.max_frames is None:
            return False
        if self.self_triggering:
            return self.triggers >= self.max_frames and not self._pending
        return self.frames >= self.max_frames

    def _step(self, emit: Callable[[Item], None], timeout_ms: int = 100) -> None:
        self._flush(emit)
        if self.self_triggering and (self.max_frames is None or self.triggers < self.max_frames):
            interval = self.settings.trigger_interval_s or 0.0
            now = time.perf_counter()
            if (interval == 0 and not self._pending) or (interval > 0 and now >= self._next_fire):
                self._next_fire = max(self._next_fire + interval, now)
                self.trigger(self.frame_timeout_s)
                self._flush(emit)
            if interval > 0:
                timeout_ms = max(1, min(timeout_ms, int((self._next_fire - time.perf_counter()) * 1e3)))
        self._retrieve(emit, timeout_ms)

    def _retrieve(self, emit: Callable[[Item], None], timeout_ms: int) -> bool:
        cam, P = self._camera, self._pylon
        try:
            result = cam.RetrieveResult(timeout_ms, P.TimeoutHandling_Return)
        except self._genicam.GenericException as e:
            raise _Lost(str(e).splitlines()[0]) from None
        if not result.IsValid():
            if not cam.IsPylonDeviceAttached() or cam.IsCameraDeviceRemoved() or not cam.IsOpen() \
                    or not cam.IsGrabbing():
                raise _Lost("device removed" if cam.IsCameraDeviceRemoved() else "device closed, grabbing stopped")
            self._expire_triggers()
            return False
        self._handle(result, emit)
        return True

    def _expire_triggers(self) -> None:
        with self._lock:
            late = 0
            while self._pending and time.perf_counter() - self._pending[0][0] > self.frame_timeout_s:
                self._pending.popleft()
                late += 1
            self._expired += late
        if late:
            self._missed(late, f"software trigger fired but no frame within {self.frame_timeout_s:g} s")

    def _handle(self, result: Any, emit: Callable[[Item], None]) -> None:
        t_recv = time.perf_counter()
        image, error = None, None
        try:
            frame_id = int(result.GetBlockID())
            meta = {**self._identity, "frame_id": frame_id, "image_number": int(result.GetImageNumber()),
                    "camera_timestamp": int(result.GetTimeStamp())}
            if result.GrabSucceeded():
                assert self._convert is not None  # set in open()
                image = self._convert(result)
            else:
                error = f"frame {frame_id} incomplete: {result.GetErrorDescription()} (0x{result.GetErrorCode():08x})"
            skipped = int(result.GetNumberOfSkippedImages())
        finally:
            result.Release()  # the buffer goes back to the driver before the frame is queued
        gap = frame_gap(self._last_id, frame_id) + skipped
        self._last_id = frame_id
        with self._lock:
            for _ in range(min(gap, len(self._pending))):  # the oldest triggers were the lost frames'
                self._pending.popleft()
            t_trig, wall = self._pending.popleft() if self._pending else (t_recv, time.time())
            # triggers already reported as expired are among the gap; any left produced no frame at all
            gap, self._expired = gap - min(gap, self._expired), 0
        if gap and self.triggered:
            self._missed(gap, f"the camera's frame counter jumped to {frame_id}: {gap} frame(s) before it never "
                         "arrived (buffer underrun or transfer loss)", frame_ids=[frame_id - gap, frame_id - 1])
        elif gap:
            self.dropped += gap
        self._flush(emit)
        if error is not None:
            self._missed(1, error, frame_id=frame_id)
            self._flush(emit)
            return
        self.frames += 1
        emit(self._item(frame_id, t_acquired=wall, t_mono=t_trig, image=image, source_meta=meta,
                        read_ms=(time.perf_counter() - t_trig) * 1e3))

    def _drain(self, emit: Callable[[Item], None]) -> None:
        """After stop: receive what was triggered; software triggers left unanswered are missed."""
        deadline = time.perf_counter() + self.drain_s
        try:
            while time.perf_counter() < deadline:
                if self.trigger_source == "Software" and not self._pending:
                    break
                left = int((deadline - time.perf_counter()) * 1e3)
                if not self._retrieve(emit, max(1, min(left, 200))) and self.trigger_source != "Software":
                    break  # hardware trigger: nothing arrived for 200 ms, nothing in flight
        except _Lost as e:
            log.warning("pylon camera %s lost while finishing: %s", self._serial, e)
        with self._lock:
            left_over, self._pending = len(self._pending), deque()
        if left_over:
            self._missed(left_over, f"triggered before stop, no frame within {self.drain_s:g} s")

    def _reconnect(self, emit: Callable[[Item], None], stop: threading.Event, reason: str) -> bool:
        lost_at = time.perf_counter()
        with self._cam_lock, self._lock:
            self._release()
            pending, self._pending = len(self._pending), deque()
            self.missed += pending
            self._events.append(self._item(None, error=f"camera {self._serial} lost ({reason}); "
                                           f"{pending} triggered frame(s) lost with it; reconnecting",
                                           source_meta={**self._identity, "event": "camera_lost", "missed": pending}))
        self._flush(emit)
        delay = self.backoff_s
        while not stop.is_set():
            self.reconnects += 1
            log.warning("pylon camera %s lost (%s); reconnecting in %.1f s (attempt %d)",
                        self._serial, reason, delay, self.reconnects)
            if stop.wait(delay):
                return False
            try:
                with self._cam_lock:
                    self.open()
            except (CdoError, self._genicam.GenericException) as e:
                reason = str(e).splitlines()[0]
                delay = min(delay * 2, self.backoff_max_s)
                continue
            log.warning("pylon camera %s back after %.1f s outage; settings reapplied",
                        self._serial, time.perf_counter() - lost_at)
            return True
        return False
