"""Folder source: images that camera software writes into a directory.

A file is read only when completely written and never twice:

1. Candidates come from ``watchdog`` events (created/modified/moved/closed) and,
   as a safety net against lost events in bursts, a rescan every ``rescan_s``.
2. A file is *ready* when its (size, mtime) has not changed for ``settle_s``
   seconds, or sooner when a close-after-write event arrived and it stayed
   unchanged for one poll interval.
3. It is read, then stat'ed again; if it changed meanwhile it waits again. A
   JPEG/PNG without its end marker waits until ``settle_s`` has passed, then is
   emitted anyway and becomes an error record (quarantined).
4. Emitted paths are remembered; paths already in the results log (``done``)
   are skipped, so a restart never processes a file twice.
5. While watching, paths no longer in the folder (moved to ``ok/``/``ng/`` by
   ``--route``, or deleted) are forgotten at the rescans, so memory follows
   the folder's content, not the number of parts inspected.

Identity is the path while the file is there: a file overwritten in place is
not read again, so the camera software must write unique names (a name reused
after the first file left the folder is read as a new part). Non-image files
(by suffix), hidden files and the output folder are ignored.
Files present at start-up are processed only with ``once`` or
``include_existing`` (use it when restarting after a stop).

Example:
    >>> src = FolderSource("/data/incoming", once=True)    # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from ..errors import CdoError
from ..preprocess import is_complete
from .base import IMAGE_SUFFIXES, SOURCES, Item, Source, is_image_file

__all__ = ["FolderSource"]

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    key: tuple[int, int] | None = None
    since: float = 0.0
    closed: bool = False


@SOURCES.register("folder")
class FolderSource(Source):
    """Watch a directory (recursively) for new image files.

    Args:
        spec: the directory.
        done: source ids already processed (from the results log).
        once: process the files already there, then stop (no watching).
        include_existing: also process files already there, then keep watching.
        settle_s: seconds a file's size/mtime must stay unchanged.
        rescan_s: seconds between safety-net rescans while watching.
        poll_s: readiness check interval.
        recursive: include sub-folders.
        exclude: folders to ignore (the output folder when it is inside).
    """

    files = True
    #: paths remembered before the gone ones are forgotten (and only when they outnumber the folder 2:1)
    forget_min = 1024

    def __init__(self, spec: str, done: Iterable[str] = (), *, once: bool = False, include_existing: bool = False,
                 settle_s: float = 0.5, rescan_s: float = 2.0, poll_s: float = 0.05, recursive: bool = True,
                 exclude: Iterable[str | Path] = ()) -> None:
        super().__init__(spec, done)
        self.root = os.path.abspath(spec)
        self.once, self.include_existing = once, include_existing
        self.settle_s, self.rescan_s, self.poll_s = settle_s, rescan_s, poll_s
        self.recursive = recursive
        self.exclude = tuple(os.path.abspath(e) + os.sep for e in exclude)
        self._ignored: set[str] = set()
        self._seen: set[str] = set()
        self._events: queue.SimpleQueue[tuple[str, bool]] = queue.SimpleQueue()
        #: watching without include_existing: the files present when the source was opened (left alone);
        #: a file that arrives later is new, also one that arrives before the watch has started
        self._baseline: set[str] | None = None

    @classmethod
    def accepts(cls, spec: str) -> bool:
        return os.path.isdir(spec)

    def open(self) -> None:
        if not os.path.isdir(self.root):
            raise CdoError(f"source folder not found: {self.spec}")
        if self.once:
            files = [p for p in self._scan() if not p.startswith(self.exclude)]
            if not any(is_image_file(p) for p in files):
                raise CdoError(f"--once: no image files in {self.root} ({len(files)} other file(s)); nothing to "
                               f"inspect (images: {', '.join(sorted(IMAGE_SUFFIXES))})")
        elif not self.include_existing:
            self._baseline = set(self._scan())

    @property
    def ignored(self) -> int:
        """Number of non-image files seen and ignored."""
        return len(self._ignored)

    def describe(self) -> str:
        mode = "once" if self.once else "watch" + (" +existing" if self.include_existing else "")
        return f"folder {self.root} ({mode})"

    # -- candidates ---------------------------------------------------------
    def _eligible(self, path: str) -> bool:
        if path.startswith(self.exclude) or path in self._seen:
            return False
        if path in self.done:
            self._seen.add(path)
            self.skipped += 1  # already in the results log: counted once, never read
            return False
        if not is_image_file(path):
            if path not in self._ignored:
                self._ignored.add(path)
                log.debug("ignoring non-image file %s", path)
            return False
        return True

    def _scan(self) -> list[str]:
        out: list[str] = []
        stack = [self.root]
        while stack:
            d = stack.pop()
            try:
                entries = sorted(os.scandir(d), key=lambda e: e.name)
            except OSError as e:
                log.warning("cannot list %s: %s", d, e)
                continue
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    if self.recursive and not (entry.path + os.sep).startswith(self.exclude):
                        stack.append(entry.path)
                elif entry.is_file():
                    out.append(os.path.abspath(entry.path))
        return out

    def _on_event(self, event) -> None:  # watchdog observer thread
        if event.is_directory:
            return
        kind = event.event_type
        if kind in ("created", "modified", "closed"):
            path = event.src_path
        elif kind == "moved":
            path = event.dest_path
        else:
            return
        path = os.fsdecode(path)
        self._events.put((os.path.abspath(path), kind == "closed"))

    # -- readiness ----------------------------------------------------------
    def _service(self, pending: dict[str, _Pending], emit: Callable[[Item], None], stop: threading.Event) -> None:
        for path, p in list(pending.items()):
            if stop.is_set():
                return
            now = time.time()
            try:
                st = os.stat(path)
            except FileNotFoundError:
                del pending[path]
                continue
            except OSError as e:
                log.warning("cannot stat %s: %s", path, e)
                continue
            key = (st.st_size, st.st_mtime_ns)
            if key != p.key:
                p.since = min(now, st.st_mtime) if p.key is None else now
                p.key = key
                continue
            stable = now - p.since
            if stable < self.settle_s and not (p.closed and stable >= self.poll_s):
                continue
            item = self._read(path, key, stable)
            if item is None:
                p.key, p.since = None, now
                continue
            del pending[path]
            self._seen.add(path)
            emit(item)

    def _read(self, path: str, key: tuple[int, int], stable: float) -> Item | None:
        t0 = time.perf_counter()
        try:
            with open(path, "rb") as f:
                data = f.read()
            st = os.stat(path)
        except FileNotFoundError:
            return None
        except OSError as e:
            return Item(path, time.time(), t0, path=Path(path), error=f"cannot read file: {e}")
        if (st.st_size, st.st_mtime_ns) != key:
            return None  # still being written
        if not is_complete(data, path) and stable < self.settle_s:
            return None  # maybe still being written; the decoder reports it after settle_s
        return Item(path, time.time(), t0, path=Path(path), data=data, read_ms=(time.perf_counter() - t0) * 1e3)

    def _forget_gone(self, present: set[str], baseline: set[str]) -> None:
        """Forget paths no longer in the folder (moved by --route, deleted): memory follows the folder.

        A file written later under such a name is a new part. Emissions happen
        in this same thread, after the scan, so a file still being processed is present.
        """
        for known in (self._seen, self.done, baseline, self._ignored):
            if len(known) > self.forget_min and len(known) > 2 * len(present):
                known.intersection_update(present)

    def _add(self, pending: dict[str, _Pending], path: str, closed: bool = False) -> None:
        if path in pending:
            pending[path].closed = pending[path].closed or closed
        elif self._eligible(path):
            pending[path] = _Pending(closed=closed)

    # -- main loop ----------------------------------------------------------
    def run(self, emit: Callable[[Item], None], stop: threading.Event) -> None:
        pending: dict[str, _Pending] = {}
        if self.once:
            for path in self._scan():
                self._add(pending, path)
            log.info("folder %s: %d files to process", self.root, len(pending))
            while pending and not stop.is_set():
                self._service(pending, emit, stop)
                if pending:
                    stop.wait(self.poll_s)
            return
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        handler = FileSystemEventHandler()
        handler.on_any_event = self._on_event  # type: ignore[method-assign]
        observer = Observer()
        observer.schedule(handler, self.root, recursive=self.recursive)
        observer.start()
        try:
            # what "already there" means: the files present when the source was opened (run without open():
            # now); everything else found now arrived since and is new
            baseline: set[str] = set()
            if not self.include_existing:
                baseline = self._baseline if self._baseline is not None else set(self._scan())
            for path in self._scan():
                if path not in baseline:
                    self._add(pending, path)
            log.info("watching %s (%d existing files %s)", self.root,
                     len(pending) if self.include_existing else len(baseline),
                     "queued" if self.include_existing else "left alone")
            existing = sum(1 for p in baseline if is_image_file(p) and not p.startswith(self.exclude))
            if existing:
                log.warning("watching %s for new images; the %d image(s) already there are skipped: add --once to "
                            "inspect them and exit, or --include-existing to inspect them and keep watching",
                            self.root, existing)
            next_rescan = time.monotonic() + self.rescan_s
            while not stop.is_set():
                while True:
                    try:
                        path, closed = self._events.get_nowait()
                    except queue.Empty:
                        break
                    if path not in baseline:
                        self._add(pending, path, closed)
                if time.monotonic() >= next_rescan:
                    present = self._scan()
                    self._forget_gone(set(present), baseline)
                    for path in present:
                        if path not in baseline and path not in pending:
                            self._add(pending, path)
                    next_rescan = time.monotonic() + self.rescan_s
                self._service(pending, emit, stop)
                stop.wait(self.poll_s)
        finally:
            observer.stop()
            observer.join(5)
