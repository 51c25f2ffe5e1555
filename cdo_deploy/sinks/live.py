"""The live sink: in-memory state of the last parts for the operator page and ``/metrics``.

It is the last secondary sink of a run with ``--http`` (see
:mod:`cdo_deploy.web`). Per result it does only cheap work in the output
thread, under one short lock:

* latency histograms per stage (``decode``, ``preprocess``, ``infer``,
  ``postprocess``, ``queue``, ``output``) and end to end, in seconds with
  fixed buckets (:data:`LATENCY_BUCKETS_S`). ``output`` is the time from the
  start of the output stage for the part (every sink's ``prepare``) to its turn
  at this sink: the fsynced ``results.jsonl`` write and the other sinks;
* a ring of the last ``keep`` parts: a few record fields, a strided copy of
  the image no longer than ``thumb_side`` pixels (no filtering: ~10 us for a
  VGA frame, ~0.5 ms for 5 MP, so only while a page is open: someone asked
  for :meth:`LiveSink.recent` within ``watch_s``) and, for NG parts, the
  anomaly map at model resolution.

Thumbnails (with the heat-map tint of the overlay pictures,
:func:`~cdo_deploy.sinks.overlay.blend_heatmap`, on NG parts; the page shows
decision and score beside it) are JPEG-encoded lazily by
:meth:`LiveSink.thumbnail`, in the HTTP server's thread when the page asks for
one, and cached per part.

Example:
    >>> import numpy as np
    >>> from cdo_deploy.results import Prediction
    >>> from cdo_deploy.sources.base import Item
    >>> sink = LiveSink(keep=4)
    >>> p = Prediction("/in/a.png", 0.9, True, np.ones((8, 8), np.float32), (64, 64), image_threshold=0.5,
    ...                pixel_threshold=0.5)
    >>> sink.prepare(p, Item("/in/a.png", 0.0, 0.0), True)
    >>> sink.write(p, Item("/in/a.png", 0.0, 0.0), np.zeros((64, 64, 3), np.uint8))
    >>> [(part["n"], part["decision"], part["name"]) for part in sink.recent()]
    [(1, 'NG', 'a.png')]
    >>> sink.thumbnail(1)[:2] == b"\\xff\\xd8"  # a JPEG
    True
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

import numpy as np

from ..results import Prediction, json_float
from ..sources.base import Item
from .base import SINKS, Sink

__all__ = ["LATENCY_BUCKETS_S", "STAGES", "Histogram", "LiveSink"]

#: upper bounds of the latency histogram buckets, seconds (+Inf is implied)
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
#: metric stage name -> ``StageTimes`` field (``output`` is measured by the sink itself)
STAGES = {"decode": "read", "preprocess": "pre", "infer": "infer", "postprocess": "post", "queue": "queue",
          "output": None}


class Histogram:
    """Bucket counts, sum and count of observations (guarded by the owner's lock)."""

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS_S) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """``[(le, cumulative count), ..., ("+Inf", count)]`` as Prometheus wants them."""
        out, total = [], 0
        for bound, n in zip(self.bounds + (math.inf,), self.counts):
            total += n
            out.append(("+Inf" if math.isinf(bound) else repr(bound), total))
        return out


_Buckets = tuple[list[tuple[str, int]], float]


@dataclass
class _Part:
    n: int
    info: dict[str, Any]
    thumb: np.ndarray | None
    scale: int
    amap: np.ndarray | None = None  # NG parts: the anomaly map at model resolution
    pixel_threshold: float = 0.0
    jpeg: bytes | None = None


@SINKS.register("live")
class LiveSink(Sink):
    """Keeps what the operator page and ``/metrics`` show; never writes anything.

    Args:
        keep: how many recent parts to keep.
        thumb_side: longest side of the kept image copy, pixels.
        color_order: channel order of the decoded images.
        watch_s: keep image copies only this long after the last :meth:`recent` (an open page polls).
    """

    needs_image = True

    def __init__(self, keep: int = 12, thumb_side: int = 240, color_order: str = "BGR", watch_s: float = 10.0) -> None:
        self.keep, self.thumb_side, self.color_order, self.watch_s = keep, thumb_side, color_order, watch_s
        self._watched_until = time.monotonic() + watch_s  # the first parts have pictures
        self.stages = {name: Histogram() for name in STAGES}
        self.total = Histogram()
        self._parts: deque[_Part] = deque(maxlen=keep)
        self._started: dict[int, float] = {}
        self._n = 0
        self._lock = threading.Lock()

    def prepare(self, pred: Prediction, item: Item, has_image: bool) -> None:
        self._started[id(pred)] = time.perf_counter()

    def write(self, pred: Prediction, item: Item, image: np.ndarray | None) -> None:
        started = self._started.pop(id(pred), None)
        output_s = 0.0 if started is None else time.perf_counter() - started
        scale, thumb = 1, None
        if image is not None and pred.error is None and time.monotonic() < self._watched_until:
            scale = max(1, math.ceil(max(image.shape[:2]) / self.thumb_side))
            thumb = np.ascontiguousarray(image[::scale, ::scale])
        amap = pred.anomaly_map if pred.is_ng and pred.error is None else None
        thr = pred.pixel_threshold if pred.pixel_threshold is not None else pred.score
        t = pred.times
        info = {"name": PurePath(pred.source.split("#", 1)[0]).name + (f"#{pred.frame}" if pred.frame is not None
                                                                       else ""),
                "source": pred.source, "decision": pred.decision or "ERROR", "score": json_float(pred.score),
                "time": pred.time, "latency_ms": json_float(t.total, 2), "regions": len(pred.regions),
                "error": pred.error, "thumb": thumb is not None}
        with self._lock:
            for name, field_ in STAGES.items():
                self.stages[name].observe(output_s if field_ is None else getattr(t, field_) / 1e3)
            self.total.observe(t.total / 1e3)
            self._n += 1
            info["n"] = self._n
            self._parts.append(_Part(self._n, info, thumb, scale, amap, float(thr)))

    def recent(self) -> list[dict[str, Any]]:
        """The kept parts, newest first (``n`` numbers them from 1 in this run); keeps pictures coming."""
        self._watched_until = time.monotonic() + self.watch_s
        with self._lock:
            return [dict(p.info) for p in reversed(self._parts)]

    def histograms(self) -> tuple[dict[str, _Buckets], _Buckets]:
        """Per stage and end to end: (cumulative buckets, sum of seconds)."""
        with self._lock:
            return ({k: (h.cumulative(), h.sum) for k, h in self.stages.items()},
                    (self.total.cumulative(), self.total.sum))

    def thumbnail(self, n: int) -> bytes | None:
        """JPEG of kept part ``n`` (heat-map overlay for NG parts); ``None`` when gone or without image."""
        with self._lock:
            part = next((p for p in self._parts if p.n == n), None)
        if part is None or part.thumb is None:
            return None
        if part.jpeg is None:  # encoded once, here (the HTTP thread), never in the output thread
            import cv2

            from ..preprocess import to_bgr_uint8
            from .overlay import blend_heatmap

            pic = to_bgr_uint8(part.thumb, self.color_order)
            if part.amap is not None:
                amap = cv2.resize(part.amap, (pic.shape[1], pic.shape[0]), interpolation=cv2.INTER_LINEAR)
                pic = blend_heatmap(pic, amap, part.pixel_threshold)
            ok, buf = cv2.imencode(".jpg", pic, [cv2.IMWRITE_JPEG_QUALITY, 80])
            part.jpeg = bytes(buf) if ok else b""
        return part.jpeg or None
