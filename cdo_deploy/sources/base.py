"""Source base class, the acquired ``Item`` and the sources registry.

A source is opened in the calling thread (so a bad path or an unreadable
camera fails at once with a ``CdoError``) and then ``run`` in the acquisition
thread, handing each item to ``emit`` until it is exhausted or ``stop`` is set.
``live`` sources (cameras, network streams) may drop frames when inference
falls behind; file sources never drop.

Example:
    >>> from cdo_deploy.sources import SOURCES
    >>> SOURCES.list()
    ['files', 'folder', 'pylon', 'stream']
"""

from __future__ import annotations

import abc
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable

import numpy as np

from ..images import IMAGE_SUFFIXES, is_image_file
from ..registry import Registry

__all__ = ["IMAGE_SUFFIXES", "Item", "SOURCES", "Source", "is_image_file"]

SOURCES: Registry[type["Source"]] = Registry("source")



@dataclass
class Item:
    """One acquired image, not yet decoded or pre-processed.

    Attributes:
        source_id: absolute file path, or ``"<stream>#<frame>"``.
        t_acquired: ``time.time()`` when the file was ready / the frame grabbed.
        t_mono: ``time.perf_counter()`` at the same moment (latency base).
        path: the file, for file sources (used for quarantine and routing).
        data: encoded file bytes (file sources), decoded later.
        image: decoded frame (stream sources), BGR uint8.
        frame: frame index for streams.
        read_ms: time spent reading the file / grabbing the frame.
        error: set when acquisition already failed (e.g. listed file missing).
        source_meta: per-frame metadata the source attaches to the record, JSON-serialisable
            (e.g. a camera's ``{"camera_id": ..., "frame_number": ..., "camera_timestamp_ns": ...}``);
            it is copied to ``Prediction.source_meta`` and carried by results.jsonl, CSV and MQTT.
    """

    source_id: str
    t_acquired: float
    t_mono: float
    path: Path | None = None
    data: bytes | None = None
    image: np.ndarray | None = None
    frame: int | None = None
    read_ms: float = 0.0
    error: str | None = None
    source_meta: dict[str, Any] = field(default_factory=dict)


class Source(abc.ABC):
    """An image/frame producer.

    Args:
        spec: what the user passed to ``--source``.
        done: source ids already in the results log; they are skipped.
    """

    #: may drop frames when the pipeline falls behind
    live: ClassVar[bool] = False
    #: yields files that may be moved to quarantine/ or ok/ ng/
    files: ClassVar[bool] = False

    def __init__(self, spec: str, done: Iterable[str] = ()) -> None:
        self.spec = spec
        self.done = set(done)
        self.skipped = 0
        self.reconnects = 0
        #: frames the source itself lost (e.g. camera frame-counter gaps in free-run)
        self.dropped = 0
        #: parts that never got a result although they must (triggered camera); each has an error record
        self.missed = 0

    @classmethod
    @abc.abstractmethod
    def accepts(cls, spec: str) -> bool:
        """Whether ``spec`` names this kind of source."""

    def open(self) -> None:
        """Check/open the source in the caller's thread; raise ``CdoError`` if unusable."""

    @abc.abstractmethod
    def run(self, emit: Callable[[Item], None], stop: threading.Event) -> None:
        """Produce items until exhausted or ``stop`` is set."""

    def close(self) -> None:
        """Release the source."""

    def describe(self) -> str:
        return f"{type(self).__name__}({self.spec})"

    def health(self) -> dict[str, Any]:
        """What the source knows of its device, for monitoring (e.g. ``{"connected": True, "trigger": "Line1"}``)."""
        return {}
