"""Image sources: a watched folder, cameras/streams/video files, file lists, pylon cameras.

``open_source`` picks the kind from the ``--source`` string: ``pylon[:SERIAL|:NAME]``
-> ``pylon`` (GenICam/Basler cameras, the ``cdo[pylon]`` extra); camera, URL,
GStreamer pipeline or video file -> ``stream``; a directory -> ``folder``; a
glob, ``@list.txt`` or an image file -> ``files``.

Example:
    >>> from cdo_deploy.sources import classify_source
    >>> classify_source("camera:0"), classify_source("lot/*.png")
    ('stream', 'files')
"""

from __future__ import annotations

import os
from typing import Any, Iterable

from ..errors import CdoError
from .base import IMAGE_SUFFIXES, SOURCES, Item, Source, is_image_file
from .files import FilesSource
from .folder import FolderSource
from .pylon import PylonSource
from .pylon_settings import CameraSettings
from .stream import VIDEO_SUFFIXES, StreamSource

__all__ = [
    "IMAGE_SUFFIXES",
    "SOURCES",
    "VIDEO_SUFFIXES",
    "CameraSettings",
    "FilesSource",
    "FolderSource",
    "Item",
    "PylonSource",
    "Source",
    "StreamSource",
    "classify_source",
    "is_image_file",
    "open_source",
]

_ORDER = ("pylon", "stream", "folder", "files")


def classify_source(spec: str) -> str:
    """Registered source name for a ``--source`` string.

    Raises:
        CdoError: nothing accepts it (e.g. a path that does not exist).
    """
    for name in _ORDER:
        if SOURCES.get(name).accepts(spec):
            return name
    if not os.path.exists(spec):
        raise CdoError(f"source not found: {spec!r} (expected a folder, an image/video file, a glob, "
                       "@list.txt, camera:N, an rtsp:// or http:// URL, a GStreamer pipeline, or pylon[:SERIAL])")
    raise CdoError(f"unsupported source {spec!r}: not an image or video file "
                   f"(images: {', '.join(sorted(IMAGE_SUFFIXES))}; videos: {', '.join(sorted(VIDEO_SUFFIXES))})")


def open_source(spec: str, done: Iterable[str] = (), **options: Any) -> Source:
    """Create and open the source for ``spec``; options not taken by that kind are ignored.

    Raises:
        CdoError: unknown kind, missing path, unreadable camera/stream.
    """
    import inspect

    cls = SOURCES.get(classify_source(spec))
    params = inspect.signature(cls.__init__).parameters
    src = cls(spec, done, **{k: v for k, v in options.items() if k in params and v is not None})
    src.open()
    return src
