"""PylonSource against pylon's camera emulator: pixel formats, triggers, gaps, reconnect, stop, errors."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from cdo_deploy import Inspector
from cdo_deploy.errors import CdoError
from cdo_deploy.pipeline import Pipeline, PipelineConfig
from cdo_deploy.preprocess import to_model_input
from cdo_deploy.sinks import JsonlSink
from cdo_deploy.sources import CameraSettings, PylonSource, classify_source, open_source
from cdo_deploy.sources._pylon_device import find_device, set_feature
from tests.conftest import modules_after
from tests.deploy.conftest import read_records, wait_for

SERIAL = "0815-0000"


def emu_luma(bgr: np.ndarray) -> np.ndarray:
    """The emulator's grey value of a BGR image (float)."""
    b, g, r = (bgr[..., i].astype(np.float64) for i in range(3))
    return 0.25 * r + 0.625 * g + 0.125 * b


def grab_one(settings: CameraSettings) -> tuple[np.ndarray, dict]:
    src = open_source(f"pylon:{SERIAL}", camera=settings, max_frames=1)
    items: list = []
    try:
        src.run(items.append, threading.Event())
    finally:
        src.close()
    assert len(items) == 1 and items[0].error is None, items
    return items[0].image, items[0].source_meta


# (pixel format, reference kind, max abs error, max mean abs error) of the model's RGB input
FORMATS = [
    ("Mono8", "grey", 1, 0.75),         # the emulator truncates its grey value
    ("Mono12", "grey", 1.5, 0.75),      # emulator: 8-bit grey x 16; we scale 0..4095 to 0..255
    ("RGB8Packed", "colour", 0, 0.0),
    ("BGR8Packed", "colour", 0, 0.0),
    ("BGRA8Packed", "colour", 0, 0.0),  # pylon's ImageFormatConverter
    # OpenCV's bilinear demosaicing of the emulator's mosaic; 2-pixel border excluded
    ("BayerRG8", "colour", 2, 0.5),
    ("BayerGR8", "colour", 2, 0.5),
    ("BayerGB8", "colour", 2, 0.5),
    ("BayerBG8", "colour", 2, 0.5),
    ("BayerGB12", "colour", 2, 0.75),
    ("BayerRG16", "colour", 2, 0.75),
]


@pytest.mark.parametrize("fmt,kind,max_err,mean_err", FORMATS, ids=[f[0] for f in FORMATS])
def test_every_pixel_format_reaches_the_model_as_rgb(pylon, emu_pfs, smooth_image, fmt, kind, max_err, mean_err):
    path, bgr = smooth_image
    h, w = bgr.shape[:2]
    frame, meta = grab_one(CameraSettings(pfs=emu_pfs(path), pixel_format=fmt, trigger="Software"))
    assert frame.dtype == np.uint8 and frame.shape[:2] == (h, w)
    x = to_model_input(frame, h, w).astype(np.int32)  # what the model gets: RGB uint8
    if kind == "grey":
        ref = np.repeat(emu_luma(bgr)[..., None], 3, axis=2)
        d = np.abs(x - ref)
    else:
        ref = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.int32)
        d = np.abs(x - ref)[2:-2, 2:-2]
    assert d.max() <= max_err and d.mean() <= mean_err, (fmt, d.max(), d.mean())
    assert meta["camera"] == SERIAL and meta["frame_id"] == 0 and meta["image_number"] == 1
    assert "camera_timestamp" in meta


def run_pipeline(bundle, src, out, stop):
    pipe = Pipeline(Inspector(bundle, device="cpu"), src, [JsonlSink(out / "results.jsonl")],
                    PipelineConfig(max_batch=4, queue_size=8))
    result: dict = {}
    t = threading.Thread(target=lambda: result.setdefault("summary", pipe.run(stop)), daemon=True)
    t.start()
    return t, result


def test_software_trigger_n_triggers_give_n_records_in_order(pylon, tiny_bundle, emu_pfs, part_folder, tmp_path):
    n = 15
    src = open_source(f"pylon:{SERIAL}", camera=CameraSettings(pfs=emu_pfs(part_folder), trigger="Software",
                                                               trigger_interval_s=None))
    assert isinstance(src, PylonSource) and not src.live and src.triggered
    stop = threading.Event()
    t, result = run_pipeline(tiny_bundle, src, tmp_path, stop)
    fired = [src.trigger() for _ in range(n)]  # a burst, as fast as the camera takes them
    assert all(fired)
    stop.set()  # right after the last trigger: its frame is still in flight
    t.join(30)
    recs = read_records(tmp_path / "results.jsonl")
    assert len(recs) == n and all(r["error"] is None for r in recs)
    assert [r["frame"] for r in recs] == list(range(n))
    assert [r["source_meta"]["image_number"] for r in recs] == list(range(1, n + 1))
    assert [r["source"] for r in recs] == [f"pylon:{SERIAL}#{i}" for i in range(n)]
    assert {r["source_meta"]["camera"] for r in recs} == {SERIAL}
    # the emulator serves the six parts in name order: NG are 1, 3, 4
    assert [r["decision"] for r in recs[:6]] == ["OK", "NG", "OK", "NG", "NG", "OK"]
    s = result["summary"]
    assert s.processed == n and s.missed == 0 and s.dropped == 0


class LosesFrame(PylonSource):
    """Fault injection: the transport loses the buffer of frame ``lose`` (never handed to the source)."""

    lose = 3

    def _handle(self, result, emit):
        if result.GetBlockID() == self.lose:
            result.Release()
            return
        super()._handle(result, emit)


@pytest.mark.parametrize("interval,why", [(0.03, "frame counter jumped to 4"), (0.0, "no frame within 0.2 s")],
                         ids=["periodic-trigger", "on-demand-trigger"])
def test_lost_frame_is_one_error_record_and_counted(pylon, tiny_bundle, emu_pfs, part_folder, tmp_path,
                                                    interval, why):
    # periodic: the next frame shows the gap; on demand: the frame is awaited until frame_timeout_s,
    # and the gap seen afterwards is not counted twice
    settings = CameraSettings(pfs=emu_pfs(part_folder), trigger="Software", trigger_interval_s=interval)
    src = LosesFrame(f"pylon:{SERIAL}", camera=settings, max_frames=8, frame_timeout_s=0.2)
    src.open()
    t, result = run_pipeline(tiny_bundle, src, tmp_path, threading.Event())
    t.join(30)
    recs = read_records(tmp_path / "results.jsonl")
    frames = [r["frame"] for r in recs if r["error"] is None]
    errors = [r for r in recs if r["error"] is not None]
    assert frames == [0, 1, 2, 4, 5, 6, 7]
    assert len(errors) == 1 and why in errors[0]["error"] and errors[0]["source_meta"]["missed"] == 1
    assert [r["source"] for r in recs].index(errors[0]["source"]) == 3  # in sequence, before frame 4
    s = result["summary"]
    assert s.missed == 1 and s.errors == 1 and "missed 1" in s.format()
    assert s.to_dict()["missed"] == 1


def test_trigger_the_camera_cannot_take_is_a_missed_part(pylon, emu_pfs, part_folder):
    src = open_source(f"pylon:{SERIAL}", camera=CameraSettings(pfs=emu_pfs(part_folder), trigger="Software",
                                                               trigger_interval_s=None, buffers=2), max_frames=2)
    try:
        # nobody retrieves yet: two triggers fill both buffers, the third finds the camera not ready
        assert [src.trigger(timeout_s=0.3) for _ in range(3)] == [True, True, False]
        assert src.missed == 1
        items: list = []
        src.run(items.append, threading.Event())
    finally:
        src.close()
    assert "not ready for a trigger" in items[0].error and items[0].source_meta["missed"] == 1
    assert [i.frame for i in items[1:]] == [0, 1]


class CameraComesBackReset(PylonSource):
    """Fault injection around a device loss: the first ``absent`` reconnect attempts find no camera,
    then the camera is back with its power-on default pixel format (Mono8)."""

    absent = 2

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.attempts: list[float] = []

    def open(self):
        if self.reconnects:
            self.attempts.append(time.monotonic())
            if len(self.attempts) <= self.absent:
                raise CdoError("no pylon camera with serial number or name '0815-0000'")
            from pypylon import pylon

            cam = pylon.InstantCamera(pylon.TlFactory.GetInstance().CreateDevice(find_device(pylon, SERIAL)))
            cam.Open()
            cam.PixelFormat.Value = "Mono8"
            cam.Close()
        super().open()


@pytest.mark.parametrize("loss", ["close", "destroy"])
def test_device_lost_mid_run_reconnects_with_backoff_and_reapplies_settings(pylon, emu_pfs, part_folder, loss):
    settings = CameraSettings(pfs=emu_pfs(part_folder), pixel_format="RGB8Packed", trigger="Software",
                              trigger_interval_s=0.01)
    src = CameraComesBackReset(f"pylon:{SERIAL}", camera=settings, backoff_s=0.05, backoff_max_s=1.0)
    src.open()
    items: list = []
    stop = threading.Event()
    t = threading.Thread(target=src.run, args=(items.append, stop), daemon=True)
    t.start()
    try:
        assert wait_for(lambda: len(items) >= 5, 20)
        cam = src.camera
        cam.Close() if loss == "close" else cam.DestroyDevice()  # the device goes away under the source
        assert wait_for(lambda: sum(i.error is None for i in items) >= 12, 20)
    finally:
        stop.set()
        t.join(20)
        src.close()
    lost = [i for i in items if i.source_meta.get("event") == "camera_lost"]
    assert len(lost) == 1 and "0815-0000 lost" in lost[0].error and "reconnecting" in lost[0].error
    k = items.index(lost[0])
    assert k >= 5 and all(i.error is None for i in items[k + 1:])
    # a trigger the source fired just as the device went away is a missed part of its own
    failed = [i for i in items[:k] if i.error is not None]
    assert len(failed) <= 1 and all("software trigger failed" in i.error for i in failed)
    assert src.missed == lost[0].source_meta["missed"] + len(failed)
    assert src.reconnects == 3 and len(src.attempts) == 3
    gaps = np.diff(src.attempts)
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2  # back-off doubles: 0.05, 0.1, 0.2 s
    after = items[k + 1:]
    assert after[0].frame == 0  # a new grab session: the camera's counter restarted
    assert all(i.image.ndim == 3 for i in after)  # RGB8 reapplied over the reset camera's Mono8


def test_feature_errors_are_one_line(pylon, emu_pfs, part_folder, tmp_path):
    with pytest.raises(CdoError, match=r"no pylon camera with serial number or name 'nope'; found 2: 0815-0000"):
        open_source("pylon:nope")
    with pytest.raises(CdoError, match=r"--exposure-us -5 µs out of range for ExposureTime .*: 1\.\.1e\+07 µs"):
        open_source("pylon", camera=CameraSettings(exposure_us=-5))
    with pytest.raises(CdoError, match=r"--pixel-format YUV422: not offered .*; choose one of Mono8, Mono10"):
        open_source("pylon", camera=CameraSettings(pixel_format="YUV422"))
    with pytest.raises(CdoError, match=r"--roi width 5000 px out of range for Width"):
        open_source("pylon", camera=CameraSettings(roi=(5000, 100, 0, 0)))
    bad = tmp_path / "other.pfs"
    bad.write_text("# {05D8C294-F295-4dfb-9D01-096BD04049F4}\nBslNoSuchFeature\t3\n")
    with pytest.raises(CdoError, match=r"--pfs .*: pylon cannot load it .*'BslNoSuchFeature' not found"):
        open_source("pylon", camera=CameraSettings(pfs=bad))
    from pypylon import genicam

    cam = pylon.InstantCamera(pylon.TlFactory.GetInstance().CreateDevice(find_device(pylon, SERIAL)))
    cam.Open()
    try:
        with pytest.raises(CdoError, match=r"--gain-raw: camera Emulation 0815-0000 has no feature 'GainSelectorX'"):
            set_feature(genicam, cam, "GainSelectorX", 3, "--gain-raw")
        assert set_feature(genicam, cam, "ExposureTime", 2500.0, "--exposure-us") == 2500.0
    finally:
        cam.Close()
        cam.DestroyDevice()


def test_settings_roi_exposure_gain_trigger_edge_reach_the_camera(pylon, emu_pfs, smooth_image):
    path, _ = smooth_image
    settings = CameraSettings(pfs=emu_pfs(path), exposure_us=1500, gain_db=6.0, roi=(64, 48, 16, 8),
                              trigger="Line1", trigger_edge="falling")
    src = open_source("pylon:0815-0001", camera=settings)
    try:
        cam = src.camera
        assert (cam.Width.Value, cam.Height.Value, cam.OffsetX.Value, cam.OffsetY.Value) == (64, 48, 16, 8)
        assert cam.ExposureTime.Value == 1500 and abs(cam.Gain.Value - 6.0) < 0.1
        assert (cam.TriggerMode.Value, cam.TriggerSource.Value, cam.TriggerActivation.Value) == \
            ("On", "Line1", "FallingEdge")
        assert src.triggered and not src.live and "trigger Line1" in src.describe()
    finally:
        src.close()
    free = open_source("pylon:0815-0001", camera=CameraSettings(trigger="Off"))
    try:
        assert free.live and not free.triggered and free.camera.TriggerMode.Value == "Off"
    finally:
        free.close()


def test_spec_forms_and_device_lookup(pylon):
    assert classify_source("pylon") == classify_source("pylon:40123456") == "pylon"
    info = pylon.DeviceInfo()
    info.SetSerialNumber("40123456")
    info.SetUserDefinedName("station3")
    info.SetModelName("a2A1920-51gcPRO")
    other = pylon.DeviceInfo()
    other.SetSerialNumber("40999999")
    devices = [other, info]
    assert find_device(pylon, "station3", devices) is info
    assert find_device(pylon, "40123456", devices) is info
    assert find_device(pylon, None, devices) is other
    with pytest.raises(CdoError, match=r"found 2: 40999999 \(\), 40123456 \(a2A1920-51gcPRO, name 'station3'\)"):
        find_device(pylon, "station4", devices)
    with pytest.raises(CdoError, match="no pylon camera found"):
        find_device(pylon, None, [])
    with pytest.raises(CdoError, match="empty camera name"):
        PylonSource("pylon:")


def test_importing_cdo_deploy_does_not_load_pypylon():
    loaded = modules_after("import cdo_deploy, cdo_deploy.cli, cdo_deploy.sources")
    assert not [m for m in loaded if m.startswith("pypylon")]
