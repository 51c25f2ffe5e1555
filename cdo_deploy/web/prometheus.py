"""``/metrics``: the run in Prometheus text format, from a registry of its own (never the global one).

One collector reads a :class:`~cdo_deploy.web.view.LineView` at scrape time;
nothing is computed for Prometheus on the inspection path. Names (all
prefixed ``cdo_``; see ``docs/guides/monitoring.md``):

=====================================  ========== ===========================================
name                                   type       labels / meaning
=====================================  ========== ===========================================
cdo_parts_total                        counter    ``decision`` (ok, ng, error), ``source`` kind
cdo_latency_seconds                    histogram  end to end (acquisition to output)
cdo_stage_latency_seconds              histogram  ``stage``: decode, preprocess, infer,
                                                  postprocess, queue, output
cdo_queue_depth                        gauge      ``queue``: acquired, preprocessed, inferred
cdo_dropped_frames_total               counter    frames a live source let go
cdo_missed_parts_total                 counter    triggered parts without a decision
cdo_skipped_parts_total                counter    already in results.jsonl at start
cdo_source_reconnects_total            counter    camera / stream reconnections
cdo_sink_failures_total                counter    ``sink``: failures of a secondary sink
cdo_mqtt_spool_depth                   gauge      MQTT messages not yet confirmed (with --mqtt)
cdo_camera_connected                   gauge      1/0, where the source knows it
cdo_camera_trigger_info                gauge      ``trigger`` mode, where the source knows it
cdo_throughput_parts_per_second        gauge      over the last 5 s
cdo_bundle_info                        gauge (1)  ``bundle``, ``model_sha256``, ``variant``, ...
cdo_threshold                          gauge      ``kind``: image, pixel (score units)
cdo_drift_state                        gauge      ``state``: 1 for the current one
cdo_drift_level                        gauge      -1 not judging, 0 ok, 1 warn, 2 alarm
cdo_drift_shift / _z / _p_value /      gauge      see :mod:`cdo_deploy.drift`
_p95_shift / _ks / _window_parts /
_window_mean / _calibration_mean /
_calibration_std
=====================================  ========== ===========================================

Example:
    >>> registry = metrics_registry(view)   # doctest: +SKIP
    >>> text = render(registry)             # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, Iterator

from ..drift import DRIFT_STATES
from .view import LineView

__all__ = ["CONTENT_TYPE", "metrics_registry", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_DRIFT_GAUGES = ("shift", "z", "p_value", "p95_shift", "ks", "window_mean")


class _RunCollector:
    """Yields every ``cdo_`` metric family from one snapshot of the view."""

    def __init__(self, view: LineView) -> None:
        self.view = view

    def describe(self) -> list[Any]:
        return []  # names are fixed; no need to collect at registration

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        view = self.view
        st = view.state(recent=False)
        s, info = st["summary"], view.info
        parts = CounterMetricFamily("cdo_parts", "Parts inspected, by decision", labels=["decision", "source"])
        for decision in ("ok", "ng", "errors"):
            parts.add_metric([decision.rstrip("s"), info["source_kind"]], s[decision])
        yield parts
        stages, total = view.live.histograms()
        e2e = HistogramMetricFamily("cdo_latency_seconds", "End-to-end latency, acquisition to output")
        e2e.add_metric([], total[0], total[1])
        yield e2e
        hist = HistogramMetricFamily("cdo_stage_latency_seconds", "Latency per pipeline stage", labels=["stage"])
        for name, (buckets, sum_s) in stages.items():
            hist.add_metric([name], buckets, sum_s)
        yield hist
        queues = GaugeMetricFamily("cdo_queue_depth", "Items waiting in a stage queue", labels=["queue"])
        for name, n in st["queues"].items():
            queues.add_metric([name], n)
        yield queues
        for name, key, doc in (("cdo_dropped_frames", "dropped", "Frames a live source let go"),
                               ("cdo_missed_parts", "missed", "Triggered parts that got no decision"),
                               ("cdo_skipped_parts", "skipped_already_processed", "Already in results.jsonl"),
                               ("cdo_source_reconnects", "reconnects", "Camera/stream reconnections")):
            yield CounterMetricFamily(name, doc, value=s[key])
        sinks = CounterMetricFamily("cdo_sink_failures", "Failures of a secondary sink", labels=["sink"])
        for name, n in s["sink_errors"].items():
            sinks.add_metric([name], n)
        yield sinks
        if "mqtt_unconfirmed" in s["sink_status"]:
            yield GaugeMetricFamily("cdo_mqtt_spool_depth", "MQTT messages not yet confirmed by the broker",
                                    value=s["sink_status"]["mqtt_unconfirmed"])
        device = st["device"]
        if "connected" in device:
            yield GaugeMetricFamily("cdo_camera_connected", "1 while the camera is connected",
                                    value=int(bool(device["connected"])))
        if "trigger" in device:
            trig = GaugeMetricFamily("cdo_camera_trigger_info", "Trigger mode of the camera", labels=["trigger"])
            trig.add_metric([str(device["trigger"])], 1)
            yield trig
        yield GaugeMetricFamily("cdo_throughput_parts_per_second", "Parts per second over the last 5 s",
                                value=s["fps"])
        labels = ["bundle", "model_sha256", "variant", "backend", "device"]
        bundle = GaugeMetricFamily("cdo_bundle_info", "The bundle that decides (always 1)", labels=labels)
        bundle.add_metric([str(info.get(k) or "") for k in labels], 1)
        yield bundle
        thr = GaugeMetricFamily("cdo_threshold", "Decision thresholds, score units", labels=["kind"])
        thr.add_metric(["image"], info["image_threshold"])
        thr.add_metric(["pixel"], info["pixel_threshold"])
        yield thr
        yield from _drift(s["drift"])


def _drift(d: dict[str, Any]) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    state = d.get("state", "off")
    fam = GaugeMetricFamily("cdo_drift_state", "Drift state of good parts' scores (1 = current)", labels=["state"])
    for name in DRIFT_STATES:
        fam.add_metric([name], int(name == state))
    yield fam
    yield GaugeMetricFamily("cdo_drift_level", "-1 not judging, 0 ok, 1 warn, 2 alarm",
                            value={"ok": 0, "warn": 1, "alarm": 2}.get(state, -1))
    yield GaugeMetricFamily("cdo_drift_window_parts", "OK parts in the drift window", value=d.get("parts", 0))
    for key in _DRIFT_GAUGES:
        if d.get(key) is not None:
            yield GaugeMetricFamily(f"cdo_drift_{key}", f"Drift statistic {key} (see cdo_deploy.drift)", value=d[key])
    for key in ("mean", "std"):
        if d.get(f"ref_{key}") is not None:
            yield GaugeMetricFamily(f"cdo_drift_calibration_{key}", f"Calibration good scores' {key}",
                                    value=d[f"ref_{key}"])


def metrics_registry(view: LineView) -> Any:
    """A new ``CollectorRegistry`` holding only this run's collector.

    Raises:
        CdoError: prometheus-client is not installed.
    """
    try:
        from prometheus_client import CollectorRegistry
    except ImportError:
        from ..errors import CdoError

        raise CdoError("--http needs prometheus-client: pip install 'cdo[deploy]'") from None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_RunCollector(view))
    return registry


def render(registry: Any) -> bytes:
    """The registry in Prometheus text format."""
    from prometheus_client import generate_latest

    return generate_latest(registry)
