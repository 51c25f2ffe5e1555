"""The one image path: any camera image or image file to the model input (RGB uint8 at model size).

Training (:mod:`cdo_train.data`), evaluation, calibration, the int8 calibration images,
``load_run().predict``, ``cdo-inspect`` and ``cdo-bench`` all call :func:`to_model_input`
(files through :func:`read_image_file`), so a model sees the same bytes in training and on the line.

Accepted images (numpy):
    (H, W) or (H, W, 1) grey; (H, W, 3) BGR (OpenCV default) or RGB; (H, W, 4) BGRA/RGBA.
    A file decoded as grey + alpha (H, W, 2) is read as its grey channel.

Rules (docs/development/layers.md, "The image path"):
    * ``uint8``: as is.
    * ``uint16``: value / 257 (the full 16-bit range to 0..255), rounded once.
    * ``int8`` / ``int16`` (signed TIFF): shifted to unsigned, then as above.
    * float: NaN and inf become 0; an image whose maximum is <= 1 is in ``[0, 1]`` (times 255),
      otherwise it is taken as ``[0, 255]``; clipped to ``[0, 255]``, rounded once (half up). The rule looks
      at the whole image, so a float image in ``[0, 255]`` that is entirely <= 1 reads as ``[0, 1]``.
    * grey is replicated to 3 channels; alpha is dropped (not composited).
    * resize: ``cv2.INTER_AREA`` when the image shrinks along either axis, else ``INTER_LINEAR``.
      8-bit images are resized in uint8 (fast, what a camera delivers); deeper images are
      resized in float32 and rounded to uint8 once, after the resize.
    * the channels are converted after the resize, so the cheap steps run on the small image
      (channel order does not change the per-channel resize).
Normalisation happens inside the ONNX graph.

Example:
    >>> import numpy as np
    >>> grey16 = np.full((100, 60), 65535, np.uint16)
    >>> x = to_model_input(grey16, 32, 32)
    >>> x.shape, x.dtype.name, int(x.max())
    ((32, 32, 3), 'uint8', 255)
    >>> int(to_model_input(np.full((4, 4), 115.0, np.float32), 2, 2).max())  # float in [0, 255]
    115
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

from .errors import CdoError

__all__ = ["COLOR_ORDERS", "ImageItem", "decode_image", "image_items", "interpolation", "read_image_file",
           "to_bgr_uint8", "to_mask", "to_model_input"]

COLOR_ORDERS = ("BGR", "RGB")
_DTYPES = "uint8, uint16, int8, int16 or float"


def interpolation(src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> int:
    """``cv2.INTER_AREA`` when ``dst_hw`` is smaller than ``src_hw`` along either axis, else ``INTER_LINEAR``.

    Example:
        >>> interpolation((200, 300), (256, 256)) == cv2.INTER_AREA
        True
    """
    shrink = dst_hw[0] < src_hw[0] or dst_hw[1] < src_hw[1]
    return cv2.INTER_AREA if shrink else cv2.INTER_LINEAR


def _to_float255(image: np.ndarray) -> np.ndarray:
    """A non-uint8 image as float32 on the 0..255 scale (not yet clipped or rounded)."""
    if image.dtype == np.uint16:
        return image.astype(np.float32) / np.float32(257.0)
    if image.dtype == np.int8:
        return image.astype(np.float32) + np.float32(128.0)
    if image.dtype == np.int16:
        return (image.astype(np.float32) + np.float32(32768.0)) / np.float32(257.0)
    a = np.nan_to_num(image.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return a * np.float32(255.0) if float(a.max()) <= 1.0 else a


def _round_uint8(image: np.ndarray) -> np.ndarray:
    # half up, as OpenCV's 8-bit area resize rounds: a 16-bit or float copy of an 8-bit image gives its bytes
    return (np.clip(image, 0.0, 255.0) + np.float32(0.5)).astype(np.uint8)


def _check(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray):
        raise CdoError(f"expected a numpy image, got {type(image).__name__}")
    ok = image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4))
    if not ok or image.shape[0] == 0 or image.shape[1] == 0:
        raise CdoError(f"unsupported image shape {image.shape} (use (H, W), (H, W, 1), (H, W, 3) or (H, W, 4))")
    if not (image.dtype in (np.uint8, np.uint16, np.int8, np.int16) or np.issubdtype(image.dtype, np.floating)):
        raise CdoError(f"unsupported image dtype {image.dtype} (use {_DTYPES})")


def _to_rgb(image: np.ndarray, color_order: str) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if color_order == "BGR" else cv2.COLOR_RGBA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if color_order == "BGR" else image


def to_model_input(image: np.ndarray, height: int, width: int, color_order: str = "BGR") -> np.ndarray:
    """Convert one image to the model input (the rules are in the module docstring).

    Args:
        image: (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array, uint8/uint16/int8/int16/float.
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
    if image.dtype != np.uint8:
        image = _to_float255(image)
    if image.shape[:2] != (height, width):
        image = cv2.resize(image, (width, height), interpolation=interpolation(image.shape[:2], (height, width)))
    if image.dtype != np.uint8:
        image = _round_uint8(image)
    return np.ascontiguousarray(_to_rgb(image, color_order))


def to_bgr_uint8(image: np.ndarray, color_order: str = "BGR") -> np.ndarray:
    """Full-size 3-channel BGR uint8 copy of an input image, for drawing overlays (same value rules)."""
    _check(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.dtype != np.uint8:
        image = _round_uint8(_to_float255(image))
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR if color_order == "BGR" else cv2.COLOR_RGBA2BGR)
    return image.copy() if color_order == "BGR" else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)


def to_mask(array: np.ndarray, hw: tuple[int, int] | None = None) -> np.ndarray:
    """A ground-truth mask as decoded (grey, colour or with alpha) to ``(H, W)`` bool: any non-zero colour
    channel is a defect pixel (alpha and NaN are ignored); resized to ``hw`` with nearest neighbour.

    Example:
        >>> int(to_mask(np.array([[0, 3], [0, 0]], np.uint8), (4, 4)).sum())
        4
    """
    if array.ndim == 3:
        array = array[:, :, : 3 if array.shape[2] >= 3 else 1].max(axis=2)
    if np.issubdtype(array.dtype, np.floating):
        array = np.nan_to_num(array, nan=0.0)
    mask = (array > 0).astype(np.uint8)
    if hw is not None and mask.shape[:2] != tuple(hw):
        mask = cv2.resize(mask, (hw[1], hw[0]), interpolation=cv2.INTER_NEAREST)
    return mask.astype(bool)


_JPEG = (".jpg", ".jpeg", ".jpe")


def decode_image(data: bytes, name: str = "") -> np.ndarray:
    """Decode encoded image bytes (any format OpenCV reads) keeping depth and channels.

    Args:
        data: the file content.
        name: file name; its suffix selects the truncation check.

    Returns:
        The image as OpenCV reads it (BGR / BGRA / grey, uint8, uint16 or float); a grey + alpha
        file (2 channels) comes back as its grey channel.

    Raises:
        CdoError: empty, truncated (JPEG without end marker, PNG without IEND) or undecodable.
    """
    if not data:
        raise CdoError("empty file")
    if not looks_like_image(data, name):
        raise CdoError(f"not an image: a {Path(name).suffix.lower()} file starts with its format's signature, "
                       f"this one with {data[:8]!r}")
    if not is_complete(data, name):
        raise CdoError("truncated or not an image (no end marker)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise CdoError(f"not a readable image ({len(data)} bytes: corrupt or not an image)")
    if image.ndim == 3 and image.shape[2] == 2:
        image = np.ascontiguousarray(image[:, :, 0])
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


def read_image_file(path: str | Path, what: str = "image") -> np.ndarray:
    """Read an image (or mask) file as OpenCV does (BGR / BGRA / grey, any depth), checking it is complete.

    Args:
        path: the file; any path (non-ASCII too).
        what: what the file is, for the error messages (``image``, ``mask``).

    Raises:
        CdoError: missing, unreadable, empty, truncated or undecodable file, naming it.
    """
    p = Path(path)
    if not p.exists():
        raise CdoError(f"{what} file not found: {p}")
    if not p.is_file():
        raise CdoError(f"{what} is not a file: {p}")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise CdoError(f"cannot read {what} {p}: {e.strerror or e}") from None
    try:
        return decode_image(data, p.name)
    except CdoError as e:
        raise CdoError(f"{what} {p}: {e} (replace or remove the file)") from None


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
