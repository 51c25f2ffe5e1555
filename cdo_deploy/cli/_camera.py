"""``cdo-inspect`` options of industrial cameras (``--source pylon``), folded into one ``camera`` argument.

``camera_options`` adds the options to a click command and hands the command a
single ``camera: CameraSettings | None`` keyword instead of them (``None`` when
none was given), so the command itself only passes it on.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, TypeVar

import click

from ..sources.pylon_settings import TRIGGER_EDGES, CameraSettings, parse_roi, parse_trigger

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = [
    click.option("--trigger", default=None, metavar="off|software|line1|...",
                 help="pylon: free-run (off), software trigger, or the camera input wired to the light "
                      "barrier/PLC (line1, line2, ...). Triggered modes never drop a part silently."),
    click.option("--trigger-edge", type=click.Choice(list(TRIGGER_EDGES)), default=None,
                 help="pylon: edge of a hardware trigger signal."),
    click.option("--trigger-interval-ms", type=click.FloatRange(0), default=0.0, show_default=True,
                 help="pylon, --trigger software: fire every N ms (0: the next as soon as the last frame is in)."),
    click.option("--exposure-us", type=float, default=None, help="pylon: exposure time, µs (auto exposure off)."),
    click.option("--gain-db", type=float, default=None, help="pylon: gain, dB (auto gain off)."),
    click.option("--pixel-format", default=None, help="pylon: PixelFormat (Mono8, Mono12, BayerRG8, RGB8Packed, ...)."),
    click.option("--roi", default=None, metavar="WxH[+X+Y]", help="pylon: sensor region, e.g. 640x480+16+8."),
    click.option("--pfs", type=click.Path(path_type=Path), default=None,
                 help="pylon: camera features file (pylon Viewer: Save Features), loaded before the options above."),
    click.option("--camera-buffers", type=click.IntRange(1), default=32, show_default=True,
                 help="pylon: grab buffers queued to the driver."),
]
_NAMES = ("trigger", "trigger_edge", "trigger_interval_ms", "exposure_us", "gain_db", "pixel_format", "roi", "pfs",
          "camera_buffers")


def camera_options(fn: F) -> F:
    """Decorator: add the camera options; the command receives ``camera=CameraSettings | None``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        v = {n: kwargs.pop(n) for n in _NAMES}
        settings = CameraSettings(
            pfs=v["pfs"], exposure_us=v["exposure_us"], gain_db=v["gain_db"], pixel_format=v["pixel_format"],
            roi=None if v["roi"] is None else parse_roi(v["roi"]),
            trigger=None if v["trigger"] is None else parse_trigger(v["trigger"]),
            trigger_edge=v["trigger_edge"], trigger_interval_s=v["trigger_interval_ms"] / 1e3,
            buffers=v["camera_buffers"])
        return fn(*args, camera=None if settings.is_default() else settings, **kwargs)

    for option in reversed(_OPTIONS):
        wrapper = option(wrapper)
    return wrapper  # type: ignore[return-value]
