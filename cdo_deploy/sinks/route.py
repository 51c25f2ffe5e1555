"""Moving input files after inspection: ``quarantine/`` for unreadable ones,
optionally ``ok/`` and ``ng/`` by decision. With ``copy_errors`` (``--once``: a
folder the user owns) unreadable files are copied to ``quarantine/`` instead
and the source folder is left as it was.

Runs last, after the record is in the log, so a crash between the two never
loses a result (the file stays where it was and is known as done). Only file
sources are moved; name clashes get a ``_1``, ``_2``... suffix.

Example:
    >>> RouteSink("out", route=True).folders
    {'error': 'quarantine', 'NG': 'ng', 'OK': 'ok'}
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np

from ..errors import CdoError
from ..results import Prediction
from ..sources.base import Item
from .base import SINKS, Sink

__all__ = ["RouteSink", "move_unique", "unique_path"]

log = logging.getLogger(__name__)


def unique_path(folder: Path, name: str) -> Path:
    """``folder/name``, or ``folder/stem_1.suffix``, ``_2``... when taken (``folder`` is created)."""
    folder.mkdir(parents=True, exist_ok=True)
    dst, stem, suffix = folder / name, Path(name).stem, Path(name).suffix
    n = 0
    while dst.exists():
        n += 1
        dst = folder / f"{stem}_{n}{suffix}"
    return dst


def move_unique(src: Path, folder: Path, copy: bool = False) -> Path:
    """Move (or ``copy``) ``src`` into ``folder`` without overwriting; return the new path."""
    dst = unique_path(folder, src.name)
    if copy:
        shutil.copy2(str(src), str(dst))
    else:
        shutil.move(str(src), str(dst))
    return dst


@SINKS.register("route")
class RouteSink(Sink):
    """Move files: errors to ``quarantine/`` (if ``quarantine``; copied with ``copy_errors``), OK/NG to
    ``ok/``/``ng/`` (if ``route``)."""

    def __init__(self, out_dir: str | Path, route: bool = False, quarantine: bool = True,
                 copy_errors: bool = False) -> None:
        self.out_dir = Path(out_dir)
        self.copy_errors = copy_errors
        self.folders: dict[str, str] = {}
        if quarantine:
            self.folders["error"] = "quarantine"
        if route:
            self.folders.update(NG="ng", OK="ok")
        self.moved = 0
        self.counts: dict[str, int] = {}  # files moved/copied per folder: quarantine, ok, ng

    def open(self) -> None:
        try:
            for name in self.folders.values():
                (self.out_dir / name).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CdoError(f"cannot create {self.out_dir}/...: {e}") from None

    def write(self, pred: Prediction, item: Item, image: np.ndarray | None) -> None:
        if item.path is None:
            return
        key = "error" if pred.error is not None else pred.decision
        folder = self.folders.get(key or "")
        if folder is None:
            return
        copy = key == "error" and self.copy_errors
        dst = move_unique(item.path, self.out_dir / folder, copy)  # OSError: counted by the output stage
        self.moved += 1
        self.counts[folder] = self.counts.get(folder, 0) + 1
        log.log(logging.WARNING if key == "error" else logging.DEBUG, "%s %s %s", item.path,
                "copied to" if copy else "->", dst)
