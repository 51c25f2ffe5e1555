"""Sink base class, the sinks registry and the append-only file the file sinks share.

A sink receives every :class:`~cdo_deploy.results.Prediction` (error records
included) in the output thread. The *primary* sink (``results.jsonl``) writes
and fsyncs each group of records first; only then do the secondary sinks
(overlay, csv, mqtt, route) see them, each isolated from the others (see
:mod:`cdo_deploy.output`). Before the primary write every sink may
:meth:`Sink.prepare` a record (e.g. name the overlay picture it will write).
Sinks that draw need the decoded original image; they say so with
``needs_image`` and the pipeline keeps it until the output stage.

Example:
    >>> from cdo_deploy.sinks import SINKS
    >>> SINKS.list()
    ['csv', 'jsonl', 'live', 'mqtt', 'overlay', 'route']
"""

from __future__ import annotations

import abc
import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..registry import Registry
from ..results import Prediction
from ..sources.base import Item

__all__ = ["GROUP_MAX", "SINKS", "AppendFile", "Sink", "sink_name"]

SINKS: Registry[type["Sink"]] = Registry("sink")


class Sink(abc.ABC):
    """Consumes predictions; ``open`` before the run, ``close`` after it (flush there)."""

    needs_image: ClassVar[bool] = False
    #: the record of truth: written (and fsynced) before any other sink sees a result; its failure stops the run
    primary: ClassVar[bool] = False

    def open(self) -> None:
        """Prepare files/connections; raise ``CdoError`` when impossible."""

    def prepare(self, pred: Prediction, item: Item, has_image: bool) -> None:
        """Before the primary record is written: add fields to ``pred.extra`` (no I/O here)."""

    @abc.abstractmethod
    def write(self, pred: Prediction, item: Item, image: np.ndarray | None) -> None:
        """Handle one result. ``image`` is the decoded original when ``needs_image``."""

    def status(self) -> dict[str, int]:
        """Counters for the status line and ``summary.json`` (e.g. messages not yet delivered)."""
        return {}

    def event(self, kind: str, doc: dict[str, Any]) -> None:
        """A run event (e.g. ``drift`` when the drift state changes); most sinks ignore it."""

    def close(self) -> None:
        """Flush and release; called once, also after errors."""


#: most results the output stage records with one fsync (one group); the MQTT sink relies on it too
GROUP_MAX = 64


def sink_name(sink: Sink) -> str:
    """Registered name of a sink's class (its class name when not registered)."""
    return next((n for n in SINKS if SINKS.get(n) is type(sink)), type(sink).__name__)


class AppendFile:
    """An append-only UTF-8 file that never keeps half a write.

    Each :meth:`append` goes to the kernel at once (unbuffered), so it survives
    the process being killed; with ``fsync`` it also survives a power loss.
    A write that fails (disk full, I/O error) is cut back to the previous end
    of the file before the error is re-raised, so what was written before stays
    intact and the file always ends with a complete line. A line torn by an
    earlier crash is terminated when the file is opened.

    Example:
        >>> import tempfile, pathlib
        >>> f = AppendFile(pathlib.Path(tempfile.mkdtemp()) / "log.jsonl"); f.open()
        >>> f.append('{"a": 1}\\n', fsync=True); f.size
        9
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.size = 0
        self._fd: int | None = None

    def open(self) -> None:
        """Create parent folders and open for appending (raises ``OSError``)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.size = os.fstat(self._fd).st_size
        if self.size and not _ends_with_newline(self.path):
            self.append("\n")  # terminate a line torn by a crash

    def append(self, text: str, fsync: bool = False) -> None:
        """Append ``text`` completely or not at all (raises ``OSError`` after cutting back)."""
        if self._fd is None:
            raise RuntimeError(f"{self.path}: append() before open()")
        data = memoryview(text.encode("utf-8"))
        try:
            done = 0
            while done < len(data):
                done += os.write(self._fd, data[done:])
            if fsync:
                os.fsync(self._fd)
        except OSError:
            try:
                os.ftruncate(self._fd, self.size)
            except OSError:
                pass
            raise
        self.size += len(data)

    def fsync(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)

    def close(self) -> None:
        """fsync and close (idempotent)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
