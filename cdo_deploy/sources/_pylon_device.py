"""pypylon plumbing of the pylon source: import, find, open and configure a camera.

Every user mistake becomes a one-line ``CdoError``: pypylon missing (names
the ``cdo[pylon]`` extra), no camera with that serial number or name (lists
the cameras found), a feature the model does not have, a value out of its
range or not among its entries, a features file pylon cannot load.

Example:
    >>> pylon, genicam = import_pylon()                          # doctest: +SKIP
    >>> info = find_device(pylon, "0815-0000")                   # doctest: +SKIP
    >>> cam = open_camera(pylon, genicam, info, CameraSettings(exposure_us=2000))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import CdoError
from .pylon_settings import TRIGGER_EDGES, CameraSettings

__all__ = ["camera_name", "configure", "device_property", "find_device", "import_pylon", "open_camera", "set_feature"]

log = logging.getLogger(__name__)

#: trigger selectors switched off so that one trigger gives exactly one frame
_OTHER_SELECTORS = ("AcquisitionStart", "FrameBurstStart", "LineStart")


def import_pylon() -> tuple[Any, Any]:
    """``(pypylon.pylon, pypylon.genicam)``.

    Raises:
        CdoError: pypylon is not installed.
    """
    try:
        from pypylon import genicam, pylon
    except ImportError as e:
        raise CdoError(f"--source pylon needs pypylon, Basler's pylon runtime ({e}); install the extra: "
                       "pip install 'cdo[pylon]'") from None
    return pylon, genicam


def device_property(info: Any, name: str) -> str:
    """A ``DeviceInfo`` property (``SerialNumber``, ``ModelName``, ``UserDefinedName``...); ``""`` if unset."""
    return str(getattr(info, f"Get{name}")()) if getattr(info, f"Is{name}Available")() else ""


def _describe(info: Any) -> str:
    name = device_property(info, "UserDefinedName")
    return (f"{device_property(info, 'SerialNumber')} ({device_property(info, 'ModelName')}"
            f"{f', name {name!r}' if name else ''})")


def find_device(pylon: Any, name: str | None, devices: list[Any] | None = None) -> Any:
    """The ``DeviceInfo`` of the camera with this serial number or user-defined name (``None``: the first).

    Args:
        pylon: the ``pypylon.pylon`` module.
        name: serial number or ``DeviceUserID``; ``None`` picks the first camera found.
        devices: device infos to choose from (default: enumerate all transport layers).

    Raises:
        CdoError: no camera at all, none with that name (the message lists those found), or two with it.
    """
    if devices is None:
        devices = list(pylon.TlFactory.GetInstance().EnumerateDevices())
    if not devices:
        raise CdoError("no pylon camera found (check power, cable and the camera's IP configuration; "
                       "pylon Viewer shows what this PC sees; PYLON_CAMEMU=1 adds an emulated camera)")
    if name is None:
        return devices[0]
    found = [d for d in devices if name in (device_property(d, "SerialNumber"), device_property(d, "UserDefinedName"))]
    if len(found) > 1:
        raise CdoError(f"camera name {name!r} matches {len(found)} cameras "
                       f"({', '.join(_describe(d) for d in found)}); use the serial number")
    if not found:
        raise CdoError(f"no pylon camera with serial number or name {name!r}; found "
                       f"{len(devices)}: {', '.join(_describe(d) for d in devices)}")
    return found[0]


def camera_name(camera: Any) -> str:
    """``"<model> <serial>"`` of an attached ``InstantCamera``, for messages."""
    info = camera.GetDeviceInfo()
    return f"{info.GetModelName()} {info.GetSerialNumber()}"


def _node(genicam: Any, camera: Any, feature: str, option: str) -> Any:
    node = camera.GetNodeMap().GetNode(feature)
    if node is None or not genicam.IsAvailable(node):
        raise CdoError(f"{option}: camera {camera_name(camera)} has no feature {feature!r}; remove the option "
                       "or use a features file (--pfs) made for this model")
    return node


def set_feature(genicam: Any, camera: Any, feature: str, value: Any, option: str, unit: str = "") -> Any:
    """Set one GenICam feature, checking availability, writability, range and entries first.

    Args:
        genicam: the ``pypylon.genicam`` module.
        camera: an open ``InstantCamera``.
        feature: GenICam feature name (``ExposureTime``).
        value: number, bool or enumeration entry (matched case-insensitively).
        option: the option the value came from, for the message (``--exposure-us``).
        unit: shown with numbers in messages.

    Returns:
        The value the camera holds afterwards.

    Raises:
        CdoError: feature absent, read-only now, value out of range / step, or not an entry.
    """
    node = _node(genicam, camera, feature, option)
    where = f"camera {camera_name(camera)}"
    if not genicam.IsWritable(node):
        raise CdoError(f"{option}: {feature} is read-only on {where} now (another program grabbing, "
                       "or a features file that locks it?)")
    try:
        if isinstance(node, genicam.IEnumeration):
            entries = list(node.Symbolics)
            match = [e for e in entries if e.lower() == str(value).lower()]
            if not match:
                raise CdoError(f"{option} {value}: not offered by {where}; choose one of {', '.join(entries)}")
            node.SetValue(match[0])
        elif isinstance(node, (genicam.IInteger, genicam.IFloat)):
            lo, hi = node.GetMin(), node.GetMax()
            if not lo <= value <= hi:
                raise CdoError(f"{option} {value:g}{unit} out of range for {feature} on {where}: "
                               f"{lo:g}..{hi:g}{unit}")
            if isinstance(node, genicam.IInteger):
                inc = node.GetInc()
                if int(value) != value or (int(value) - lo) % inc:
                    raise CdoError(f"{option} {value:g}{unit} not allowed for {feature} on {where}: "
                                   f"{lo}..{hi}{unit} in steps of {inc}")
                value = int(value)
            node.SetValue(value)
        else:
            node.SetValue(value)
        return node.GetValue()
    except genicam.GenericException as e:
        raise CdoError(f"{option}: cannot set {feature} = {value} on {where}: {_first_line(e)}") from None


def _first_line(e: BaseException) -> str:
    return str(e).strip().split(" : ")[0].splitlines()[0]


def _try_off(genicam: Any, camera: Any, feature: str) -> None:
    node = camera.GetNodeMap().GetNode(feature)
    if node is not None and genicam.IsWritable(node) and "Off" in list(node.Symbolics):
        node.SetValue("Off")


def _first_available(genicam: Any, camera: Any, names: tuple[str, ...]) -> str:
    nm = camera.GetNodeMap()
    return next((n for n in names if nm.GetNode(n) is not None and genicam.IsAvailable(nm.GetNode(n))), names[0])


def configure(pylon: Any, genicam: Any, camera: Any, s: CameraSettings) -> None:
    """Apply ``s`` to an open camera: features file, pixel format, ROI, exposure, gain, trigger.

    Raises:
        CdoError: see :func:`set_feature`; a features file pylon rejects.
    """
    if s.pfs is not None:
        try:
            pylon.FeaturePersistence.Load(str(s.pfs), camera.GetNodeMap(), True)
        except genicam.GenericException as e:
            raise CdoError(f"--pfs {s.pfs}: pylon cannot load it into camera {camera_name(camera)}: "
                           f"{_first_line(e)} (save the file from this camera model with pylon Viewer)") from None
    if s.pixel_format is not None:
        set_feature(genicam, camera, "PixelFormat", s.pixel_format, "--pixel-format")
    if s.roi is not None:
        w, h, x, y = s.roi
        for f in ("OffsetX", "OffsetY"):  # offsets first to 0, so any allowed width fits
            set_feature(genicam, camera, f, 0, "--roi")
        set_feature(genicam, camera, "Width", w, "--roi width", " px")
        set_feature(genicam, camera, "Height", h, "--roi height", " px")
        set_feature(genicam, camera, "OffsetX", x, "--roi offset x", " px")
        set_feature(genicam, camera, "OffsetY", y, "--roi offset y", " px")
    if s.exposure_us is not None:
        _try_off(genicam, camera, "ExposureAuto")
        name = _first_available(genicam, camera, ("ExposureTime", "ExposureTimeAbs"))
        set_feature(genicam, camera, name, float(s.exposure_us), "--exposure-us", " µs")
    if s.gain_db is not None:
        _try_off(genicam, camera, "GainAuto")
        name = _first_available(genicam, camera, ("Gain", "GainAbs"))
        set_feature(genicam, camera, name, float(s.gain_db), "--gain-db", " dB")
    if s.trigger is not None:
        _configure_trigger(genicam, camera, s)


def _configure_trigger(genicam: Any, camera: Any, s: CameraSettings) -> None:
    nm = camera.GetNodeMap()
    selector = nm.GetNode("TriggerSelector")
    if selector is None or not genicam.IsAvailable(selector):
        if s.trigger == "Off":
            return
        raise CdoError(f"--trigger: camera {camera_name(camera)} has no trigger (TriggerSelector); use --trigger off")
    entries = list(selector.Symbolics)
    for other in _OTHER_SELECTORS:
        if other in entries:
            selector.SetValue(other)
            _try_off(genicam, camera, "TriggerMode")
    set_feature(genicam, camera, "TriggerSelector", "FrameStart", "--trigger")
    if s.trigger == "Off":
        set_feature(genicam, camera, "TriggerMode", "Off", "--trigger")
        return
    set_feature(genicam, camera, "TriggerSource", s.trigger, "--trigger")
    if s.trigger_edge is not None:
        set_feature(genicam, camera, "TriggerActivation", TRIGGER_EDGES[s.trigger_edge], "--trigger-edge")
    set_feature(genicam, camera, "TriggerMode", "On", "--trigger")


def open_camera(pylon: Any, genicam: Any, info: Any, s: CameraSettings) -> Any:
    """Create, open and configure the ``InstantCamera`` for ``info``; the caller starts grabbing.

    Raises:
        CdoError: the camera cannot be opened (held by another program, no access) or configured.
    """
    try:
        camera = pylon.InstantCamera(pylon.TlFactory.GetInstance().CreateDevice(info))
        camera.Open()
    except genicam.GenericException as e:
        raise CdoError(f"cannot open pylon camera {_describe(info)}: {_first_line(e)} "
                       "(is another program, e.g. pylon Viewer, holding it?)") from None
    try:
        configure(pylon, genicam, camera, s)
        camera.MaxNumBuffer.Value = s.buffers
        node = camera.GetNodeMap().GetNode("AcquisitionMode")
        if node is not None and genicam.IsWritable(node):
            node.SetValue("Continuous")
    except BaseException:
        camera.Close()
        camera.DestroyDevice()
        raise
    return camera
