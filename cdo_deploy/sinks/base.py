"""Sink base class and the sinks registry.

A sink receives every :class:`~cdo_deploy.results.Prediction` (error records
included) in the output thread, in this order: overlay, jsonl, csv, mqtt,
route. Sinks that draw need the decoded original image; they say so with
``needs_image`` and the pipeline keeps it until the output stage.

Example:
    >>> from cdo_deploy.sinks import SINKS
    >>> SINKS.list()
    ['csv', 'jsonl', 'mqtt', 'overlay', 'route']
"""

from __future__ import annotations

import abc
import os
from typing import IO, ClassVar

import numpy as np

from ..registry import Registry
from ..results import Prediction
from ..sources.base import Item

__all__ = ["SINKS", "Sink", "fsync_close"]

SINKS: Registry[type["Sink"]] = Registry("sink")


class Sink(abc.ABC):
    """Consumes predictions; ``open`` before the run, ``close`` after it (flush there)."""

    needs_image: ClassVar[bool] = False

    def open(self) -> None:
        """Prepare files/connections; raise ``CdoError`` when impossible."""

    @abc.abstractmethod
    def write(self, pred: Prediction, item: Item, image: np.ndarray | None) -> None:
        """Handle one result. ``image`` is the decoded original when ``needs_image``."""

    def close(self) -> None:
        """Flush and release; called once, also after errors."""


def fsync_close(f: IO) -> None:
    """Flush, fsync and close a sink's file, so its last records survive a power loss."""
    f.flush()
    os.fsync(f.fileno())
    f.close()
