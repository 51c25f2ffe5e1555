"""Settings of a GenICam/Basler pylon camera source, parsed without pypylon.

``CameraSettings`` holds what ``cdo-inspect`` may set on the camera: a
features file (``.pfs``, loaded first, as it is), then exposure, gain, pixel
format, ROI and trigger, each overriding the file. ``None`` means "leave the
camera as it is configured". Values are checked against the camera itself
when it is opened (:mod:`cdo_deploy.sources._pylon_device`).

Trigger: ``off`` (free-run), ``software`` (the source, or the caller through
``PylonSource.trigger()``, fires ``TriggerSoftware``), or a camera trigger
source such as ``line1`` (a light barrier or PLC output wired to the camera's
opto-input), ``line2``, ``action1``; ``trigger_edge`` picks the edge.

Example:
    >>> s = CameraSettings(roi=parse_roi("640x480+16+8"), trigger=parse_trigger("line1"), trigger_edge="falling")
    >>> s.roi, s.trigger, s.triggered
    ((640, 480, 16, 8), 'Line1', True)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, get_args

from pydantic import Field, model_validator

from ..errors import CdoError
from ..schema import Float, Int, Schema, Text

__all__ = ["CameraSettings", "TRIGGER_EDGES", "parse_roi", "parse_trigger"]

#: ``--trigger-edge`` value -> GenICam ``TriggerActivation`` entry
TriggerEdge = Literal["rising", "falling", "any"]
TRIGGER_EDGES = dict(zip(get_args(TriggerEdge), ("RisingEdge", "FallingEdge", "AnyEdge")))

_ROI = re.compile(r"^(\d+)x(\d+)(?:\+(\d+)\+(\d+))?$")


def parse_roi(text: str) -> tuple[int, int, int, int]:
    """``WIDTHxHEIGHT[+OFFSETX+OFFSETY]`` in sensor pixels -> (width, height, offset_x, offset_y).

    Raises:
        CdoError: not of that form, or a zero size.
    """
    m = _ROI.match(text.strip())
    if m is None or int(m.group(1)) == 0 or int(m.group(2)) == 0:
        raise CdoError(f"bad --roi {text!r}: use WIDTHxHEIGHT[+OFFSETX+OFFSETY] in pixels, e.g. 640x480+16+8")
    w, h, x, y = (int(g) if g is not None else 0 for g in m.groups())
    return w, h, x, y


def parse_trigger(text: str) -> str:
    """``off``, ``software``, ``lineN`` or another camera trigger source -> its GenICam spelling.

    ``off`` -> ``"Off"``, ``software`` -> ``"Software"``, ``line1`` -> ``"Line1"``; any other
    name (``action1``, ``softwaresignal1``) is matched case-insensitively against the camera's
    ``TriggerSource`` entries when the camera is opened.

    Raises:
        CdoError: empty.
    """
    t = text.strip()
    low = t.lower()
    if not t:
        raise CdoError("empty --trigger (use off, software, line1, line2, ...)")
    if low in ("off", "none", "freerun", "free-run"):
        return "Off"
    if low == "software":
        return "Software"
    m = re.fullmatch(r"line(\d+)", low)
    return f"Line{m.group(1)}" if m else t


class CameraSettings(Schema):
    """What the source sets on the camera; ``None`` leaves a feature as the camera has it.

    Attributes:
        pfs: a pylon features file (pylon Viewer: Camera > Save Features), loaded first.
        exposure_us: ``ExposureTime`` in µs (auto exposure is switched off).
        gain_db: ``Gain`` in dB (auto gain is switched off).
        pixel_format: ``PixelFormat`` entry (``Mono8``, ``BayerRG8``, ``RGB8Packed``...).
        roi: (width, height, offset_x, offset_y) in sensor pixels.
        trigger: ``"Off"``, ``"Software"``, ``"Line1"``... (see :func:`parse_trigger`).
        trigger_edge: ``rising``, ``falling`` or ``any`` (hardware triggers).
        trigger_interval_s: software trigger: fire every this many s; ``0`` fires the next
            trigger as soon as the previous frame arrived; ``None``: only ``trigger()`` fires.
        buffers: grab buffers (``MaxNumBuffer``) queued to the driver.

    The camera checks exposure, gain, format and ROI against what it supports when the source opens.
    """

    _what = "camera setting"

    pfs: Path | None = None
    exposure_us: Float | None = None
    gain_db: Float | None = None
    pixel_format: Text | None = None
    roi: tuple[int, int, int, int] | None = None
    trigger: Text | None = None
    trigger_edge: TriggerEdge | None = None
    trigger_interval_s: Float | None = Field(0.0, ge=0)
    buffers: Int = Field(32, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> "CameraSettings":
        if self.trigger_edge is not None and self.trigger in ("Off", "Software"):
            raise CdoError(f"--trigger-edge applies to hardware triggers (line1, ...), not --trigger {self.trigger.lower()}")
        if self.pfs is not None and not Path(self.pfs).is_file():
            raise CdoError(f"camera features file not found: {self.pfs} (save one with pylon Viewer: "
                           "Camera > Save Features...)")
        return self

    @property
    def triggered(self) -> bool | None:
        """Whether the trigger option asks for triggered acquisition (``None``: not set)."""
        return None if self.trigger is None else self.trigger != "Off"

    def is_default(self) -> bool:
        """Nothing set: the camera is used exactly as configured."""
        return self == CameraSettings()
