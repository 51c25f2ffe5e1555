"""Files source for batch jobs: a glob pattern, a list file or one image file.

``--source "lot42/*.png"`` (quote it; ``**`` recurses), ``--source @list.txt``
(one path per line, ``#`` comments) or ``--source part.png``. Files are read in
the given (glob: sorted) order, never dropped; paths already in the results
log are skipped. A listed file that is missing becomes an error record.

Example:
    >>> FilesSource.accepts("lot42/*.png"), FilesSource.accepts("@list.txt")
    (True, True)
"""

from __future__ import annotations

import glob
import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

from ..errors import CdoError
from .base import SOURCES, Item, Source, is_image_file

__all__ = ["FilesSource"]

log = logging.getLogger(__name__)

_GLOB_CHARS = ("*", "?", "[")


@SOURCES.register("files")
class FilesSource(Source):
    """A fixed list of image files."""

    files = True

    def __init__(self, spec: str, done: Iterable[str] = ()) -> None:
        super().__init__(spec, done)
        self.paths: list[str] = []

    @classmethod
    def accepts(cls, spec: str) -> bool:
        if spec.startswith("@") or any(c in spec for c in _GLOB_CHARS):
            return True
        return os.path.isfile(spec) and is_image_file(spec)

    def open(self) -> None:
        if self.spec.startswith("@"):
            listing = Path(self.spec[1:])
            try:
                lines = listing.read_text().splitlines()
            except OSError as e:
                raise CdoError(f"cannot read file list {listing}: {e}") from None
            base = listing.parent
            self.paths = [os.path.abspath(base / ln.strip()) for ln in lines
                          if ln.strip() and not ln.lstrip().startswith("#")]
        elif any(c in self.spec for c in _GLOB_CHARS):
            self.paths = sorted(os.path.abspath(p) for p in glob.glob(self.spec, recursive=True)
                                if os.path.isfile(p) and is_image_file(p))
        else:
            self.paths = [os.path.abspath(self.spec)]
        if not self.paths:
            raise CdoError(f"no image files match {self.spec!r}")

    def describe(self) -> str:
        return f"files {self.spec} ({len(self.paths)})"

    def run(self, emit: Callable[[Item], None], stop: threading.Event) -> None:
        for path in self.paths:
            if stop.is_set():
                return
            if path in self.done:
                self.skipped += 1
                continue
            t0 = time.perf_counter()
            try:
                data = Path(path).read_bytes()
            except OSError as e:
                emit(Item(path, time.time(), t0, error=f"cannot read file: {e.strerror or e}"))
                continue
            emit(Item(path, time.time(), t0, path=Path(path), data=data, read_ms=(time.perf_counter() - t0) * 1e3))
