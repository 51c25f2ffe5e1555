"""results.jsonl (append, flush, crash-tolerant restart), CSV, overlays, routing."""

from __future__ import annotations

import csv
import json
import time

import cv2
import numpy as np
import pytest

from cdo_deploy.results import Prediction, Region
from cdo_deploy.sinks import CsvSink, JsonlSink, OverlaySink, RouteSink, read_done
from cdo_deploy.sources.base import Item


def _pred(source="a.png", ng=True, error=None):
    if error:
        return Prediction.failed(source, error, time=time.time())
    m = np.zeros((8, 8), np.float32)
    m[2:5, 2:5] = 1.0 if ng else 0.1
    return Prediction(source, 1.0 if ng else 0.1, ng, m, (32, 32), [Region(8, 8, 20, 20, 144, 1.0)] if ng else [],
                      image_threshold=0.5, pixel_threshold=0.5, time=time.time())


def _item(path=None):
    return Item(str(path or "a.png"), time.time(), time.perf_counter(), path=path)


def test_jsonl_flushes_each_record_and_survives_a_torn_last_line(tmp_path):
    log = tmp_path / "out" / "results.jsonl"
    sink = JsonlSink(log)
    sink.open()
    sink.write(_pred("a.png"), _item(), None)
    # visible to another reader before close (flushed per record)
    assert json.loads(log.read_text())["decision"] == "NG"
    sink.write(_pred("b.png", error="truncated image"), _item(), None)
    sink.close()
    with open(log, "a") as f:
        f.write('{"source": "c.png", "sco')  # crash mid-write
    assert read_done(log) == {"a.png", "b.png"}
    sink = JsonlSink(log)
    sink.open()
    sink.write(_pred("d.png", ng=False), _item(), None)
    sink.close()
    lines = log.read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[-1])["source"] == "d.png"
    assert read_done(log) == {"a.png", "b.png", "d.png"}
    rec = json.loads(lines[1])
    assert rec["decision"] is None and rec["score"] is None and rec["error"] == "truncated image"
    assert read_done(tmp_path / "none.jsonl") == set()


def test_csv_rows(tmp_path):
    path = tmp_path / "r.csv"
    for _ in range(2):  # header only once across restarts
        sink = CsvSink(path)
        sink.open()
        sink.write(_pred(), _item(), None)
        sink.close()
    rows = list(csv.reader(path.open()))
    assert rows[0] == list(CsvSink.columns) and len(rows) == 3
    assert rows[1][0] == "a.png" and rows[1][4] == "NG" and rows[1][5] == "1" and rows[1][6] == "144"


def test_overlays_for_ng_only_or_all(tmp_path):
    img = np.full((32, 32, 3), 90, np.uint8)
    sink = OverlaySink(tmp_path / "ov", mode="ng")
    sink.open()
    ng, ok, bad = _pred("x/ng.png"), _pred("x/ok.png", ng=False), _pred("x/bad.png", error="boom")
    for pred, image in ((ng, img), (ok, img), (bad, None)):
        sink.prepare(pred, _item(), image is not None)  # names the picture before the record is written
        sink.write(pred, _item(), image)
    assert sink.count == 1 and "overlay" not in ok.extra and "overlay" not in bad.extra
    pic = cv2.imread(ng.extra["overlay"])
    assert pic.shape == (256, 256, 3)  # a 32 px part is drawn on a 256 px canvas, legible
    assert not np.array_equal(pic, cv2.resize(img, (256, 256), interpolation=cv2.INTER_NEAREST))
    sink = OverlaySink(tmp_path / "ov", mode="all")
    sink.open()
    sink.prepare(ok, _item(), True)
    sink.write(ok, _item(), np.full((32, 32), 9, np.uint16))
    assert sink.count == 1 and ok.extra["overlay"].endswith(".jpg")


def test_route_moves_files_and_quarantines_errors(tmp_path):
    inbox = tmp_path / "in"
    inbox.mkdir()
    files = {n: inbox / n for n in ("ok.png", "ng.png", "bad.png", "ng2.png")}
    for p in files.values():
        p.write_bytes(b"x")
    (tmp_path / "out" / "ng").mkdir(parents=True)
    (tmp_path / "out" / "ng" / "ng.png").write_bytes(b"older")  # name clash
    sink = RouteSink(tmp_path / "out", route=True)
    sink.open()
    sink.write(_pred(ng=False), _item(files["ok.png"]), None)
    sink.write(_pred(), _item(files["ng.png"]), None)
    sink.write(_pred(error="truncated"), _item(files["bad.png"]), None)
    sink.write(_pred(), _item(None), None)  # stream frame: nothing to move
    assert sorted(p.name for p in (tmp_path / "out").rglob("*.png")) == ["bad.png", "ng.png", "ng_1.png", "ok.png"]
    assert (tmp_path / "out" / "quarantine" / "bad.png").exists() and files["ng2.png"].exists()
    q_only = RouteSink(tmp_path / "q", route=False)
    q_only.open()
    q_only.write(_pred(), _item(files["ng2.png"]), None)
    assert files["ng2.png"].exists() and q_only.moved == 0


def test_unknown_overlay_mode():
    from cdo_deploy.errors import CdoError

    with pytest.raises(CdoError, match="overlay mode"):
        OverlaySink("x", mode="some")
