"""The output stage: the primary record first, then every other sink, each isolated.

For each group of results that leaves the pipeline (in acquisition order):

1. every sink may :meth:`~cdo_deploy.sinks.Sink.prepare` each record (e.g. the
   overlay sink names the picture it will write);
2. the primary sink (``results.jsonl``) appends and fsyncs the whole group.
   If that fails the run stops: the exception propagates, nothing else sees the
   group, and the parts are inspected again after a restart;
3. only then does each secondary sink (overlay, csv, mqtt, route) get each
   result. A secondary sink that raises is logged once per kind of failure
   (sink + exception type + errno), counted in ``sink_errors`` and never stops
   the pipeline or another sink; sinks retry themselves where that makes sense
   (MQTT redelivers, CSV keeps unwritten rows).

Example:
    >>> from cdo_deploy.sinks import JsonlSink, OverlaySink
    >>> stage = OutputStage([OverlaySink("out/overlays"), JsonlSink("out/results.jsonl")])
    >>> [type(s).__name__ for s in stage.primary], stage.errors.counts
    (['JsonlSink'], {'overlay': 0})
"""

from __future__ import annotations

import errno
import logging
import threading
from typing import Any, Sequence

import numpy as np

from .results import Prediction
from .sinks.base import Sink, sink_name
from .sources.base import Item

__all__ = ["OutputStage", "SinkErrors"]

log = logging.getLogger(__name__)


class SinkErrors:
    """Per-sink failure counts; each kind of failure is logged once (thread-safe)."""

    def __init__(self, names: Sequence[str]) -> None:
        self.counts: dict[str, int] = {n: 0 for n in names}
        self._kinds: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def record(self, name: str, what: str, exc: BaseException) -> None:
        kind = type(exc).__name__
        code = exc.errno if isinstance(exc, OSError) else None
        if code is not None and code in errno.errorcode:
            kind += f"/{errno.errorcode[code]}"
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + 1
            first = (name, kind) not in self._kinds
            self._kinds.add((name, kind))
        if first:
            log.error("%s sink failed for %s (%s: %s); results.jsonl has the record. Further %s failures "
                      "of this kind are counted (sink_errors in summary.json), not logged",
                      name, what, kind, exc, name)
        else:
            log.debug("%s sink failed for %s: %s", name, what, exc)

    def total(self) -> int:
        return sum(self.counts.values())


class OutputStage:
    """Opens, feeds and closes the sinks; the primary ones first and un-isolated.

    Args:
        sinks: in the order secondary sinks are called; ``Sink.primary`` ones
            (``JsonlSink``) are pulled out and written first.
    """

    def __init__(self, sinks: Sequence[Sink]) -> None:
        self.sinks = list(sinks)
        self.primary = [s for s in self.sinks if s.primary]
        self.secondary = [s for s in self.sinks if not s.primary]
        self.names = {id(s): sink_name(s) for s in self.sinks}
        self.errors = SinkErrors([self.names[id(s)] for s in self.sinks if not s.primary])
        self._opened: list[Sink] = []

    def open(self) -> None:
        """Open every sink; on a failure close those already open and re-raise."""
        try:
            for sink in self.sinks:
                sink.open()
                self._opened.append(sink)
        except BaseException:
            self.close()
            raise

    def emit(self, group: Sequence[tuple[Prediction, Item, np.ndarray | None]]) -> None:
        """Record a group of results, primary first (its exception propagates), then the others."""
        for sink in self.sinks:
            for pred, item, image in group:
                self._isolated(sink, "prepare", pred, item, image is not None)
        for sink in self.primary:
            write_group = getattr(sink, "write_group", None)
            if write_group is not None:
                write_group([pred for pred, _, _ in group])
            else:
                for pred, item, image in group:
                    sink.write(pred, item, image)
        for pred, item, image in group:
            for sink in self.secondary:
                self._isolated(sink, "write", pred, item, image)

    def _isolated(self, sink: Sink, method: str, pred: Prediction, *args: Any) -> None:
        try:
            getattr(sink, method)(pred, *args)
        except Exception as e:  # noqa: BLE001 - a secondary output never stops the line
            self.errors.record(self.names[id(sink)], pred.source, e)

    def event(self, kind: str, doc: dict[str, Any]) -> None:
        """Tell every secondary sink about a run event (each isolated, failures counted)."""
        for sink in self.secondary:
            try:
                sink.event(kind, doc)
            except Exception as e:  # noqa: BLE001 - a secondary output never stops the line
                self.errors.record(self.names[id(sink)], f"the {kind} event", e)

    def status(self) -> dict[str, int]:
        """Merged ``Sink.status()`` counters (e.g. ``mqtt_pending``)."""
        out: dict[str, int] = {}
        for sink in self.sinks:
            try:
                out.update(sink.status())
            except Exception:  # noqa: BLE001
                log.debug("status of %s failed", self.names[id(sink)], exc_info=True)
        return out

    def close(self) -> None:
        """Close every opened sink (each isolated), primary last so its fsync is the final word."""
        for sink in sorted(self._opened, key=lambda s: s.primary):
            try:
                sink.close()
            except Exception:  # noqa: BLE001
                log.exception("closing the %s sink failed", self.names[id(sink)])
        self._opened = []
