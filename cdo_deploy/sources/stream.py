"""Stream source: cameras, video files, RTSP/HTTP URLs and GStreamer pipelines (OpenCV).

``--source`` forms:
    ``camera:0``                        V4L2/DirectShow device 0
    ``part_run.avi`` / ``.mp4`` ...     a video file, read frame by frame (never drops)
    ``rtsp://...``, ``http(s)://...``   network streams through FFmpeg
    ``gst:v4l2src ! ... ! appsink``     a GStreamer pipeline (``gst:`` prefix or `` ! `` in it)

Live sources (all but video files) reconnect after the stream drops, with
exponential back-off (``backoff_s`` doubling up to ``backoff_max_s``), and are
marked ``live`` so the pipeline drops the oldest frames when inference falls
behind. Frames get ids ``"<spec>#<n>"``; for video files a frame id already in
the results log is skipped (a re-run resumes); live frame numbers restart at 0
with each run (records carry the time).

Example:
    >>> StreamSource.accepts("camera:0"), StreamSource.accepts("rtsp://cam/1")
    (True, True)
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Callable, Iterable

from ..errors import CdoError
from .base import SOURCES, Item, Source

__all__ = ["StreamSource", "VIDEO_SUFFIXES"]

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset({".avi", ".mp4", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".webm",
                            ".mjpeg", ".mjpg", ".h264", ".h265", ".ts"})
_URL_PREFIXES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")


def _is_gst(spec: str) -> bool:
    return spec.startswith("gst:") or " ! " in spec


@SOURCES.register("stream")
class StreamSource(Source):
    """An OpenCV ``VideoCapture`` with reconnection.

    Args:
        spec: see module docstring.
        done: frame ids already processed.
        max_frames: stop after this many frames (``None``: until the end / forever).
        backoff_s: first reconnect delay in s; doubles per failed attempt.
        backoff_max_s: longest delay between attempts.
        open_timeout_ms: open/read timeout passed to OpenCV for network streams.
    """

    def __init__(self, spec: str, done: Iterable[str] = (), *, max_frames: int | None = None,
                 backoff_s: float = 0.5, backoff_max_s: float = 10.0, open_timeout_ms: int = 10000) -> None:
        super().__init__(spec, done)
        self.max_frames = max_frames
        self.backoff_s, self.backoff_max_s = backoff_s, backoff_max_s
        self.open_timeout_ms = open_timeout_ms
        self.is_file = os.path.splitext(spec)[1].lower() in VIDEO_SUFFIXES and not spec.startswith(_URL_PREFIXES)
        self._cap: Any = None

    @property
    def live(self) -> bool:  # type: ignore[override]
        return not self.is_file

    @classmethod
    def accepts(cls, spec: str) -> bool:
        return (spec.startswith("camera:") or spec.startswith(_URL_PREFIXES) or _is_gst(spec)
                or os.path.splitext(spec)[1].lower() in VIDEO_SUFFIXES)

    def _capture(self) -> Any:
        import cv2

        s = self.spec
        if s.startswith("camera:"):
            try:
                index = int(s.split(":", 1)[1])
            except ValueError:
                raise CdoError(f"bad camera source {s!r} (use camera:N, e.g. camera:0)") from None
            return cv2.VideoCapture(index)
        if _is_gst(s):
            return cv2.VideoCapture(s[4:] if s.startswith("gst:") else s, cv2.CAP_GSTREAMER)
        if s.startswith(_URL_PREFIXES):
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, self.open_timeout_ms,
                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, self.open_timeout_ms]
            return cv2.VideoCapture(s, cv2.CAP_FFMPEG, params)
        if not os.path.isfile(s):
            raise CdoError(f"video file not found: {s}")
        return cv2.VideoCapture(s)

    def open(self) -> None:
        cap = self._capture()
        if not cap.isOpened():
            cap.release()
            what = "camera" if self.spec.startswith("camera:") else "stream"
            raise CdoError(f"cannot open {what} {self.spec!r} (check the device/URL, permissions, "
                           "and that no other program holds it)")
        self._cap = cap

    def describe(self) -> str:
        return f"{'video file' if self.is_file else 'live stream'} {self.spec}"

    def _reconnect(self, stop: threading.Event) -> bool:
        delay = self.backoff_s
        while not stop.is_set():
            self.reconnects += 1
            log.warning("%s dropped; reconnecting in %.1f s (attempt %d)", self.spec, delay, self.reconnects)
            if stop.wait(delay):
                return False
            try:
                cap = self._capture()
            except CdoError as e:
                log.warning("%s", e)
                cap = None
            if cap is not None and cap.isOpened():
                log.info("%s reconnected", self.spec)
                self._cap = cap
                return True
            if cap is not None:
                cap.release()
            delay = min(delay * 2, self.backoff_max_s)
        return False

    def run(self, emit: Callable[[Item], None], stop: threading.Event) -> None:
        if self._cap is None:
            self.open()
        index = 0
        while not stop.is_set():
            if self.max_frames is not None and index >= self.max_frames:
                break
            t0 = time.perf_counter()
            ok, frame = self._cap.read()
            if not ok or frame is None:
                if self.is_file:
                    log.info("%s: end of video after %d frames", self.spec, index)
                    break
                self._cap.release()
                if not self._reconnect(stop):
                    break
                continue
            source_id = f"{self.spec}#{index}"
            if self.is_file and source_id in self.done:
                self.skipped += 1
            else:
                emit(Item(source_id, time.time(), t0, image=frame, frame=index,
                          read_ms=(time.perf_counter() - t0) * 1e3))
            index += 1

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
