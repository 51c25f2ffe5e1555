"""MqttSink against a real mosquitto broker started on loopback by the fixture."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from cdo_deploy.errors import CdoError
from cdo_deploy.results import Prediction
from cdo_deploy.sinks import MqttSink, parse_mqtt_spec
from cdo_deploy.sources.base import Item


class Subscriber:
    """A paho subscriber collecting JSON payloads of one topic."""

    def __init__(self, host: str, port: int, topic: str) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[dict] = []
        self._ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{time.monotonic_ns()}")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._ready.set()
        self.client.on_message = lambda c, u, msg: self.messages.append(json.loads(msg.payload))
        self.client.connect(host, port)
        self.client.loop_start()
        assert self._ready.wait(10), "subscription not acknowledged"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscriber(mosquitto):
    subs = []

    def make(topic):
        s = Subscriber(*mosquitto, topic)
        subs.append(s)
        return s

    yield make
    for s in subs:
        s.close()


def test_spec_parsing():
    assert parse_mqtt_spec("localhost/a/b") == ("localhost", 1883, "a/b")
    for bad in ("localhost:1883", "host:x/t", "/t"):
        with pytest.raises(CdoError):
            parse_mqtt_spec(bad)


def test_every_decision_arrives_at_the_broker(mosquitto, subscriber, wait):
    host, port = mosquitto
    sub = subscriber("line1/cdo")
    sink = MqttSink(f"{host}:{port}/line1/cdo")
    sink.open()
    for i in range(20):
        m = np.full((4, 4), i / 20, np.float32)
        pred = Prediction(f"p{i}.png", i / 20, i >= 15, m, (8, 8), image_threshold=0.75, pixel_threshold=0.75,
                          source_meta={"camera_id": "cam7", "frame_number": i})
        sink.write(pred, Item(pred.source, time.time(), time.perf_counter()), None)
    sink.write(Prediction.failed("bad.png", "truncated image"), Item("bad.png", 0.0, 0.0), None)
    sink.close()
    assert sink.published == 21
    assert wait(lambda: len(sub.messages) == 21, 10)
    by_source = {m["source"]: m for m in sub.messages}
    assert by_source["p16.png"]["decision"] == "NG" and by_source["p3.png"]["decision"] == "OK"
    assert by_source["p3.png"]["source_meta"] == {"camera_id": "cam7", "frame_number": 3}
    assert by_source["bad.png"]["error"] == "truncated image" and by_source["bad.png"]["decision"] is None
