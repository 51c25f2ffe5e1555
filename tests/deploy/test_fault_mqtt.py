"""Fault injection, MQTT: a real mosquitto absent, stopped mid-run and restarted, cdo-inspect restarted."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import cv2


def _feed(inbox: Path, part, start: int, n: int) -> list[str]:
    paths = []
    for i in range(start, start + n):
        tmp = inbox.parent / f".staging{i}.png"
        cv2.imwrite(str(tmp), part(i % 3 == 0, h=48, w=64, seed=i % 8))
        tmp.rename(inbox / f"{i:04d}.png")  # appears complete, as camera software that renames writes it
        paths.append(str(inbox / f"{i:04d}.png"))
    return paths


def test_no_broker_at_all_still_records_every_part(tiny_bundle, tmp_path, part, unused_port, cli, records):
    """The defect: with the broker down only 1 of 8 images reached results.jsonl (paho raised in write)."""
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    written = _feed(inbox, part, 0, 8)
    r = cli("cdo-inspect", tiny_bundle, "--source", inbox, "--once", "--out", out,
            "--mqtt", f"127.0.0.1:{unused_port}/line/cdo", timeout=60)
    assert r.returncode == 0, r.stderr
    assert sorted(rec["source"] for rec in records(out / "results.jsonl")) == written
    assert "Traceback" not in r.stderr and "processed 8" in r.stdout and "mqtt unconfirmed 8" in r.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sink_errors"] == {"overlay": 0, "mqtt": 0, "route": 0}
    assert summary["sink_status"] == {"mqtt_unconfirmed": 8}
    spooled = [json.loads(ln) for ln in (out / "mqtt_spool.jsonl").read_text().splitlines()]
    assert sorted(json.loads(m["payload"])["source"] for m in spooled if "payload" in m) == written


def test_broker_stopped_and_restarted_mid_run_and_inspect_restarted_during_the_outage(
        tiny_bundle, tmp_path, part, broker, subscriber, cli_popen, records, wait):
    """Every image ends with exactly one record, and every record's id reaches a subscriber (duplicates allowed)."""
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    log = out / "results.jsonl"
    broker.start()
    sub = subscriber(broker.host, broker.port, "plant/#", persistent=True)
    args = ("cdo-inspect", tiny_bundle, "--source", inbox, "--include-existing", "--out", out, "--settle-ms", "100",
            "--overlays", "none", "--mqtt", f"{broker.spec}/plant/line1")
    p = cli_popen(*args)
    written = _feed(inbox, part, 0, 10)
    assert wait(lambda: len(records(log)) == 10, 30), p.stderr
    broker.stop()  # mid-run
    written += _feed(inbox, part, 10, 10)
    assert wait(lambda: len(records(log)) == 20, 30)  # inspection goes on without the broker
    p.send_signal(signal.SIGTERM)  # and cdo-inspect is restarted during the outage
    _, stderr = p.communicate(timeout=30)
    assert p.returncode == 0, stderr
    assert "not confirmed by the broker at shutdown" in stderr
    broker.start()
    p = cli_popen(*args)
    written += _feed(inbox, part, 20, 10)
    assert wait(lambda: len(records(log)) == 30, 30), p.stderr
    broker.stop()
    broker.start()  # a second outage, short
    written += _feed(inbox, part, 30, 10)
    assert wait(lambda: len(records(log)) == 40, 30)
    recs = records(log)
    delivered = wait(lambda: sub.ids >= {rec["id"] for rec in recs}, 30)
    p.send_signal(signal.SIGTERM)
    _, stderr = p.communicate(timeout=30)
    missing = sorted(Path(rec["source"]).name for rec in recs if rec["id"] not in sub.ids)
    assert delivered, (missing, stderr)
    assert p.returncode == 0, stderr
    sources = [rec["source"] for rec in records(log)]
    assert len(sources) == len(set(sources)) == 40 and set(sources) == set(written)
    assert len({rec["id"] for rec in recs}) == 40 and all(rec["id"] for rec in recs)
    delivered = {m["id"]: m for m in sub.messages}
    assert all(delivered[rec["id"]]["source"] == rec["source"] for rec in recs)
