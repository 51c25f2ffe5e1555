"""Camera pixel formats -> the runtime's frame convention (BGR or grey, uint8).

Stream frames enter the pipeline as BGR (H, W, 3) or grey (H, W) uint8; the
inspector turns them into the model's RGB. Per pixel format:

* ``Mono8``: copied as it is (grey; the model sees R = G = B).
* ``Mono10``/``Mono12``/``Mono14``/``Mono16`` (unpacked): scaled from the format's bit
  depth to 8 bit, ``round(v * 255 / (2**bits - 1))`` (one look-up table per depth).
* ``RGB8``: channels swapped to BGR; ``BGR8``: copied.
* everything else (the Bayer formats at 8-16 bit, ``BGRA8``, ``RGB16``, packed
  ``Mono10p``/``Mono12p``/``Bayer*p``, YUV): pylon's ``ImageFormatConverter`` to
  ``BGR8packed`` (demosaicing for Bayer; mono packed formats to ``Mono8``).

Each frame is copied out of the grab buffer once, so the buffer can be handed
back to the driver before the frame is queued.

Example:
    >>> conv = FrameConverter(pylon)          # doctest: +SKIP
    >>> image = conv(grab_result)             # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

__all__ = ["FrameConverter", "scale_to_uint8"]

_LUTS: dict[int, np.ndarray] = {}


def scale_to_uint8(raw: np.ndarray, bits: int) -> np.ndarray:
    """(H, W) uint16 samples of ``bits`` significant bits -> uint8, full range to full range, rounded.

    Example:
        >>> scale_to_uint8(np.array([[0, 2048, 4095]], np.uint16), 12).tolist()
        [[0, 128, 255]]
    """
    lut = _LUTS.get(bits)
    if lut is None:
        top = (1 << bits) - 1
        v = np.minimum(np.arange(65536, dtype=np.float64), top)
        lut = _LUTS[bits] = np.floor(v * 255.0 / top + 0.5).astype(np.uint8)
    return lut[raw]


class FrameConverter:
    """Grab result -> BGR/grey uint8 ndarray, per the table in the module docstring.

    Args:
        pylon: the ``pypylon.pylon`` module.
    """

    def __init__(self, pylon: Any) -> None:
        self._pylon = pylon
        self._direct = {pylon.PixelType_Mono8: "mono8", pylon.PixelType_RGB8packed: "rgb8",
                        pylon.PixelType_BGR8packed: "bgr8"}
        for name in ("Mono10", "Mono12", "Mono14", "Mono16"):
            pt = getattr(pylon, f"PixelType_{name}", None)
            if pt is not None:
                self._direct[pt] = "mono16"
        self._to_bgr = pylon.ImageFormatConverter()
        self._to_bgr.OutputPixelFormat = pylon.PixelType_BGR8packed
        self._to_mono = pylon.ImageFormatConverter()
        self._to_mono.OutputPixelFormat = pylon.PixelType_Mono8

    def __call__(self, result: Any) -> np.ndarray:
        """Convert one successful grab result (not released)."""
        pt = result.GetPixelType()
        kind = self._direct.get(pt)
        if kind is None:
            conv = self._to_mono if self._pylon.IsMonoImage(pt) else self._to_bgr
            return conv.Convert(result).GetArray()
        with result.GetArrayZeroCopy() as a:
            if kind in ("mono8", "bgr8"):
                return a.copy()
            if kind == "rgb8":
                return cv2.cvtColor(a, cv2.COLOR_RGB2BGR)
            return scale_to_uint8(a, self._pylon.BitDepth(pt))
