"""MQTT publishing of every decision (paho-mqtt).

``--mqtt host:port/topic`` (port defaults to 1883). Each result is published
as JSON (``source``, ``frame``, ``time``, ``score``, ``decision``,
``regions``, ``latency_ms``, ``error``, ``source_meta``) with QoS 1. The connection is made in
the background and re-made after drops by paho; messages published while the
broker is away are queued (up to ``max_queued``) and sent on reconnect. At
shutdown the sink waits up to ``drain_timeout_s`` for outstanding messages.

Example:
    >>> parse_mqtt_spec("broker.local:1884/line3/cdo")
    ('broker.local', 1884, 'line3/cdo')
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from typing import Any

import numpy as np

from ..errors import CdoError
from ..results import Prediction
from ..sources.base import Item
from .base import SINKS, Sink

__all__ = ["MqttSink", "parse_mqtt_spec"]

log = logging.getLogger(__name__)


def parse_mqtt_spec(spec: str) -> tuple[str, int, str]:
    """``host[:port]/topic`` -> (host, port, topic).

    Raises:
        CdoError: no topic, or a bad port.
    """
    hostport, sep, topic = spec.partition("/")
    host, _, port = hostport.partition(":")
    if not sep or not topic or not host:
        raise CdoError(f"bad --mqtt {spec!r}: use host:port/topic, e.g. localhost:1883/line1/cdo")
    try:
        return host, int(port or 1883), topic
    except ValueError:
        raise CdoError(f"bad --mqtt port in {spec!r}") from None


@SINKS.register("mqtt")
class MqttSink(Sink):
    """Publish results to an MQTT broker."""

    def __init__(self, spec: str, qos: int = 1, connect_timeout_s: float = 3.0, drain_timeout_s: float = 5.0,
                 max_queued: int = 10000, client_id: str | None = None) -> None:
        self.host, self.port, self.topic = parse_mqtt_spec(spec)
        self.qos, self.connect_timeout_s, self.drain_timeout_s = qos, connect_timeout_s, drain_timeout_s
        self.max_queued = max_queued
        self.client_id = client_id or f"cdo-inspect-{os.getpid()}"
        self.published = 0
        self._pending: deque[Any] = deque()
        self._connected = threading.Event()
        self._client: Any = None
        self._closing = False

    def open(self) -> None:
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise CdoError("paho-mqtt is not installed: pip install 'cdo[deploy]'") from None
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id)
        client.max_queued_messages_set(self.max_queued)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        try:
            client.connect_async(self.host, self.port, keepalive=30)
        except (OSError, ValueError) as e:
            raise CdoError(f"MQTT: cannot connect to {self.host}:{self.port}: {e}") from None
        client.loop_start()
        self._client = client
        if not self._connected.wait(self.connect_timeout_s):
            log.warning("MQTT broker %s:%d not reachable yet; messages are queued until it is",
                        self.host, self.port)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("MQTT connection to %s:%d refused: %s", self.host, self.port, reason)
            return
        log.info("MQTT connected to %s:%d, topic %s", self.host, self.port, self.topic)
        self._connected.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self._connected.clear()
        if not self._closing:
            log.warning("MQTT disconnected from %s:%d (%s); reconnecting", self.host, self.port, reason)

    def write(self, pred: Prediction, item: Item, image: np.ndarray | None) -> None:
        rec = pred.to_record()
        payload = {k: rec[k] for k in ("source", "frame", "time", "score", "decision", "regions",
                                       "latency_ms", "error", "source_meta")}
        info = self._client.publish(self.topic, json.dumps(payload), qos=self.qos)
        self._pending.append(info)
        while self._pending and self._pending[0].is_published():
            self._pending.popleft()
            self.published += 1

    def close(self) -> None:
        if self._client is None:
            return
        deadline = time.monotonic() + self.drain_timeout_s
        while self._pending and time.monotonic() < deadline:
            if self._pending[0].is_published():
                self._pending.popleft()
                self.published += 1
            else:
                time.sleep(0.01)
        if self._pending:
            log.warning("MQTT: %d message(s) not confirmed by the broker at shutdown", len(self._pending))
        self._closing = True
        self._client.disconnect()
        self._client.loop_stop()
        self._client = None
