"""Read-only view of a running pipeline: what ``/api/state``, ``/metrics`` and ``/healthz`` show.

Every call takes a consistent snapshot from the pipeline's own counters
(:class:`~cdo_deploy.status.RunStats`, the same numbers as the status line and
``summary.json``), the queue lengths, the source's device state and the live
sink (:class:`~cdo_deploy.sinks.LiveSink`); it holds each lock only to copy.

Example:
    >>> view = LineView(pipeline, live_sink, {"bundle": "bundle", "variant": "fp32"})  # doctest: +SKIP
    >>> view.state()["summary"]["processed"]                                        # doctest: +SKIP
    42
"""

from __future__ import annotations

import time
from typing import Any

from ..pipeline import Pipeline
from ..sinks import LiveSink
from ..sources import SOURCES

__all__ = ["LineView"]


class LineView:
    """What the HTTP server may read of a run.

    Args:
        pipeline: the running pipeline.
        live: its live sink (recent parts, latency histograms).
        info: bundle facts shown as they are (``bundle``, ``variant``, ``backend``, ``device``).
    """

    def __init__(self, pipeline: Pipeline, live: LiveSink, info: dict[str, Any]) -> None:
        self.pipeline, self.live = pipeline, live
        thr = pipeline.inspector.thresholds
        src = pipeline.source
        self.info = {**info, "model_sha256": pipeline.inspector.model_sha256, "image_threshold": thr.image,
                     "pixel_threshold": thr.pixel, "threshold_source": thr.source,
                     "source": src.describe(),
                     "source_kind": next((n for n in SOURCES if SOURCES.get(n) is type(src)), type(src).__name__)}
        self.started = time.time()
        self.finished = False

    def healthy(self) -> tuple[bool, str]:
        """(healthy, why): unhealthy once a stage failed or the run has ended."""
        if self.pipeline.failure is not None:
            return False, f"failed: {self.pipeline.failure}"
        if self.finished:
            return False, "finished"
        return True, "running"

    def queues(self) -> dict[str, int]:
        p = self.pipeline
        return {"acquired": len(p.q_acq), "preprocessed": p.q_pre.qsize(), "inferred": p.q_post.qsize()}

    def state(self, recent: bool = True) -> dict[str, Any]:
        """Everything the page shows, JSON-serialisable."""
        summary = self.pipeline.stats.summary()
        ok, why = self.healthy()
        doc: dict[str, Any] = {
            "time": time.time(), "started": self.started, "healthy": ok, "health": why, "info": self.info,
            "summary": summary.to_dict(), "queues": self.queues(), "device": self.pipeline.source.health(),
        }
        if recent:
            doc["recent"] = self.live.recent()
        return doc
