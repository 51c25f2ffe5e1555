"""Pre-processing: any camera image to the bundle input (RGB uint8 at model size).

Accepted images (numpy):
    (H, W) or (H, W, 1) grey; (H, W, 3) BGR (OpenCV default) or RGB;
    (H, W, 4) BGRA/RGBA; dtype uint8, uint16 (full 16-bit range, value / 257)
    or float in [0, 1].

Steps: resize first (``cv2.INTER_AREA`` when shrinking, ``INTER_LINEAR`` when
enlarging), then scale to uint8 and convert the channels, so the cheap steps
run on the small image. Normalisation happens inside the ONNX graph.

Example:
    >>> import numpy as np
    >>> grey16 = np.full((100, 60), 65535, np.uint16)
    >>> x = to_model_input(grey16, 32, 32)
    >>> x.shape, x.dtype.name, int(x.max())
    ((32, 32, 3), 'uint8', 255)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

from .errors import CdoError

__all__ = ["COLOR_ORDERS", "ImageItem", "decode_image", "image_items", "read_image_file", "to_model_input",
           "to_bgr_uint8"]

COLOR_ORDERS = ("BGR", "RGB")


def _interp(src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> int:
    shrink = dst_hw[0] < src_hw[0] or dst_hw[1] < src_hw[1]
    return cv2.INTER_AREA if shrink else cv2.INTER_LINEAR


def _to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    raise CdoError(f"unsupported image dtype {image.dtype} (use uint8, uint16 or float in [0, 1])")


def _check(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray):
        raise CdoError(f"expected a numpy image, got {type(image).__name__}")
    ok = image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4))
    if not ok or image.shape[0] == 0 or image.shape[1] == 0:
        raise CdoError(f"unsupported image shape {image.shape} (use (H, W), (H, W, 1), (H, W, 3) or (H, W, 4))")
    if not (image.dtype in (np.uint8, np.uint16) or np.issubdtype(image.dtype, np.floating)):
        raise CdoError(f"unsupported image dtype {image.dtype} (use uint8, uint16 or float in [0, 1])")


def to_model_input(image: np.ndarray, height: int, width: int, color_order: str = "BGR") -> np.ndarray:
    """Convert one image to the bundle input.

    Args:
        image: (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array, uint8/uint16/float.
        height, width: model resolution in pixels.
        color_order: channel order of 3/4-channel inputs, ``BGR`` (OpenCV) or ``RGB``.

    Returns:
        (height, width, 3) uint8 RGB, C-contiguous.

    Raises:
        CdoError: unsupported shape, dtype or colour order.
    """
    _check(image)
    if color_order not in COLOR_ORDERS:
        raise CdoError(f"color order must be one of {', '.join(COLOR_ORDERS)}, got {color_order!r}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if np.issubdtype(image.dtype, np.floating) and image.dtype != np.float32:
        image = image.astype(np.float32)
    if image.shape[:2] != (height, width):
        image = cv2.resize(image, (width, height), interpolation=_interp(image.shape[:2], (height, width)))
    image = _to_uint8(image)
    if image.ndim == 2:
        out = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 4:
        out = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if color_order == "BGR" else cv2.COLOR_RGBA2RGB)
    elif color_order == "BGR":
        out = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    else:
        out = image
    return np.ascontiguousarray(out)


def to_bgr_uint8(image: np.ndarray, color_order: str = "BGR") -> np.ndarray:
    """Full-size 3-channel BGR uint8 copy of an input image, for drawing overlays."""
    _check(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    image = _to_uint8(image)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR if color_order == "BGR" else cv2.COLOR_RGBA2BGR)
    return image.copy() if color_order == "BGR" else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)


_JPEG = (".jpg", ".jpeg", ".jpe")


def decode_image(data: bytes, name: str = "") -> np.ndarray:
    """Decode encoded image bytes (any format OpenCV reads) keeping depth and channels.

    Args:
        data: the file content.
        name: file name; its suffix selects the truncation check.

    Returns:
        The image as OpenCV reads it (BGR / BGRA / grey, uint8 or uint16).

    Raises:
        CdoError: empty, truncated (JPEG without end marker, PNG without IEND) or undecodable.
    """
    if not data:
        raise CdoError("empty file")
    if not looks_like_image(data, name):
        raise CdoError(f"not an image: a {Path(name).suffix.lower()} file starts with its format's signature, "
                       f"this one with {data[:8]!r}")
    if not is_complete(data, name):
        raise CdoError("truncated image (no end marker)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise CdoError(f"not a readable image ({len(data)} bytes)")
    return image


#: the first bytes of the formats whose suffix promises them (others are not checked)
_SIGNATURES = {".png": (b"\x89PNG\r\n\x1a\n",), ".bmp": (b"BM",), ".dib": (b"BM",),
               ".tif": (b"II*\x00", b"MM\x00*"), ".tiff": (b"II*\x00", b"MM\x00*"), ".webp": (b"RIFF",),
               **{s: (b"\xff\xd8",) for s in _JPEG}}
_ALL_SIGNATURES = tuple(sig for sigs in _SIGNATURES.values() for sig in sigs)


def looks_like_image(data: bytes, name: str) -> bool:
    """Whether ``data`` starts like an image file: for the suffixes of ``_SIGNATURES``, any known image
    signature (a JPEG named .png is an image); other suffixes are not checked.

    Example:
        >>> looks_like_image(b"hello, world", "a.png"), looks_like_image(bytes([255, 216, 255, 224]), "a.png")
        (False, True)
    """
    if Path(name).suffix.lower() not in _SIGNATURES:
        return True
    return data.startswith(_ALL_SIGNATURES)


def is_complete(data: bytes, name: str) -> bool:
    """Whether a JPEG/PNG file carries its end marker (other formats: ``True``)."""
    low = name.lower()
    if low.endswith(_JPEG):
        return data.rstrip(b"\x00")[-2:] == b"\xff\xd9"
    if low.endswith(".png"):
        return b"IEND" in data[-12:]
    return True


def read_image_file(path: str | Path) -> np.ndarray:
    """Read an image file as OpenCV does (BGR / BGRA / grey, 8 or 16 bit), checking it is complete.

    Raises:
        CdoError: missing, empty, truncated or undecodable file.
    """
    p = Path(path)
    if not p.is_file():
        raise CdoError(f"no such image file: {p}")
    try:
        return decode_image(p.read_bytes(), p.name)
    except CdoError as e:
        raise CdoError(f"{p}: {e}") from None


class ImageItem(NamedTuple):
    """One image to inspect: its pixels, the channel order they are in (``None``: the caller's
    default) and its source id (``None``: the caller numbers it)."""

    image: np.ndarray
    color_order: str | None
    source: str | None


def image_items(images: Any) -> tuple[list[ImageItem], bool]:
    """What a user may pass, as a list: one image (H, W[, C]), a batch (B, H, W, C), a file path,
    or a list of images and paths. Files are read with :func:`read_image_file` (so BGR).

    Returns:
        (the images, whether a single image or path was given).

    Raises:
        CdoError: an unreadable file, or something that is neither an image nor a path.

    Example:
        >>> items, single = image_items(np.zeros((2, 4, 4, 3), np.uint8))
        >>> len(items), single, items[0].color_order
        (2, False, None)
    """
    def one(x: Any) -> ImageItem:
        if isinstance(x, (str, os.PathLike)):
            return ImageItem(read_image_file(x), "BGR", str(x))
        if isinstance(x, np.ndarray):
            return ImageItem(x, None, None)
        raise CdoError(f"expected an image array or an image file path, got {type(x).__name__}")

    if isinstance(images, (str, os.PathLike)):
        return [one(images)], True
    if isinstance(images, np.ndarray):
        if images.ndim == 2 or (images.ndim == 3 and images.shape[2] in (1, 3, 4)):
            return [one(images)], True
        if images.ndim != 4:
            raise CdoError(f"expected an image (H, W[, C]) or a batch (B, H, W, C), got shape {images.shape}")
        return [ImageItem(x, None, None) for x in images], False
    if isinstance(images, (list, tuple)):
        return [one(x) for x in images], False
    raise CdoError(f"expected an image, a batch, a path or a list of those, got {type(images).__name__}")
