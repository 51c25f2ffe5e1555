"""Run statistics: the live status line and the end-of-run summary.

Counts records (OK, NG, errors), dropped frames, failures per secondary sink
(``sink_errors``) and the sinks' own counters (``sink_status``, e.g. MQTT
messages not yet confirmed by the broker), and keeps the last 4096
end-to-end latencies for p50/p99 and the completion times of the last few
seconds for the current FPS, and feeds the scores of OK parts to the drift
monitor (:mod:`cdo_deploy.drift`) when there is one. Thread-safe.

Example:
    >>> s = RunStats()
    >>> s.summary().processed
    0
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .drift import DriftMonitor
from .results import Prediction

__all__ = ["RunStats", "Summary"]


@dataclass
class Summary:
    """Totals of a run; latencies are end-to-end (acquisition to output) in ms.

    ``dropped``: frames a live source let go (inference behind, free-run camera);
    ``missed``: parts of a triggered camera that got an error record instead of a
    decision (frame-counter gap, incomplete frame, trigger not taken); ``errors``
    counts those records too.
    """

    processed: int = 0
    ok: int = 0
    ng: int = 0
    errors: int = 0
    dropped: int = 0
    missed: int = 0
    skipped_already_processed: int = 0
    reconnects: int = 0
    elapsed_s: float = 0.0
    fps: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    infer_p50_ms: float | None = None
    sink_errors: dict[str, int] = field(default_factory=dict)
    sink_status: dict[str, int] = field(default_factory=dict)
    drift: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        """One line: ``processed 6 | OK 3 | NG 3 | errors 0 | dropped 0 | 41.2 img/s | p50 3.1 ms | p99 9.0 ms``."""
        lat = ("-" if self.p50_ms is None else f"p50 {self.p50_ms:.1f} ms | p99 {self.p99_ms:.1f} ms")
        skipped = self.skipped_already_processed
        extra = f" | missed {self.missed}" if self.missed else ""
        extra += f" | skipped {skipped} already processed" if skipped else ""
        extra += f" | reconnects {self.reconnects}" if self.reconnects else ""
        failed = {k: v for k, v in self.sink_errors.items() if v}
        if failed:
            extra += " | sink errors " + ", ".join(f"{k} {v}" for k, v in failed.items())
        extra += "".join(f" | {k.replace('_', ' ')} {v}" for k, v in self.sink_status.items() if v)
        if self.drift.get("state") in ("ok", "warn", "alarm"):
            extra += f" | drift {self.drift['state']} ({self.drift.get('shift') or 0:+.1f} sd)"
        return (f"processed {self.processed} | OK {self.ok} | NG {self.ng} | errors {self.errors} | "
                f"dropped {self.dropped}{extra} | {self.fps:.1f} img/s | {lat}")


class RunStats:
    """Thread-safe counters of a pipeline run (``drift``: fed the scores of OK parts)."""

    def __init__(self, window_s: float = 5.0, keep: int = 4096, drift: DriftMonitor | None = None) -> None:
        self.drift = drift
        self._lock = threading.Lock()
        self._t0 = time.monotonic()
        self._window_s = window_s
        self._done_times: deque[float] = deque()  # completion times within the last window_s only
        self._latency: deque[float] = deque(maxlen=keep)
        self._infer: deque[float] = deque(maxlen=keep)
        self.ok = self.ng = self.errors = 0
        self.dropped = self.missed = self.skipped = self.reconnects = 0
        self.sink_errors: dict[str, int] = {}
        self.sink_status: dict[str, int] = {}

    def record(self, pred: Prediction) -> tuple[str, str] | None:
        """Count one result; returns ``(old, new)`` when it changed the drift state."""
        change = None
        with self._lock:
            if pred.error is not None:
                self.errors += 1
            else:
                if pred.is_ng:
                    self.ng += 1
                else:
                    self.ok += 1
                    if self.drift is not None:
                        change = self.drift.add(pred.score)
                self._latency.append(pred.times.total)
                self._infer.append(pred.times.infer)
            now = time.monotonic()
            self._done_times.append(now)
            while self._done_times[0] < now - self._window_s:
                self._done_times.popleft()
        return change

    def summary(self) -> Summary:
        with self._lock:
            now = time.monotonic()
            elapsed = now - self._t0
            recent = [t for t in self._done_times if t >= now - self._window_s]
            lat = np.asarray(self._latency, dtype=np.float64)
            inf = np.asarray(self._infer, dtype=np.float64)
            processed = self.ok + self.ng + self.errors
            span = min(self._window_s, elapsed)
            fps = len(recent) / span if span > 0 else 0.0
            return Summary(
                processed=processed, ok=self.ok, ng=self.ng, errors=self.errors, dropped=self.dropped,
                missed=self.missed, skipped_already_processed=self.skipped, reconnects=self.reconnects,
                elapsed_s=round(elapsed, 3),
                fps=round(fps, 2),
                p50_ms=round(float(np.percentile(lat, 50)), 3) if lat.size else None,
                p99_ms=round(float(np.percentile(lat, 99)), 3) if lat.size else None,
                infer_p50_ms=round(float(np.percentile(inf, 50)), 3) if inf.size else None,
                sink_errors=dict(self.sink_errors), sink_status=dict(self.sink_status),
                drift=self.drift.status().to_dict() if self.drift is not None else {},
            )

    def final_summary(self) -> Summary:
        """Summary with FPS over the whole run instead of the recent window."""
        s = self.summary()
        if s.elapsed_s > 0:
            s.fps = round(s.processed / s.elapsed_s, 2)
        return s
