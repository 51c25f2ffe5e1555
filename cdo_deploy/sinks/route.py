"""Moving input files after inspection: ``quarantine/`` for unreadable ones,
optionally ``ok/`` and ``ng/`` by decision.

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

__all__ = ["RouteSink", "move_unique"]

log = logging.getLogger(__name__)


def move_unique(src: Path, folder: Path) -> Path:
    """Move ``src`` into ``folder`` without overwriting; return the new path."""
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / src.name
    n = 0
    while dst.exists():
        n += 1
        dst = folder / f"{src.stem}_{n}{src.suffix}"
    shutil.move(str(src), str(dst))
    return dst


@SINKS.register("route")
class RouteSink(Sink):
    """Move files: errors to ``quarantine/`` (if ``quarantine``), OK/NG to ``ok/``/``ng/`` (if ``route``)."""

    def __init__(self, out_dir: str | Path, route: bool = False, quarantine: bool = True) -> None:
        self.out_dir = Path(out_dir)
        self.folders: dict[str, str] = {}
        if quarantine:
            self.folders["error"] = "quarantine"
        if route:
            self.folders.update(NG="ng", OK="ok")
        self.moved = 0

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
        dst = move_unique(item.path, self.out_dir / folder)  # OSError: counted by the output stage; the file stays
        self.moved += 1
        log.log(logging.WARNING if key == "error" else logging.DEBUG, "%s -> %s", item.path, dst)
