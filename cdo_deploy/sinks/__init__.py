"""Result sinks: results.jsonl, CSV, overlays, file routing, MQTT, the live page's state.

Example:
    >>> from cdo_deploy.sinks import SINKS
    >>> SINKS.get("jsonl").__name__
    'JsonlSink'
"""

from __future__ import annotations

from .base import SINKS, Sink
from .csv import CsvSink
from .jsonl import JsonlSink, ResultsLog, read_done, read_log
from .live import LiveSink
from .mqtt import MqttSink, parse_mqtt_spec
from .overlay import OverlaySink, render_overlay
from .route import RouteSink, move_unique

__all__ = [
    "SINKS",
    "CsvSink",
    "JsonlSink",
    "LiveSink",
    "MqttSink",
    "OverlaySink",
    "RouteSink",
    "Sink",
    "move_unique",
    "parse_mqtt_spec",
    "ResultsLog",
    "read_done",
    "read_log",
    "render_overlay",
]
