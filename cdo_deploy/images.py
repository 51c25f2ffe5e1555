"""Image files: the one suffix list, the one image-file test and the one mask matcher.

Training (:mod:`cdo_train.data`), ``cdo-bench --data`` (:mod:`cdo_deploy.labelled`) and the
line's file sources (:mod:`cdo_deploy.sources`) use these, so a file the line inspects can be
trained on and a mask found by training is found by the benchmark.

Mask preference order (:func:`find_mask`), for an image ``<stem>.<ext>``:
    1. the folders in the order given (the caller puts the most specific first);
    2. in one folder, ``<stem>_mask`` before ``<stem>`` (MVTec's name before anomalib's);
    3. the suffix ``.png`` first, then the other image suffixes in alphabetical order,
       each as written and in upper case.

Example:
    >>> is_image_file("part_001.PNG"), is_image_file(".part.png"), is_image_file("notes.txt")
    (True, False, False)
    >>> mask_names("000")
    ('000_mask', '000')
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

__all__ = ["IMAGE_SUFFIXES", "find_mask", "is_image_file", "mask_names"]

#: file suffixes treated as images (case-insensitive); anything else is ignored.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".dib", ".tif", ".tiff", ".webp",
                            ".pgm", ".ppm", ".pbm", ".pnm", ".jp2", ".exr", ".hdr", ".pfm"})

_MASK_SUFFIXES = (".png", *sorted(IMAGE_SUFFIXES - {".png"}))


def is_image_file(path: str | Path) -> bool:
    """Image suffix (any case), not hidden (``.DS_Store``, ``._x.png``), not a temporary ``~`` file.

    Looks at the name only: callers listing a folder check ``is_file()`` themselves.
    """
    name = Path(path).name
    return (not name.startswith(".") and not name.endswith("~")
            and Path(name).suffix.lower() in IMAGE_SUFFIXES)


def mask_names(stem: str) -> tuple[str, str]:
    """The mask file stems for image stem ``stem``, preferred first."""
    return f"{stem}_mask", stem


def find_mask(stem: str, folders: Iterable[Path]) -> Path | None:
    """The mask of image ``<stem>.*``: the first match in the preference order (module docstring).

    Args:
        stem: the image's file name without suffix.
        folders: the folders to search, most specific first; missing ones are skipped.

    Returns:
        The mask file, or ``None`` when no folder holds one.
    """
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        for name in mask_names(stem):
            for suffix in _MASK_SUFFIXES:
                for cand in (folder / (name + suffix), folder / (name + suffix.upper())):
                    if cand.is_file():
                        return cand
    return None
