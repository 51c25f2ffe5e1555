"""StreamSource (video file, reconnect with back-off) and FilesSource (glob, @list)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from cdo_deploy.errors import CdoError
from cdo_deploy.sources import FilesSource, StreamSource, classify_source, open_source


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> None:
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert vw.isOpened()
    for f in frames:
        vw.write(f)
    vw.release()


@pytest.fixture
def video(tmp_path, part):
    path = tmp_path / "run.avi"
    write_video(path, [part(i in (2, 5), h=64, w=96, seed=i) for i in range(8)])
    return path


def test_video_file_frame_by_frame_and_resume(video):
    assert classify_source(str(video)) == "stream"
    src = open_source(str(video))
    assert not src.live
    items: list = []
    src.run(items.append, threading.Event())
    assert [i.frame for i in items] == list(range(8))
    assert items[0].source_id == f"{video}#0" and items[0].image.shape == (64, 96, 3)
    src2 = open_source(str(video), done={f"{video}#{i}" for i in range(5)}, max_frames=7)
    items = []
    src2.run(items.append, threading.Event())
    assert [i.frame for i in items] == [5, 6] and src2.skipped == 5


def test_live_stream_reconnects_with_backoff(video, monkeypatch):
    src = StreamSource("rtsp://camera.invalid/stream", max_frames=20, backoff_s=0.01, backoff_max_s=0.04)
    assert src.live
    opens = []

    def capture():  # the "camera" drops after each 8 frames; every other reconnect attempt fails
        opens.append(time.monotonic())
        if len(opens) % 2 == 0:
            return cv2.VideoCapture(str(video.parent / "missing.avi"))
        return cv2.VideoCapture(str(video))

    monkeypatch.setattr(src, "_capture", capture)
    src.open()
    items: list = []
    src.run(items.append, threading.Event())
    assert [i.frame for i in items] == list(range(20))
    assert src.reconnects == 4 and len(opens) == 5


def test_unreadable_camera_is_a_cdo_error():
    with pytest.raises(CdoError, match="cannot open camera"):
        open_source("camera:57")
    with pytest.raises(CdoError, match="camera:N"):
        open_source("camera:front")


def test_files_glob_and_list(tmp_path, part):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), part(False, seed=i))
    (tmp_path / "skip.txt").write_text("x")
    src = open_source(str(tmp_path / "*"))
    assert isinstance(src, FilesSource) and [Path(p).name for p in src.paths] == ["0.png", "1.png", "2.png"]
    listing = tmp_path / "list.txt"
    listing.write_text("# lot 7\n2.png\nmissing.png\n")
    src = open_source(f"@{listing}", done={str(tmp_path / "0.png")})
    items: list = []
    src.run(items.append, threading.Event())
    assert [Path(i.source_id).name for i in items] == ["2.png", "missing.png"]
    assert items[0].data and items[1].error and items[1].path is None
    with pytest.raises(CdoError, match="no image files match"):
        open_source(str(tmp_path / "*.jpg"))
