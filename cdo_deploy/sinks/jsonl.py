"""``results.jsonl``: the append-only log, and the source of truth on restart.

One JSON object per line and per image or frame (see
``Prediction.to_record``), flushed after every record and fsync'ed every
``fsync_every_s`` seconds and at shutdown. A line cut short by a crash is
skipped by :func:`read_done` and terminated before the next append, so the log
always parses. ``read_done`` returns the source ids already recorded, which
the sources skip: nothing is processed twice, even after a restart.

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "results.jsonl"
    >>> _ = p.write_text('{"source": "a.png"}\\n{"sour')
    >>> sorted(read_done(p))
    ['a.png']
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import TextIO

import numpy as np

from ..errors import CdoError
from ..results import Prediction
from ..sources.base import Item
from .base import SINKS, Sink, fsync_close

__all__ = ["JsonlSink", "read_done"]

log = logging.getLogger(__name__)


def read_done(path: str | Path) -> set[str]:
    """Source ids recorded in a results log (missing file: empty set; bad lines skipped)."""
    path = Path(path)
    done: set[str] = set()
    if not path.exists():
        return done
    bad = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                done.add(json.loads(line)["source"])
            except (ValueError, KeyError, TypeError):
                bad += 1
    if bad:
        log.warning("%s: skipped %d unreadable line(s) (interrupted write?)", path, bad)
    return done


@SINKS.register("jsonl")
class JsonlSink(Sink):
    """Append records to a JSON-lines file.

    Args:
        path: the log file (parent folders are created).
        fsync_every_s: also fsync at most this often while running (0: every record).
    """

    def __init__(self, path: str | Path, fsync_every_s: float = 1.0) -> None:
        self.path = Path(path)
        self.fsync_every_s = fsync_every_s
        self.count = 0
        self._f: TextIO | None = None
        self._last_sync = 0.0

    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            needs_newline = self.path.exists() and self.path.stat().st_size > 0 and not _ends_with_newline(self.path)
            self._f = open(self.path, "a", encoding="utf-8")
        except OSError as e:
            raise CdoError(f"cannot open results log {self.path}: {e}") from None
        if needs_newline:
            self._f.write("\n")  # terminate a line torn by a crash

    def write(self, pred: Prediction, item: Item, image: np.ndarray | None) -> None:
        if self._f is None:
            raise RuntimeError("JsonlSink.write() before open()")
        self._f.write(json.dumps(pred.to_record(), allow_nan=False, default=_json_default) + "\n")
        self._f.flush()
        self.count += 1
        now = time.monotonic()
        if now - self._last_sync >= self.fsync_every_s:
            os.fsync(self._f.fileno())
            self._last_sync = now

    def close(self) -> None:
        if self._f is not None:
            fsync_close(self._f)
            self._f = None


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _json_default(obj: object) -> object:
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
