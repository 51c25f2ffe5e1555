"""Pipeline internals: drop-oldest queue, live-source frame dropping, bug propagation."""

from __future__ import annotations

import queue
import threading
import time

import numpy as np
import pytest

from cdo_deploy import Inspector
from cdo_deploy.pipeline import DropOldestQueue, Pipeline, PipelineConfig, _END
from cdo_deploy.sinks.base import Sink
from cdo_deploy.sources.base import Item, Source


def test_drop_oldest_queue_drops_and_counts_but_keeps_end_marker():
    q = DropOldestQueue(3, drop=True)
    for i in range(5):
        q.put(i)
    assert q.dropped == 2 and [q.get(), q.get(), q.get()] == [2, 3, 4]
    q.put(_END, force=True)
    for i in range(4):
        q.put(i)
    assert q.get() is _END
    with pytest.raises(queue.Empty):
        DropOldestQueue(1, drop=False).get(timeout=0.01)


def test_blocking_queue_never_drops():
    q = DropOldestQueue(1, drop=False)
    q.put(1)
    t = threading.Thread(target=q.put, args=(2,))
    t.start()
    time.sleep(0.05)
    assert t.is_alive() and q.get() == 1
    t.join(1)
    assert q.get() == 2 and q.dropped == 0


class _FastCamera(Source):
    """A live source that produces frames much faster than the output stage consumes them."""

    live = True

    def __init__(self, n: int, frame: np.ndarray) -> None:
        super().__init__("fake-camera")
        self.n, self.frame = n, frame

    @classmethod
    def accepts(cls, spec: str) -> bool:
        return False

    def run(self, emit, stop):
        for i in range(self.n):
            if stop.is_set():
                return
            emit(Item(f"cam#{i}", time.time(), time.perf_counter(), image=self.frame, frame=i))


class _SlowSink(Sink):
    def __init__(self, delay: float = 0.003) -> None:
        self.delay, self.seen = delay, []

    def write(self, pred, item, image):
        time.sleep(self.delay)
        self.seen.append(pred.source)


@pytest.fixture(scope="module")
def inspector(tiny_bundle):
    with Inspector(tiny_bundle, device="cpu") as insp:
        yield insp


def test_live_source_drops_oldest_frames_and_counts_them(inspector, part):
    sink = _SlowSink()
    pipe = Pipeline(inspector, _FastCamera(400, part(False)), [sink], PipelineConfig(queue_size=4, max_batch=4))
    summary = pipe.run(threading.Event())
    assert summary.dropped > 0
    assert summary.processed + summary.dropped == 400 == len(sink.seen) + summary.dropped
    frames = [int(s.split("#")[1]) for s in sink.seen]
    assert frames == sorted(frames) and frames[-1] == 399  # in order; the newest frames survive


def test_stop_event_finishes_in_flight_work(inspector, part):
    stop = threading.Event()
    sink = _SlowSink(0.001)
    src = _FastCamera(10**6, part(True))
    src.live = False  # blocking: nothing may be dropped
    threading.Timer(0.3, stop.set).start()
    summary = Pipeline(inspector, src, [sink], PipelineConfig(queue_size=8)).run(stop)
    assert summary.dropped == 0 and summary.processed == len(sink.seen) > 0
    assert summary.ng == summary.processed


class _Broken(Sink):
    def write(self, pred, item, image):
        raise RuntimeError("disk on fire")


class _SeesRecordFirst(Sink):
    """A secondary sink that checks the primary record is already on disk when it gets a result."""

    def __init__(self, log) -> None:
        self.log, self.seen, self.unrecorded = log, [], 0

    def write(self, pred, item, image):
        self.unrecorded += f'"source": "{pred.source}"' not in self.log.read_text()
        self.seen.append(pred.source)


def test_a_failing_secondary_sink_is_counted_once_logged_and_never_stops_the_run(inspector, part, tmp_path,
                                                                                caplog):
    from cdo_deploy.sinks import JsonlSink

    log = tmp_path / "results.jsonl"
    after = _SeesRecordFirst(log)
    src = _FastCamera(50, part(False))
    src.live = False
    summary = Pipeline(inspector, src, [_Broken(), JsonlSink(log), after],
                       PipelineConfig(max_batch=4)).run(threading.Event())
    assert summary.processed == 50 and len(log.read_text().splitlines()) == 50
    assert len(after.seen) == 50 and after.unrecorded == 0  # the sink after the broken one got everything
    assert summary.sink_errors == {"_Broken": 50, "_SeesRecordFirst": 0}
    assert "sink errors _Broken 50" in summary.format()
    assert sum("disk on fire" in r.getMessage() for r in caplog.records) == 1  # once per kind of failure


def test_a_primary_record_that_cannot_be_written_stops_the_run_before_other_sinks_see_it(inspector, part, tmp_path):
    from cdo_deploy.errors import CdoError
    from cdo_deploy.sinks import JsonlSink

    class FailsAfter(JsonlSink):
        def write_group(self, preds):
            if self.count >= 8:
                raise CdoError("cannot write results.jsonl: No space left on device")
            super().write_group(preds)

    after = _SeesRecordFirst(tmp_path / "results.jsonl")
    src = _FastCamera(200, part(False))
    src.live = False
    primary = FailsAfter(tmp_path / "results.jsonl")
    with pytest.raises(CdoError, match="No space left"):
        Pipeline(inspector, src, [primary, after], PipelineConfig(max_batch=4)).run(threading.Event())
    recorded = (tmp_path / "results.jsonl").read_text().splitlines()
    assert 8 <= len(after.seen) == primary.count == len(recorded) < 200 and after.unrecorded == 0


class _MetaCamera(_FastCamera):
    """A camera that attaches per-frame metadata (camera id, frame number, camera timestamp)."""

    def run(self, emit, stop):
        for i in range(self.n):
            emit(Item(f"cam#{i}", time.time(), time.perf_counter(), image=self.frame, frame=i,
                      source_meta={"camera_id": "40123456", "frame_number": 1000 + i,
                                   "camera_timestamp_ns": 5_000_000 * i}))


def test_source_meta_reaches_results_jsonl_and_csv(inspector, part, tmp_path):
    import csv
    import json

    from cdo_deploy.sinks import CsvSink, JsonlSink

    log, table = tmp_path / "results.jsonl", tmp_path / "results.csv"
    summary = Pipeline(inspector, _MetaCamera(5, part(True)), [JsonlSink(log), CsvSink(table)],
                       PipelineConfig(max_batch=2)).run(threading.Event())
    assert summary.processed == 5
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["source_meta"]["frame_number"] for r in recs] == [1000, 1001, 1002, 1003, 1004]
    assert recs[3]["source_meta"] == {"camera_id": "40123456", "frame_number": 1003,
                                      "camera_timestamp_ns": 15_000_000}
    rows = list(csv.DictReader(table.open()))
    assert json.loads(rows[2]["source_meta"])["frame_number"] == 1002
