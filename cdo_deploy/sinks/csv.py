"""Optional ``results.csv``: one row per image/frame for spreadsheets.

Columns: source, frame, time, score, decision, regions, largest_region_area,
total_ms, error, source_meta (JSON object of the source's per-frame metadata).
Appends (header only when the file is new); each row reaches the kernel at once.
A row that cannot be written (disk full) is kept and written before the next
one (up to ``max_backlog`` rows); the write error is still raised, so the
output stage counts it. ``results.jsonl`` holds every record regardless.

Example:
    >>> CsvSink("out/results.csv").columns[:4]
    ('source', 'frame', 'time', 'score')
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections import deque
from pathlib import Path

import numpy as np

from ..errors import CdoError
from ..results import Prediction
from ..sources.base import Item
from .base import SINKS, AppendFile, Sink

__all__ = ["CsvSink"]

log = logging.getLogger(__name__)


@SINKS.register("csv")
class CsvSink(Sink):
    """Append a CSV row per result."""

    columns = ("source", "frame", "time", "score", "decision", "regions", "largest_region_area",
               "total_ms", "error", "source_meta")

    def __init__(self, path: str | Path, max_backlog: int = 10000) -> None:
        self.path = Path(path)
        self._file = AppendFile(self.path)
        self._backlog: deque[str] = deque()
        self.max_backlog = max_backlog
        self.dropped = 0

    def open(self) -> None:
        try:
            self._file.open()
        except OSError as e:
            raise CdoError(f"cannot open {self.path}: {e.strerror or e}") from None
        if self._file.size == 0:
            self._backlog.append(_row(self.columns))

    def write(self, pred: Prediction, item: Item, image: np.ndarray | None) -> None:
        rec = pred.to_record()
        if len(self._backlog) >= self.max_backlog:
            self._backlog.popleft()
            self.dropped += 1
        self._backlog.append(_row([
            rec["source"], "" if rec["frame"] is None else rec["frame"], rec["time"] or "",
            "" if rec["score"] is None else rec["score"], rec["decision"] or "", len(pred.regions),
            max((r.area for r in pred.regions), default=0), rec["latency_ms"]["total"], rec["error"] or "",
            json.dumps(rec["source_meta"], sort_keys=True) if rec["source_meta"] else "",
        ]))
        self._flush()

    def _flush(self) -> None:
        text = "".join(self._backlog)
        self._file.append(text)  # all rows or none (raises OSError; they stay in the backlog)
        self._backlog.clear()

    def status(self) -> dict[str, int]:
        return {"csv_backlog": len(self._backlog)} if self._backlog else {}

    def close(self) -> None:
        try:
            if self._backlog:
                self._flush()
        except OSError as e:
            log.error("%s: %d row(s) could not be written (%s); results.jsonl has them",
                      self.path, len(self._backlog), e.strerror or e)
        finally:
            self._file.close()


def _row(values) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerow(values)
    return buf.getvalue()
