"""Optional ``results.csv``: one row per image/frame for spreadsheets.

Columns: source, frame, time, score, decision, regions, largest_region_area,
total_ms, error, source_meta (JSON object of the source's per-frame metadata). Appends (header only when the file is new) and flushes per row.

Example:
    >>> CsvSink("out/results.csv").columns[:4]
    ('source', 'frame', 'time', 'score')
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from ..errors import CdoError
from ..results import Prediction
from ..sources.base import Item
from .base import SINKS, Sink, fsync_close

__all__ = ["CsvSink"]


@SINKS.register("csv")
class CsvSink(Sink):
    """Append a CSV row per result."""

    columns = ("source", "frame", "time", "score", "decision", "regions", "largest_region_area",
               "total_ms", "error", "source_meta")

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._f: TextIO | None = None
        self._w: Any = None

    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = not self.path.exists() or self.path.stat().st_size == 0
            self._f = open(self.path, "a", newline="", encoding="utf-8")
        except OSError as e:
            raise CdoError(f"cannot open {self.path}: {e}") from None
        self._w = csv.writer(self._f)
        if new:
            self._w.writerow(self.columns)

    def write(self, pred: Prediction, item: Item, image: np.ndarray | None) -> None:
        rec = pred.to_record()
        self._w.writerow([
            rec["source"], "" if rec["frame"] is None else rec["frame"], rec["time"] or "",
            "" if rec["score"] is None else rec["score"], rec["decision"] or "", len(pred.regions),
            max((r.area for r in pred.regions), default=0), rec["latency_ms"]["total"], rec["error"] or "",
            json.dumps(rec["source_meta"], sort_keys=True) if rec["source_meta"] else "",
        ])
        if self._f is not None:
            self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            fsync_close(self._f)
            self._f = None
