"""MQTT publishing of every decision (paho-mqtt), at least once, across outages and restarts.

``--mqtt host:port/topic`` (port defaults to 1883). Each result is published
with QoS 1 as its ``results.jsonl`` record (JSON, same content), whose ``id``
is stable: the same part, model file and thresholds always give the same id,
so a consumer drops the duplicates that at-least-once delivery implies. Run
events (a change of the drift state, :mod:`cdo_deploy.drift`) go the same way
to ``<topic>/events`` as ``{"event": "drift", "state": ..., ...}``.

Delivery:

* every message is first appended to the spool (``OUT/mqtt_spool.jsonl``,
  :mod:`.spool`) and leaves it only when the broker confirms it (PUBACK);
* a sender thread hands messages to paho, at most ``max_inflight`` at a time;
  paho sends them when connected, re-sends unconfirmed ones after a reconnect
  and reconnects by itself (1 s back-off doubling to 10 s). While the broker
  is away, messages wait in memory (up to ``max_backlog``) and beyond that in
  the spool file only, and are read back from it once the backlog is sent
  (memory stays bounded however long the outage);
* at shutdown the sink waits up to ``drain_timeout_s`` for confirmations;
  whatever is unconfirmed stays in the spool and is sent at the next start
  (also after a kill: the spool is written before paho sees a message);
* at start, records of ``results.jsonl`` written after the spool's newest
  message (a kill between the two writes; at most one output group) are spooled.

Example:
    >>> parse_mqtt_spec("broker.local:1884/line3/cdo")
    ('broker.local', 1884, 'line3/cdo')
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CdoError
from ..results import Prediction
from ..sources.base import Item
from .base import GROUP_MAX, SINKS, Sink
from .jsonl import read_tail, record_line
from .spool import Message, Spool

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
    """Publish results to an MQTT broker, at least once.

    Args:
        spec: ``host[:port]/topic``.
        spool: spool file (``None``: messages are kept in memory only, lost with the process).
        results: the run's ``results.jsonl``, to spool records a kill left unspooled.
        qos: 1 (at least once) or 0 (fire and forget; nothing is spooled then).
        drain_timeout_s: longest wait for confirmations at shutdown.
        max_inflight: most messages handed to paho at a time.
        max_backlog: most messages waiting in memory; more wait in the spool file only.
    """

    def __init__(self, spec: str, spool: str | Path | None = None, results: str | Path | None = None, qos: int = 1,
                 connect_timeout_s: float = 3.0, drain_timeout_s: float = 5.0, max_inflight: int = 200,
                 max_backlog: int = 2000, client_id: str | None = None) -> None:
        self.host, self.port, self.topic = parse_mqtt_spec(spec)
        if qos not in (0, 1):
            raise CdoError(f"MQTT qos must be 0 or 1, got {qos}")
        self.qos, self.connect_timeout_s, self.drain_timeout_s = qos, connect_timeout_s, drain_timeout_s
        self.max_inflight, self.max_backlog = max_inflight, max_backlog
        self.client_id = client_id or f"cdo-inspect-{os.getpid()}"
        self.spool = Spool(spool) if spool is not None and qos == 1 else None
        self.results = Path(results) if results is not None else None
        self.published = 0  # confirmed by the broker (qos 1) / handed to paho (qos 0)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._connected = threading.Event()
        self._backlog: deque[Message] = deque()
        self._inflight: dict[int, Message] = {}
        self._early: set[int] = set()  # PUBACKs that arrived before publish() returned
        self._unconfirmed = 0
        self._spilled = False  # some pending messages are only in the spool file
        self._client: Any = None
        self._sender: threading.Thread | None = None
        self._closing = False
        self._kept: tuple[int, ...] = (0,)

    # -- life cycle -----------------------------------------------------------
    def open(self) -> None:
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise CdoError("paho-mqtt is not installed: pip install 'cdo[deploy]'") from None
        if self.spool is not None:
            try:
                pending, total = self.spool.open(limit=self.max_backlog)
                gap = self._unspooled_records()
            except OSError as e:
                raise CdoError(f"cannot use the MQTT spool {self.spool.path}: {e.strerror or e}") from None
            if total:
                log.warning("MQTT: %d message(s) from an earlier run were not confirmed; sending them again", total)
            with self._lock:
                for msg in pending:
                    self._enqueue(msg)
                self._unconfirmed += total - len(pending)  # read back from the spool once these are sent
                self._spilled = total > len(pending)
                for msg in gap:
                    self._enqueue(msg)
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id)
        client.max_queued_messages_set(self.max_inflight + 100)
        # published while disconnected: paho keeps the message and sends it after the reconnect
        self._kept = (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN)
        client.on_connect, client.on_disconnect, client.on_publish = (self._on_connect, self._on_disconnect,
                                                                      self._on_publish)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        try:
            client.connect_async(self.host, self.port, keepalive=30)
        except (OSError, ValueError) as e:
            raise CdoError(f"MQTT: cannot connect to {self.host}:{self.port}: {e}") from None
        client.loop_start()
        self._client = client
        self._sender = threading.Thread(target=self._send_loop, name="cdo-mqtt-send", daemon=True)
        self._sender.start()

    def _unspooled_records(self) -> list[Message]:
        """Records of results.jsonl after the spool's newest message (a kill between the two writes)."""
        if self.results is None or self.spool is None or self.spool.last_id is None:
            return []
        tail = read_tail(self.results)
        ids = [rec.get("id") for rec, _ in tail]
        if self.spool.last_id not in ids:
            return []
        after = tail[ids.index(self.spool.last_id) + 1:]
        if not after or len(after) > GROUP_MAX:  # a kill leaves at most one group unspooled
            return []  # more than one group: those were written by a run without --mqtt
        msgs = [(rec["id"], self.topic, line) for rec, line in after if rec.get("id")]
        for msg in msgs:
            self.spool.add(*msg)
        log.warning("MQTT: %d record(s) of %s were never spooled (killed in between); sending them now",
                    len(msgs), self.results)
        return msgs

    def close(self) -> None:
        if self._client is None:
            return
        # wait for confirmations while connected (a broker that is away gets a short grace only)
        deadline = time.monotonic() + self.drain_timeout_s
        grace = time.monotonic() + min(1.0, self.drain_timeout_s)
        while self._unconfirmed and time.monotonic() < (deadline if self._connected.is_set() else grace):
            self._wake.set()
            time.sleep(0.02)
        self._closing = True
        self._wake.set()
        if self._sender is not None:
            self._sender.join(5)
        if self._unconfirmed:
            where = f"kept in {self.spool.path} and sent at the next start" if self.spool else "lost (no spool)"
            log.warning("MQTT: %d message(s) not confirmed by the broker at shutdown: %s", self._unconfirmed, where)
        self._client.disconnect()
        self._client.loop_stop()
        self._client = None
        if self.spool is not None:
            with self._lock:
                if not self._unconfirmed:
                    self.spool.reset()
                self.spool.close()

    # -- results --------------------------------------------------------------
    def write(self, pred: Prediction, item: Item, image: np.ndarray | None) -> None:
        line = record_line(pred)
        self._publish(pred.id or hashlib.sha256(line.encode()).hexdigest()[:24], self.topic, line)

    def event(self, kind: str, doc: dict[str, Any]) -> None:
        """Publish a run event (``{"event": kind, ...}``) on ``<topic>/events``, at least once like a result."""
        line = json.dumps({"event": kind, **doc}, sort_keys=True)
        self._publish(hashlib.sha256(line.encode()).hexdigest()[:24], f"{self.topic}/events", line)

    def _publish(self, msg_id: str, topic: str, line: str) -> None:
        msg = (msg_id, topic, line)
        spooled = False
        try:
            with self._lock:  # spooling and queueing under one lock: a read-back never sees it half done
                try:
                    if self.spool is not None:
                        self.spool.add(*msg)  # OSError (disk full): still sent from memory, and counted
                        spooled = True
                finally:
                    self._enqueue(msg, spooled)
        finally:
            self._wake.set()

    def _enqueue(self, msg: Message, spooled: bool = True) -> None:
        """Count a message and queue it in memory, or leave it to the spool file (lock held)."""
        self._unconfirmed += 1
        if not spooled or (not self._spilled and len(self._backlog) < self.max_backlog):
            self._backlog.append(msg)
        else:
            self._spilled = True  # it is in the spool file; read back once the backlog is sent

    def status(self) -> dict[str, int]:
        return {"mqtt_unconfirmed": self._unconfirmed}

    # -- sender thread and paho callbacks ---------------------------------------
    def _send_loop(self) -> None:
        warn_at = time.monotonic() + self.connect_timeout_s
        while not self._closing:
            self._wake.wait(0.5)
            self._wake.clear()
            if self._connected.is_set():
                warn_at = 0.0  # connected once: later outages are logged by _on_disconnect
            if warn_at and time.monotonic() >= warn_at:
                where = f"kept in {self.spool.path}" if self.spool else "kept in memory"
                log.warning("MQTT broker %s:%d not reachable yet; messages are %s and sent once it is",
                            self.host, self.port, where)
                warn_at = 0.0
            try:
                self._send_some()
            except Exception:  # noqa: BLE001 - keep sending; the messages stay in the spool
                log.exception("MQTT sender")

    def _send_some(self) -> None:
        with self._lock:
            if not self._backlog and self._spilled and not self._inflight and self.spool is not None:
                pending = self.spool.read_pending(self.max_backlog + 1)  # the spilled ones, from the file
                self._backlog.extend(pending[: self.max_backlog])
                self._spilled = len(pending) > self.max_backlog
            room = self.max_inflight - len(self._inflight)
            batch = [self._backlog.popleft() for _ in range(min(room, len(self._backlog)))]
            if not self._unconfirmed and self.spool is not None:
                self.spool.reset()
            elif self.spool is not None:
                self.spool.compact_if_large()
        for i, msg in enumerate(batch):
            info = self._client.publish(msg[1], msg[2], qos=self.qos)
            with self._lock:
                if info.rc not in self._kept:
                    self._backlog.extendleft(reversed(batch[i:]))  # e.g. paho's queue full: try again later
                    return
                if self.qos == 0 or info.mid in self._early:
                    self._early.discard(info.mid)
                    self._confirmed(msg)
                else:
                    self._inflight[info.mid] = msg

    def _confirmed(self, msg: Message) -> None:
        self._unconfirmed -= 1
        self.published += 1
        if self.spool is not None:
            try:
                self.spool.ack(msg[0])
            except OSError as e:  # it will be sent again after a restart: a duplicate, never a loss
                log.debug("MQTT spool ack failed: %s", e)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        with self._lock:
            msg = self._inflight.pop(mid, None)
            if msg is None:
                self._early.add(mid)
            else:
                self._confirmed(msg)
        self._wake.set()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("MQTT connection to %s:%d refused: %s", self.host, self.port, reason)
            return
        log.info("MQTT connected to %s:%d, topic %s", self.host, self.port, self.topic)
        self._connected.set()
        self._wake.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self._connected.clear()
        if not self._closing:
            log.warning("MQTT disconnected from %s:%d (%s); reconnecting; messages are kept until confirmed",
                        self.host, self.port, reason)
