"""``results.jsonl``: the append-only log, and the source of truth on restart.

One JSON object per line and per image or frame (see
``Prediction.to_record``), written and fsynced per group of records before any
other sink sees them. A line cut short by a crash (power loss) is skipped by
:func:`read_log` and terminated before the next append; a write that fails
(disk full) is cut back; so the log always parses. :func:`read_log` returns
the source ids already recorded, which the sources skip (nothing is processed
twice, even after a restart), and what produced them (model file hash and
thresholds), so that a run refuses to resume into another bundle's results.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import CdoError
from ..results import Prediction
from ..sources.base import Item
from .base import SINKS, AppendFile, Sink

__all__ = ["JsonlSink", "ResultsLog", "read_done", "read_log", "read_tail", "record_line"]

log = logging.getLogger(__name__)


@dataclass
class ResultsLog:
    """What a results log holds: the sources done and what produced their records.

    Attributes:
        done: source ids recorded.
        producers: (model_sha256, image_threshold, pixel_threshold) -> record count; records
            written before cdo recorded the model count under ``(None, None, None)``.
        records: complete records read.
    """

    done: set[str] = field(default_factory=set)
    producers: dict[tuple, int] = field(default_factory=dict)
    records: int = 0


def read_log(path: str | Path) -> ResultsLog:
    """Read a results log (missing file: empty; unreadable lines, e.g. torn by a crash, skipped)."""
    path = Path(path)
    out = ResultsLog()
    if not path.exists():
        return out
    bad = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                out.done.add(rec["source"])
            except (ValueError, KeyError, TypeError):
                bad += 1
                continue
            key = (rec.get("model_sha256"), rec.get("image_threshold"), rec.get("pixel_threshold"))
            if key[0] is None:
                key = (None, None, None)
            out.producers[key] = out.producers.get(key, 0) + 1
            out.records += 1
    if bad:
        log.warning("%s: skipped %d unreadable line(s) (interrupted write?)", path, bad)
    return out


def read_done(path: str | Path) -> set[str]:
    """Source ids recorded in a results log (missing file: empty set; bad lines skipped)."""
    return read_log(path).done


def record_line(pred: Prediction) -> str:
    """The results.jsonl line of a result (no newline); MQTT publishes the same text
    (:meth:`Prediction.to_line`: serialised once, so MQTT sends the bytes the JSONL sink wrote)."""
    return pred.to_line()


def read_tail(path: str | Path, max_bytes: int = 1 << 20) -> list[tuple[dict, str]]:
    """The last complete records of a results log (at most ``max_bytes`` read): (record, line) pairs."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - max_bytes))
        data = f.read()
    lines = data.decode("utf-8", errors="replace").split("\n")
    if size > max_bytes:
        lines = lines[1:]  # probably cut in the middle
    out = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append((rec, line))
    return out


@SINKS.register("jsonl")
class JsonlSink(Sink):
    """Append records to a JSON-lines file: the primary record.

    Each group of records (what the output stage has ready, at most one
    micro-batch or so) is written in one append and fsynced before any other
    sink sees it. A failed write (disk full, I/O error) is cut back, so the
    file keeps only complete records, and raises ``CdoError``: the run stops,
    because a result that cannot be recorded would be lost.

    Args:
        path: the log file (parent folders are created).
    """

    primary = True

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.count = 0
        self._file = AppendFile(self.path)

    def open(self) -> None:
        try:
            self._file.open()
        except OSError as e:
            raise CdoError(f"cannot open results log {self.path}: {e.strerror or e}") from None

    def write(self, pred: Prediction, item: Item, image: np.ndarray | None) -> None:
        self.write_group([pred])

    def write_group(self, preds: Sequence[Prediction]) -> None:
        """Append and fsync the records of ``preds`` (all or none of them).

        Raises:
            CdoError: the write failed; the file is as it was before the call.
        """
        text = "".join(record_line(p) + "\n" for p in preds)
        try:
            self._file.append(text, fsync=True)
        except OSError as e:
            raise CdoError(
                f"cannot write {self.path}: {e.strerror or e}; the records written before are intact and the "
                f"{len(preds)} results not recorded are inspected again after a restart "
                "(free the disk, then restart cdo-inspect)") from None
        self.count += len(preds)

    def close(self) -> None:
        self._file.close()
