"""MqttSink against a real mosquitto broker: delivery, stable ids, outages, restarts, the spool."""

from __future__ import annotations

import time

import numpy as np
import pytest

from cdo_deploy.errors import CdoError
from cdo_deploy.results import Prediction, record_id
from cdo_deploy.sinks import MqttSink, parse_mqtt_spec
from cdo_deploy.sources.base import Item


def _pred(i: int) -> Prediction:
    m = np.full((4, 4), i / 20, np.float32)
    p = Prediction(f"p{i}.png", i / 20, i >= 15, m, (8, 8), image_threshold=0.75, pixel_threshold=0.75,
                   source_meta={"camera_id": "cam7", "frame_number": i})
    p.id = record_id("ab" * 32, 0.75, 0.75, p.source)
    return p


def _write(sink: MqttSink, preds) -> None:
    for p in preds:
        sink.write(p, Item(p.source, time.time(), time.perf_counter()), None)


def test_spec_parsing():
    assert parse_mqtt_spec("localhost/a/b") == ("localhost", 1883, "a/b")
    for bad in ("localhost:1883", "host:x/t", "/t"):
        with pytest.raises(CdoError):
            parse_mqtt_spec(bad)


def test_every_decision_arrives_at_the_broker_as_its_record(mosquitto, subscriber, wait):
    host, port = mosquitto
    sub = subscriber(host, port, "line1/cdo")
    sink = MqttSink(f"{host}:{port}/line1/cdo")
    sink.open()
    _write(sink, [_pred(i) for i in range(20)])
    sink.write(Prediction.failed("bad.png", "truncated image"), Item("bad.png", 0.0, 0.0), None)
    sink.close()
    assert sink.published == 21
    assert wait(lambda: len(sub.messages) == 21, 10)
    by_source = {m["source"]: m for m in sub.messages}
    assert by_source["p16.png"]["decision"] == "NG" and by_source["p3.png"]["decision"] == "OK"
    assert by_source["p3.png"]["source_meta"] == {"camera_id": "cam7", "frame_number": 3}
    assert by_source["p3.png"]["id"] == record_id("ab" * 32, 0.75, 0.75, "p3.png")
    assert by_source["bad.png"]["error"] == "truncated image" and by_source["bad.png"]["decision"] is None


def test_messages_of_an_outage_survive_a_restart_of_the_sink_through_the_spool(broker, subscriber, tmp_path, wait):
    """Broker down: write, close (unconfirmed: kept in the spool); a new sink sends them once it is up."""
    spool = tmp_path / "out" / "mqtt_spool.jsonl"
    sink = MqttSink(f"{broker.spec}/l/cdo", spool=spool, connect_timeout_s=0.2, drain_timeout_s=0.3)
    sink.open()
    preds = [_pred(i) for i in range(30)]
    _write(sink, preds)
    assert sink.status() == {"mqtt_unconfirmed": 30}
    sink.close()
    assert len([ln for ln in spool.read_text().splitlines() if '"payload"' in ln]) == 30
    broker.start()
    sub = subscriber(broker.host, broker.port, "l/cdo", persistent=True)
    again = MqttSink(f"{broker.spec}/l/cdo", spool=spool)
    again.open()
    assert wait(lambda: sub.ids >= {p.id for p in preds}, 15), len(sub.ids)
    again.close()
    assert again.published == 30 and again.status() == {"mqtt_unconfirmed": 0}
    assert '"payload"' not in spool.read_text()  # all confirmed: nothing left to send


def test_a_long_outage_spills_beyond_memory_to_the_spool_and_is_read_back(broker, subscriber, tmp_path, wait):
    broker.start()
    sub = subscriber(broker.host, broker.port, "l/#", persistent=True)
    broker.stop()
    sink = MqttSink(f"{broker.spec}/l/cdo", spool=tmp_path / "spool.jsonl", connect_timeout_s=0.2,
                    max_inflight=3, max_backlog=5)
    sink.open()
    preds = [_pred(i) for i in range(40)]
    _write(sink, preds)
    assert sink.status() == {"mqtt_unconfirmed": 40}
    broker.start()
    assert wait(lambda: sub.ids >= {p.id for p in preds}, 20), len(sub.ids)
    assert wait(lambda: sink.status() == {"mqtt_unconfirmed": 0}, 5)
    sink.close()
    assert sink.published == 40


def test_records_a_kill_left_unspooled_are_sent_at_start(mosquitto, subscriber, tmp_path, wait):
    """Killed after results.jsonl got a group but before the spool did: the next start sends that group."""
    from cdo_deploy.sinks import JsonlSink
    from cdo_deploy.sinks.spool import Spool

    host, port = mosquitto
    preds = [_pred(i) for i in range(8)]
    log = JsonlSink(tmp_path / "results.jsonl")
    log.open()
    log.write_group(preds)
    log.close()
    spool = Spool(tmp_path / "mqtt_spool.jsonl")
    spool.open()
    for p in preds[:5]:  # the first five were spooled and confirmed, then the kill
        spool.add(p.id, "l/cdo", "{}")
        spool.ack(p.id)
    spool.close()
    sub = subscriber(host, port, "l/cdo")
    sink = MqttSink(f"{host}:{port}/l/cdo", spool=tmp_path / "mqtt_spool.jsonl", results=tmp_path / "results.jsonl")
    sink.open()
    assert wait(lambda: len(sub.messages) >= 3, 10)
    sink.close()
    assert sorted(m["source"] for m in sub.messages) == ["p5.png", "p6.png", "p7.png"]


def test_spool_compaction_during_a_long_outage_is_not_repeated_per_message(tmp_path, monkeypatch):
    """Nothing confirmed (broker down): the file cannot shrink, so it is rewritten only each time it doubles;
    confirmed messages are still dropped once it passes compact_bytes. No message is lost either way."""
    from cdo_deploy.sinks.spool import Spool

    spool = Spool(tmp_path / "mqtt_spool.jsonl", compact_bytes=2000)
    spool.open()
    rewrites = []
    real = spool._rewrite
    monkeypatch.setattr(spool, "_rewrite", lambda pending: (rewrites.append(1), real(pending)))
    for i in range(1000):  # ~60 kB, all pending
        spool.add(f"m{i:04d}", "l/cdo", '{"x": 1}')
        spool.compact_if_large()
    assert 1 <= len(rewrites) <= 6 and spool.count_pending() == 1000  # doubling: ~log2(60 kB / 2 kB)
    for i in range(1000):  # the broker is back: every message confirmed
        spool.ack(f"m{i:04d}")
    spool.compact_if_large()
    spool.close()
    assert spool.count_pending() == 0 and (tmp_path / "mqtt_spool.jsonl").stat().st_size < 100


def test_the_broker_gets_the_line_results_jsonl_got_serialised_once(mosquitto, subscriber, wait, tmp_path):
    """The MQTT sink publishes the string the JSONL sink wrote (``Prediction.to_line``), not a new one."""
    import json

    from cdo_deploy.sinks import JsonlSink

    host, port = mosquitto
    sub = subscriber(host, port, "line2/cdo")
    log, sink = JsonlSink(tmp_path / "results.jsonl"), MqttSink(f"{host}:{port}/line2/cdo")
    log.open()
    sink.open()
    preds = [_pred(i) for i in range(3)]
    log.write_group(preds)
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert lines == [p.to_line() for p in preds] and all(p.to_line() is p.to_line() for p in preds)
    for p in preds:
        p.extra["late"] = "added after the record was written"  # not in results.jsonl, so not sent either
    _write(sink, preds)
    sink.close()
    log.close()
    assert wait(lambda: len(sub.messages) == 3, 10)
    assert sorted(sub.messages, key=lambda m: m["source"]) == [json.loads(x) for x in lines]
