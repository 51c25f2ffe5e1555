"""Image and mask reading for training and evaluation: a thin user of the line's image path.

``read_image`` is :func:`cdo_deploy.preprocess.read_image_file` followed by
:func:`cdo_deploy.preprocess.to_model_input`, the functions ``cdo-inspect``,
``cdo-bench`` and ``load_run().predict`` call, so training sees the bytes the line
sees. It always returns 8-bit RGB, whatever is on disk: grey, grey+alpha, BGR,
BGRA, 16-bit (value / 257), float TIFF (``[0, 1]`` if its maximum is <= 1, else
``[0, 255]``) and paletted files (expanded by the decoder); the rules are in
:mod:`cdo_deploy.preprocess`. ``read_mask`` returns a boolean defect mask (any
colour channel ``> 0`` is a defect pixel). Unreadable, missing, truncated or
non-image files raise ``CdoError`` naming the file. The suffix list and
``is_image_file`` are :mod:`cdo_deploy.images`' (one list for training and the line).

Example:
    >>> import tempfile, cv2, numpy as np
    >>> from pathlib import Path
    >>> p = Path(tempfile.mkdtemp()) / "grey.png"
    >>> _ = cv2.imwrite(str(p), np.full((4, 6), 200, np.uint8))
    >>> read_image(p).shape, read_image(p, size=8).shape
    ((4, 6, 3), (8, 8, 3))
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

import cv2
import numpy as np

from cdo_deploy.errors import CdoError
from cdo_deploy.images import IMAGE_SUFFIXES, is_image_file
from cdo_deploy.preprocess import interpolation, read_image_file, to_mask, to_model_input

__all__ = ["IMAGE_EXTENSIONS", "Size", "is_image_file", "read_image", "read_mask", "resize", "target_hw"]

IMAGE_EXTENSIONS: frozenset[str] = IMAGE_SUFFIXES
"""Lower-case suffixes treated as images (matched case-insensitively): ``cdo_deploy.images.IMAGE_SUFFIXES``."""

Size = Union[int, tuple[int, int], None]
"""``None`` (keep), ``s`` (resize to ``(s, s)``) or ``(height, width)``."""


def target_hw(size: Size, shape: tuple[int, ...]) -> tuple[int, int]:
    """``(height, width)`` for ``size``; ``None`` keeps ``shape[:2]``.

    Raises:
        CdoError: ``size`` is not a valid size.
    """
    if size is None:
        return int(shape[0]), int(shape[1])
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        hw = (int(size), int(size))
    elif (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size)
    ):
        hw = (int(size[0]), int(size[1]))
    else:
        raise CdoError(f"invalid image size {size!r}: use an int, a (height, width) pair of ints, or None")
    if min(hw) < 1:
        raise CdoError(f"invalid image size {size!r}: both sides must be >= 1 pixel")
    return hw


def resize(array: np.ndarray, size: Size, nearest: bool = False) -> np.ndarray:
    """Resize an image or mask array to ``size`` with the image path's interpolation rule.

    Args:
        array: ``(H, W)`` or ``(H, W, C)`` array.
        size: ``None`` (returned unchanged), ``s`` for ``(s, s)`` or ``(height, width)``.
        nearest: use nearest-neighbour (masks). Otherwise :func:`cdo_deploy.preprocess.interpolation`
            (``INTER_AREA`` when either side shrinks, else ``INTER_LINEAR``).

    Returns:
        The resized array, same dtype, shape ``(h, w)`` or ``(h, w, C)``.

    Raises:
        CdoError: ``size`` is not a valid size.
    """
    hw = target_hw(size, array.shape)
    if hw == array.shape[:2]:
        return array
    interp = cv2.INTER_NEAREST if nearest else interpolation(array.shape[:2], hw)
    out = cv2.resize(array, (hw[1], hw[0]), interpolation=interp)
    if array.ndim == 3 and out.ndim == 2:  # cv2 drops a trailing single channel
        out = out[:, :, None]
    return out


def read_image(path: Path | str, size: Size = None) -> np.ndarray:
    """Read an image file as the model input, 8-bit RGB.

    Args:
        path: image file (any suffix of ``IMAGE_EXTENSIONS``).
        size: ``None`` to keep the file's size, ``s`` for ``(s, s)`` or ``(height, width)``.

    Returns:
        ``(H, W, 3)`` ``uint8`` RGB array (:func:`cdo_deploy.preprocess.to_model_input`).

    Raises:
        CdoError: the file is missing, unreadable, corrupt, not an image, or ``size`` is invalid.
    """
    raw = read_image_file(path)
    return to_model_input(raw, *target_hw(size, raw.shape))


def read_mask(path: Path | str, size: Size = None) -> np.ndarray:
    """Read a ground-truth mask: any non-zero pixel is a defect.

    Args:
        path: mask file (usually a 0/255 grey PNG; colour masks count a pixel
            as defective when any colour channel is non-zero, alpha is ignored).
        size: as in ``read_image``; masks are resized with nearest neighbour.

    Returns:
        ``(H, W)`` ``bool`` array, ``True`` = defect.

    Raises:
        CdoError: the file is missing, unreadable, corrupt, not an image, or ``size`` is invalid.
    """
    raw = read_image_file(path, "mask")
    return to_mask(raw, target_hw(size, raw.shape))
