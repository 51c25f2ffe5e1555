"""Image and mask reading for training and evaluation (OpenCV, torch-free).

``read_image`` always returns 8-bit RGB, whatever is on disk: grey, grey+alpha,
BGR, BGRA, 16-bit (scaled to 8 bits), float TIFF (``[0, 1]`` or ``[0, 255]``)
and paletted files (expanded by the decoder). ``read_mask`` returns a boolean
defect mask (any channel ``> 0`` is a defect pixel). Unreadable, missing or
non-image files raise ``CdoError`` naming the file.

Files are decoded from bytes (``np.fromfile`` + ``cv2.imdecode``) so that
non-ASCII paths work on every platform.

Example:
    >>> import tempfile, cv2, numpy as np
    >>> from pathlib import Path
    >>> p = Path(tempfile.mkdtemp()) / "grey.png"
    >>> _ = cv2.imwrite(str(p), np.full((4, 6), 200, np.uint8))
    >>> read_image(p).shape, read_image(p, size=8).shape
    ((4, 6, 3), (8, 8, 3))
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Union

import cv2
import numpy as np

from cdo_deploy.errors import CdoError

__all__ = ["IMAGE_EXTENSIONS", "Size", "is_image_file", "read_image", "read_mask", "resize"]

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
"""Lower-case suffixes treated as images (matched case-insensitively)."""

Size = Union[int, tuple[int, int], None]
"""``None`` (keep), ``s`` (resize to ``(s, s)``) or ``(height, width)``."""


def is_image_file(path: Path) -> bool:
    """True for a regular, non-hidden file with an image suffix (any case).

    Hidden files (``.DS_Store``, macOS ``._name.png`` resource forks) are not images.
    """
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".") and path.is_file()


def _target_hw(size: Size) -> tuple[int, int] | None:
    if size is None:
        return None
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
    """Resize an image or mask to ``size``.

    Args:
        array: ``(H, W)`` or ``(H, W, C)`` array.
        size: ``None`` (returned unchanged), ``s`` for ``(s, s)`` or ``(height, width)``.
        nearest: use nearest-neighbour (masks). Otherwise ``INTER_AREA`` when both
            sides shrink or stay, ``INTER_LINEAR`` when either side grows.

    Returns:
        The resized array, same dtype, shape ``(h, w)`` or ``(h, w, C)``.

    Raises:
        CdoError: ``size`` is not a valid size.
    """
    hw = _target_hw(size)
    if hw is None or hw == array.shape[:2]:
        return array
    h, w = array.shape[:2]
    if nearest:
        interp = cv2.INTER_NEAREST
    elif hw[0] <= h and hw[1] <= w:
        interp = cv2.INTER_AREA
    else:
        interp = cv2.INTER_LINEAR
    out = cv2.resize(array, (hw[1], hw[0]), interpolation=interp)
    if array.ndim == 3 and out.ndim == 2:  # cv2 drops a trailing single channel
        out = out[:, :, None]
    return out


def _decode(path: Path | str, what: str) -> np.ndarray:
    path = Path(path)
    if not path.exists():
        raise CdoError(f"{what} not found: {path} (check the dataset path and layout)")
    if not path.is_file():
        raise CdoError(f"{what} is not a file: {path}")
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as e:
        raise CdoError(f"cannot read {what} {path}: {e.strerror or e}") from None
    array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if array is None or array.size == 0:
        raise CdoError(
            f"cannot decode {what} {path}: empty, corrupt or not an image "
            f"(supported: {', '.join(sorted(IMAGE_EXTENSIONS))}); replace or remove the file"
        )
    return array


def _to_uint8(array: np.ndarray, path: Path | str) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.uint16:
        return np.round(array.astype(np.float32) / 257.0).astype(np.uint8)
    if array.dtype == np.int8:
        return (array.astype(np.int16) + 128).astype(np.uint8)
    if array.dtype == np.int16:
        return np.round((array.astype(np.float32) + 32768.0) / 257.0).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating):
        a = np.nan_to_num(array.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        scale = 255.0 if a.size and float(a.max()) <= 1.0 else 1.0
        return np.clip(np.round(a * scale), 0, 255).astype(np.uint8)
    raise CdoError(f"unsupported pixel type {array.dtype} in {path}: save it as 8- or 16-bit PNG")


def read_image(path: Path | str, size: Size = None) -> np.ndarray:
    """Read an image file as 8-bit RGB.

    Args:
        path: image file (png, jpg, jpeg, bmp, tif, tiff).
        size: ``None`` to keep the file's size, ``s`` for ``(s, s)`` or ``(height, width)``.
            Shrinking uses ``INTER_AREA``, enlarging ``INTER_LINEAR``.

    Returns:
        ``(H, W, 3)`` ``uint8`` RGB array. Alpha is dropped; 16-bit values are
        scaled by ``1/257``; grey is replicated to three channels.

    Raises:
        CdoError: the file is missing, unreadable, corrupt, not an image, or ``size`` is invalid.
    """
    array = _to_uint8(_decode(path, "image"), path)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        rgb = cv2.cvtColor(array, cv2.COLOR_GRAY2RGB)
    elif array.ndim == 3 and array.shape[2] == 2:  # grey + alpha
        rgb = cv2.cvtColor(np.ascontiguousarray(array[:, :, 0]), cv2.COLOR_GRAY2RGB)
    elif array.ndim == 3 and array.shape[2] == 3:
        rgb = cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    elif array.ndim == 3 and array.shape[2] == 4:
        rgb = cv2.cvtColor(array, cv2.COLOR_BGRA2RGB)
    else:
        raise CdoError(f"unsupported image layout {array.shape} in {path}: expected grey, RGB or RGBA")
    return np.ascontiguousarray(resize(rgb, size))


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
    array = _decode(path, "mask")
    if array.ndim == 3:
        channels = array.shape[2]
        array = array[:, :, : 3 if channels >= 3 else 1].max(axis=2)
    if np.issubdtype(array.dtype, np.floating):
        array = np.nan_to_num(array, nan=0.0)
    mask = (array > 0).astype(np.uint8)
    return resize(mask, size, nearest=True).astype(bool)
