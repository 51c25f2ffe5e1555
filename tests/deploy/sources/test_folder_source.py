"""FolderSource: complete files only, exactly once, restarts, bursts, junk."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import cv2
import pytest

from cdo_deploy.errors import CdoError
from cdo_deploy.sources import FolderSource, classify_source, open_source


class _Runner:
    """Runs a source in a thread and collects what it emits."""

    def __init__(self, src):
        self.src, self.items, self.stop = src, [], threading.Event()
        self.thread = threading.Thread(target=src.run, args=(self.items.append, self.stop), daemon=True)

    def __enter__(self):
        self.thread.start()
        time.sleep(0.3)  # let the observer start
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


def _png(part, ng=False, seed=0) -> bytes:
    return cv2.imencode(".png", part(ng, seed=seed))[1].tobytes()


def test_slow_chunked_write_is_read_once_and_complete(tmp_path, part, wait):
    data = _png(part, True)
    with _Runner(FolderSource(str(tmp_path), settle_s=0.5, poll_s=0.02)) as r:
        with open(tmp_path / "slow.png", "wb") as f:
            for i in range(0, len(data), len(data) // 8 + 1):
                f.write(data[i:i + len(data) // 8 + 1])
                f.flush()
                time.sleep(0.12)
        (tmp_path / "notes.txt").write_text("not an image")
        (tmp_path / "tmp.png.part").write_bytes(b"partial")
        assert wait(lambda: len(r.items) >= 1, 10)
        time.sleep(1.0)  # more events and rescans must not re-emit
    assert [Path(i.source_id).name for i in r.items] == ["slow.png"]
    assert r.items[0].data == data and r.items[0].path == tmp_path / "slow.png"
    assert r.src.ignored >= 2


def test_renamed_in_and_reopened_files(tmp_path, part, wait):
    with _Runner(FolderSource(str(tmp_path), settle_s=0.3, poll_s=0.02)) as r:
        tmp = tmp_path.parent / f"{tmp_path.name}-staging.png"
        tmp.write_bytes(_png(part, seed=1))
        os.rename(tmp, tmp_path / "moved.png")
        # a writer that re-opens the file per chunk (close events in between)
        data = _png(part, seed=2)
        step = len(data) // 6 + 1
        for i in range(0, len(data), step):
            with open(tmp_path / "reopened.png", "ab") as f:
                f.write(data[i:i + step])
            time.sleep(0.08)
        assert wait(lambda: len(r.items) >= 2, 10)
        time.sleep(0.6)
    got = {Path(i.source_id).name: i.data for i in r.items}
    assert sorted(got) == ["moved.png", "reopened.png"] and got["reopened.png"] == data


def test_existing_files_only_with_include_existing_and_done_ones_never(tmp_path, part, wait):
    sub = tmp_path / "test" / "good"
    sub.mkdir(parents=True)
    for i in range(3):
        (sub / f"{i}.png").write_bytes(_png(part, seed=i))
    done = {str(sub / "0.png")}
    with _Runner(FolderSource(str(tmp_path), done, settle_s=0.2)) as r:
        time.sleep(0.5)
    assert r.items == []
    with _Runner(FolderSource(str(tmp_path), done, include_existing=True, settle_s=0.2)) as r:
        assert wait(lambda: len(r.items) >= 2, 10)
        time.sleep(0.3)
    assert sorted(Path(i.source_id).name for i in r.items) == ["1.png", "2.png"]


def test_parts_that_arrive_between_start_up_and_the_watch_are_inspected(tmp_path, part, wait):
    # cdo-inspect opens the source, loads the model, starts its HTTP server and only then watches: a part
    # dropped in that gap is new (the line never loses it), one that was there at start-up is left alone
    (tmp_path / "before.png").write_bytes(_png(part, seed=0))
    src = FolderSource(str(tmp_path), settle_s=0.1, poll_s=0.02)
    src.open()
    for i in range(3):
        (tmp_path / f"gap{i}.png").write_bytes(_png(part, seed=i + 1))
    with _Runner(src) as r:
        assert wait(lambda: len(r.items) >= 3, 10)
        time.sleep(0.3)
    assert sorted(Path(i.source_id).name for i in r.items) == ["gap0.png", "gap1.png", "gap2.png"]


def test_once_processes_existing_then_returns_and_skips_output_folder(tmp_path, part):
    out = tmp_path / "out"
    (out / "overlays").mkdir(parents=True)
    (out / "overlays" / "x.png").write_bytes(_png(part))
    (tmp_path / "a.png").write_bytes(_png(part))
    src = open_source(str(tmp_path), once=True, exclude=[out], settle_s=0.2)
    items: list = []
    src.run(items.append, threading.Event())
    assert [Path(i.source_id).name for i in items] == ["a.png"]


def test_burst_of_thousands_of_files_each_exactly_once(tmp_path, part, wait):
    data = _png(part)
    n = 2000
    with _Runner(FolderSource(str(tmp_path), settle_s=0.3, poll_s=0.02)) as r:
        for i in range(n):
            (tmp_path / f"{i:05d}.png").write_bytes(data)
        assert wait(lambda: len(r.items) >= n, 60)
        time.sleep(0.5)
    ids = [i.source_id for i in r.items]
    assert len(ids) == len(set(ids)) == n


def test_classification_and_errors(tmp_path):
    assert classify_source(str(tmp_path)) == "folder"
    with pytest.raises(CdoError, match="source not found"):
        open_source(str(tmp_path / "missing"))
    (tmp_path / "x.xyz").write_text("?")
    with pytest.raises(CdoError, match="unsupported source"):
        open_source(str(tmp_path / "x.xyz"))


def test_paths_that_left_the_folder_are_forgotten_files_that_stay_are_never_reread(tmp_path, part, wait):
    src = FolderSource(str(tmp_path), settle_s=0.05, poll_s=0.01, rescan_s=0.1)
    src.forget_min = 2
    with _Runner(src) as r:
        for i in range(8):
            (tmp_path / f"{i}.png").write_bytes(_png(part, seed=i))
        assert wait(lambda: len(r.items) == 8, 10)
        for i in range(1, 8):
            (tmp_path / f"{i}.png").unlink()  # routed away
        time.sleep(0.5)  # rescans
        assert len(src._seen) == 1  # memory follows the folder, not the parts inspected
        (tmp_path / "3.png").write_bytes(_png(part, ng=True, seed=3))  # the name reused: a new part
        assert wait(lambda: len(r.items) == 9, 10)
        time.sleep(0.5)
    assert [Path(i.source_id).name for i in r.items].count("0.png") == 1  # stayed: read once
    assert r.items[-1].data == _png(part, ng=True, seed=3)
