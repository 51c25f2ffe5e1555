"""cdo-inspect end to end, through the real console script in a subprocess."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import cv2
import pytest


def _one_line_error(r) -> str:
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


def test_folder_once_records_decisions_overlays_summary(tiny_bundle, demo_images, tmp_path, cli, records):
    src, expected = demo_images
    out = tmp_path / "out"
    r = cli("cdo-inspect", tiny_bundle, "--source", src, "--once", "--out", out, "--csv")
    assert r.returncode == 0, r.stderr
    recs = records(out / "results.jsonl")
    assert {rec["source"]: rec["decision"] for rec in recs} == expected
    assert len(recs) == len(expected)
    for rec in recs:
        assert rec["error"] is None and rec["image_size"] == [96, 128]
        assert (rec["score"] >= 0.75) == (rec["decision"] == "NG")
        assert set(rec["latency_ms"]) == {"read", "pre", "infer", "post", "queue", "total"}
        if rec["decision"] == "NG":
            assert rec["regions"] and Path(rec["overlay"]).is_file()
        else:
            assert rec["regions"] == [] and "overlay" not in rec
    assert len(list((out / "overlays").glob("*.jpg"))) == 3
    assert "processed 6 | OK 3 | NG 3 | errors 0" in r.stdout and "p99" in r.stdout
    assert json.loads((out / "summary.json").read_text())["processed"] == 6
    assert len((out / "results.csv").read_text().splitlines()) == 7
    # a second run over the same folder processes nothing twice
    r = cli("cdo-inspect", tiny_bundle, "--source", src, "--once", "--out", out)
    assert r.returncode == 0 and "processed 0" in r.stdout
    assert len(records(out / "results.jsonl")) == 6


def test_corrupt_and_non_image_files_are_quarantined_or_ignored(tiny_bundle, demo_images, tmp_path, cli, records):
    src, expected = demo_images
    good = src / "test" / "good"
    jpg = (good / "004.jpg").read_bytes()
    (good / "cut.jpg").write_bytes(jpg[: len(jpg) // 2])
    (good / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage IEND\xaeB`\x82")
    (good / "empty.bmp").write_bytes(b"")
    (good / "notes.txt").write_text("operator notes")
    out = tmp_path / "out"
    r = cli("cdo-inspect", tiny_bundle, "--source", src, "--once", "--out", out, "--route", "-q")
    assert r.returncode == 0, r.stderr
    recs = {Path(rec["source"]).name: rec for rec in records(out / "results.jsonl")}
    assert len(recs) == len(expected) + 3 and "notes.txt" not in recs
    assert "truncated" in recs["cut.jpg"]["error"] and recs["cut.jpg"]["decision"] is None
    assert "not a readable image" in recs["junk.png"]["error"] and "empty" in recs["empty.bmp"]["error"]
    assert sorted(p.name for p in (out / "quarantine").iterdir()) == ["cut.jpg", "empty.bmp", "junk.png"]
    assert len(list((out / "ok").iterdir())) == 3 and len(list((out / "ng").iterdir())) == 3
    assert (good / "notes.txt").exists() and "errors 3" in r.stdout


def test_video_file_is_inspected_frame_by_frame(tiny_bundle, tmp_path, part, cli, records):
    video = tmp_path / "line.avi"
    frames = [part(i % 3 == 0, h=64, w=96, seed=i) for i in range(12)]
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (96, 64))
    for f in frames:
        vw.write(f)
    vw.release()
    out = tmp_path / "out"
    r = cli("cdo-inspect", tiny_bundle, "--source", video, "--out", out, "--overlays", "all")
    assert r.returncode == 0, r.stderr
    recs = records(out / "results.jsonl")
    assert [rec["frame"] for rec in recs] == list(range(12))  # in acquisition order
    assert [rec["decision"] for rec in recs] == ["NG" if i % 3 == 0 else "OK" for i in range(12)]
    assert recs[5]["source"] == f"{video}#5" and len(list((out / "overlays").iterdir())) == 12


def test_watcher_picks_up_slowly_written_files_exactly_once(tiny_bundle, tmp_path, part, cli_popen, records, wait):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    (inbox / "old.png").write_bytes(cv2.imencode(".png", part(True))[1].tobytes())  # existing: left alone
    p = cli_popen("cdo-inspect", tiny_bundle, "--source", inbox, "--out", out, "--settle-ms", "400")
    time.sleep(2.0)
    data = cv2.imencode(".png", part(True, seed=4))[1].tobytes()
    step = len(data) // 10 + 1
    with open(inbox / "slow.png", "wb") as f:
        for i in range(0, len(data), step):
            f.write(data[i:i + step])
            f.flush()
            time.sleep(0.1)
    staged = tmp_path / "staged.png"
    staged.write_bytes(cv2.imencode(".png", part(False))[1].tobytes())
    staged.rename(inbox / "renamed.png")
    log = out / "results.jsonl"
    assert wait(lambda: len(records(log)) >= 2, 20), p.stderr
    time.sleep(1.5)  # later events / rescans must not produce duplicates
    p.send_signal(signal.SIGTERM)
    stdout, stderr = p.communicate(timeout=20)
    assert p.returncode == 0, stderr
    recs = {Path(rec["source"]).name: rec["decision"] for rec in records(log)}
    assert recs == {"slow.png": "NG", "renamed.png": "OK"} and len(records(log)) == 2
    assert "processed 2" in stdout


def test_sigterm_mid_run_loses_no_record(tiny_bundle, tmp_path, part, cli, cli_popen, records, wait):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    p = cli_popen("cdo-inspect", tiny_bundle, "--source", inbox, "--out", out, "--settle-ms", "200",
                  "--overlays", "all", "--max-batch", "4")
    time.sleep(2.0)
    payload = cv2.imencode(".png", part(False))[1].tobytes()
    written: list[str] = []
    stop = threading.Event()

    def writer():  # keeps writing while the signal arrives
        i = 0
        while not stop.is_set() and i < 1500:
            path = inbox / f"{i:05d}.png"
            path.write_bytes(payload)
            written.append(str(path))
            i += 1
            if i % 50 == 0:
                time.sleep(0.01)

    t = threading.Thread(target=writer)
    t.start()
    log = out / "results.jsonl"
    assert wait(lambda: len(log.read_text().splitlines()) >= 100 if log.exists() else False, 30)
    p.send_signal(signal.SIGTERM)
    stdout, stderr = p.communicate(timeout=30)
    stop.set()
    t.join()
    assert p.returncode == 0, stderr
    first = records(log)  # every line parses: nothing torn
    assert first and f"processed {len(first)} |" in stdout
    assert len(written) > len(first)  # it really was stopped mid-run
    r = cli("cdo-inspect", tiny_bundle, "--source", inbox, "--once", "--out", out, "--overlays", "none")
    assert r.returncode == 0, r.stderr
    sources = [rec["source"] for rec in records(log)]
    assert len(sources) == len(set(sources)) and set(sources) == set(written)
    assert all(rec["error"] is None for rec in records(log))


def test_mqtt_messages_arrive_at_a_real_broker(tiny_bundle, demo_images, tmp_path, mosquitto, cli, wait):
    import paho.mqtt.client as mqtt

    host, port = mosquitto
    src, expected = demo_images
    got: list[dict] = []
    ready = threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="cli-test-sub")
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe("plant/line7/#", qos=1)
    sub.on_subscribe = lambda *a: ready.set()
    sub.on_message = lambda c, u, msg: got.append(json.loads(msg.payload))
    sub.connect(host, port)
    sub.loop_start()
    try:
        assert ready.wait(10)
        r = cli("cdo-inspect", tiny_bundle, "--source", src, "--once", "--out", tmp_path / "out",
                "--mqtt", f"{host}:{port}/plant/line7/cdo")
        assert r.returncode == 0, r.stderr
        assert wait(lambda: len(got) >= len(expected), 10)
    finally:
        sub.disconnect()
        sub.loop_stop()
    assert {m["source"]: m["decision"] for m in got} == expected


@pytest.mark.parametrize("args,match", [
    (["--source", "{demo}", "--once"], "no such bundle folder"),
    (["--source", "camera:57"], "cannot open camera"),
    (["--source", "{tmp}/nowhere"], "source not found"),
    (["--source", "{demo}", "--mqtt", "localhost"], "--mqtt"),
    (["--source", "camera:57", "--backend", "tensorrtt"], "did you mean tensorrt"),
])
def test_user_errors_give_one_line_and_exit_1(args, match, tiny_bundle, demo_images, tmp_path, cli):
    src, _ = demo_images
    bundle = tmp_path / "missing_bundle" if match == "no such bundle folder" else tiny_bundle
    args = [a.format(demo=src, tmp=tmp_path) for a in args]
    line = _one_line_error(cli("cdo-inspect", bundle, *args, "--out", tmp_path / "o", timeout=60))
    assert match in line


def test_threshold_override_on_the_command_line(tiny_bundle, demo_images, tmp_path, cli, records):
    src, expected = demo_images
    r = cli("cdo-inspect", tiny_bundle, "--source", f"{src}/test/*/*.png", "--out", tmp_path / "o",
            "--threshold", "0.2", "--overlays", "none")
    assert r.returncode == 0, r.stderr
    recs = records(tmp_path / "o" / "results.jsonl")
    assert len(recs) == 4 and {rec["decision"] for rec in recs} == {"NG"}
    assert {rec["image_threshold"] for rec in recs} == {0.2}


def test_pixel_threshold_above_every_pixel_still_locates_each_ng_part(tiny_bundle, demo_images, tmp_path, cli,
                                                                      records):
    src, expected = demo_images
    out = tmp_path / "o"
    r = cli("cdo-inspect", tiny_bundle, "--source", src, "--once", "--out", out, "--pixel-threshold", "1.01")
    assert r.returncode == 0, r.stderr
    recs = records(out / "results.jsonl")
    assert {rec["source"]: rec["decision"] for rec in recs} == expected
    for rec in recs:
        if rec["decision"] == "NG":
            assert [reg["kind"] for reg in rec["regions"]] == ["map_max"] and Path(rec["overlay"]).is_file()
        else:
            assert rec["regions"] == []


@pytest.mark.parametrize("args,line", [
    (["--max-batch", "0"], "Error: --max-batch must be an integer >= 1, got 0"),
    (["--workers", "two"], "Error: --workers must be an integer >= 1, got 'two'"),
    (["--sensitivity", "1.5"], "Error: --sensitivity must be a number in [0, 1] or null, got 1.5"),
    (["--overlays", "some"], "Error: --overlays must be one of ng, all, none, got 'some'"),
    (["--settle-ms", "-5"], "Error: --settle-ms must be a number >= 0, got -5.0"),
])
def test_bad_option_values_give_one_line_naming_the_option(args, line, tiny_bundle, tmp_path, cli):
    """InspectConfig checks cdo-inspect's values: out of range or of the wrong type, one line and exit 1,
    before the bundle is loaded or anything is written."""
    r = cli("cdo-inspect", tiny_bundle, "--source", tmp_path, "--once", *args, "--out", tmp_path / "o", timeout=60)
    assert _one_line_error(r).startswith(line)
    assert not (tmp_path / "o").exists()
