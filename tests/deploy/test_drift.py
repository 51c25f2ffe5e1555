"""Drift monitor on real model scores, and its drift event through a real run (MQTT, summary.json).

The score streams are real: good parts (and the same parts 15 % darker) are
scored once by the tiny bundle on ONNX Runtime; the long runs then replay
those scores, drawn with replacement, through :class:`DriftMonitor` (2,000
parts cost milliseconds instead of 2,000 inferences). The calibration
statistics are computed from other good parts, as export computes
``normal_stats`` (n, mean, std, p50, p95, p99, max).
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from cdo_deploy import Inspector
from cdo_deploy.drift import DriftConfig, DriftMonitor
from cdo_deploy.inspection import InspectConfig, run_inspection

DEFAULT = DriftConfig()


def _stats(scores: np.ndarray) -> dict[str, float]:
    q = np.percentile(scores, [50, 95, 99])
    return {"n": int(scores.size), "mean": float(scores.mean()), "std": float(scores.std()), "p50": float(q[0]),
            "p95": float(q[1]), "p99": float(q[2]), "max": float(scores.max())}


@pytest.fixture(scope="module")
def scores(tiny_bundle, tiny):
    """Real scores: calibration good parts, held-out good parts, the held-out parts 15 % darker."""
    calib = [tiny.make_part(False, seed=1000 + i) for i in range(30)]
    held = [tiny.make_part(False, seed=2000 + i) for i in range(30)]
    dark = [(img.astype(np.float32) * 0.85).round().astype(np.uint8) for img in held]
    with Inspector(tiny_bundle, "onnxruntime", "cpu") as insp:
        out = [np.array([p.score for p in insp.predict(imgs)]) for imgs in (calib, held, dark)]
    assert all(not p for p in (out[2] >= tiny.image_threshold))  # still judged OK: drift, not defects
    return {"calib": out[0], "held": out[1], "dark": out[2]}


def _replay(mon: DriftMonitor, values: np.ndarray) -> list[tuple[int, str, str]]:
    return [(i, *c) for i, v in enumerate(values) if (c := mon.add(float(v))) is not None]


def test_no_change_stays_ok_over_2000_parts(scores):
    rng = np.random.default_rng(0)
    mon = DriftMonitor(_stats(scores["calib"]))
    changes = _replay(mon, rng.choice(scores["held"], 2000))
    assert changes == [(DEFAULT.min_parts - 1, "collecting", "ok")]
    st = mon.status()
    assert st.state == "ok" and st.parts == DEFAULT.window and abs(st.shift) < DEFAULT.warn_shift
    assert st.seen == 2000


def test_darker_images_raise_warn_then_alarm_within_the_documented_parts(scores):
    """15 % darker half-way: warn after about window * 1.0 / d and alarm after window * 2.0 / d OK parts."""
    rng = np.random.default_rng(1)
    stats = _stats(scores["calib"])
    mon = DriftMonitor(stats)
    before, after = rng.choice(scores["held"], 1000), rng.choice(scores["dark"], 1000)
    changes = _replay(mon, np.concatenate([before, after]))
    assert [c[1:] for c in changes] == [("collecting", "ok"), ("ok", "warn"), ("warn", "alarm")]
    d = abs(scores["dark"].mean() - stats["mean"]) / stats["std"]  # the size of the shift, in calibration std
    assert d > 2.0
    slack = DEFAULT.check_every + 0.1 * DEFAULT.window / d  # checks every 10 parts; resampling noise
    warn_at, alarm_at = changes[1][0] - 1000, changes[2][0] - 1000
    assert 0 <= warn_at <= DEFAULT.window * DEFAULT.warn_shift / d + slack
    assert warn_at < alarm_at <= max(DEFAULT.window * DEFAULT.alarm_shift / d, warn_at + DEFAULT.check_every) + slack
    assert mon.status().shift < 0  # this model scores darker parts lower; both directions count


def test_bundle_without_statistics_turns_the_monitor_off():
    mon = DriftMonitor({})
    assert mon.add(0.3) is None and mon.status().state == "off" and not mon.enabled


def test_a_run_reports_drift_in_summary_status_line_and_an_mqtt_event(tiny_bundle, tiny, tmp_path, mosquitto,
                                                                      subscriber, wait):
    """The tiny bundle's calibration stats (mean 0.45, std 0.03) are far from these parts (about 0.34)."""
    import cv2

    inbox = tmp_path / "in"
    inbox.mkdir()
    for i in range(40):
        cv2.imwrite(str(inbox / f"{i:03d}.png"), tiny.make_part(i == 7, seed=i))
    host, port = mosquitto
    events = subscriber(host, port, "line/drift/events")
    cfg = InspectConfig(bundle=tiny_bundle, source=str(inbox), out=tmp_path / "out", once=True,
                        mqtt=f"{host}:{port}/line/drift", overlays="none",
                        drift=DriftConfig(window=30, min_parts=10, check_every=5))
    result = run_inspection(cfg, threading.Event())
    assert result.summary.drift["state"] == "alarm" and result.summary.ok == 39
    assert "drift alarm (-" in result.summary.format()
    doc = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert doc["drift"]["state"] == "alarm" and doc["drift"]["shift"] < -2
    assert wait(lambda: any(m.get("state") == "alarm" for m in events.messages), 10)
    alarm = next(m for m in events.messages if m.get("state") == "alarm")
    assert alarm["event"] == "drift" and alarm["previous"] == "warn"  # the warning always comes first
    records = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert alarm["model_sha256"] == records[0]["model_sha256"]
    assert all(r["decision"] == ("NG" if r["source"].endswith("007.png") else "OK") for r in records)  # unchanged


def test_a_calibrated_run_whose_images_get_darker_half_way_warns_then_alarms(tiny, tmp_path, scores, mosquitto,
                                                                             subscriber, wait):
    """End to end: a bundle calibrated on good parts; 60 good parts, then the same kind of parts 15 % darker.

    A small window (60, judged from 20, checked every 5) keeps the run at 120 inferences; the
    documented bound scales with it: warn within window * 1.0 / d, alarm within
    max(window * 2.0 / d, warn + check_every) OK parts of the change (plus check_every).
    """
    import cv2

    from cdo_deploy.bundle import BundleMeta

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    tiny.build_onnx(bundle / "model.onnx")
    stats = _stats(scores["calib"])
    BundleMeta(height=tiny.size, width=tiny.size, backbone="tiny-brightness", image_threshold=tiny.image_threshold,
               pixel_threshold=tiny.pixel_threshold, threshold_source="test", normal_stats=stats).save(bundle)
    inbox = tmp_path / "in"
    inbox.mkdir()
    for i in range(120):
        img = tiny.make_part(False, seed=3000 + i)
        if i >= 60:
            img = (img.astype(np.float32) * 0.85).round().astype(np.uint8)
        cv2.imwrite(str(inbox / f"{i:03d}.png"), img)
    host, port = mosquitto
    events = subscriber(host, port, "line/dark/events")
    cfg = DriftConfig(window=60, min_parts=20, check_every=5)
    result = run_inspection(InspectConfig(bundle=bundle, source=str(inbox), out=tmp_path / "out", once=True,
                                          mqtt=f"{host}:{port}/line/dark", overlays="none", drift=cfg))
    assert result.summary.ok == 120 and result.summary.drift["state"] == "alarm"
    assert wait(lambda: len(events.messages) >= 3, 10)
    changes = [(int(m["source"][-7:-4]), m["previous"], m["state"]) for m in events.messages]
    assert [c[1:] for c in changes] == [("collecting", "ok"), ("ok", "warn"), ("warn", "alarm")], changes
    assert changes[0][0] == cfg.min_parts - 1  # ok while the parts are unchanged
    d = abs(scores["dark"].mean() - stats["mean"]) / stats["std"]
    warn_at, alarm_at = changes[1][0] - 60, changes[2][0] - 60
    assert 0 <= warn_at <= cfg.window * cfg.warn_shift / d + cfg.check_every
    assert warn_at < alarm_at <= max(cfg.window * cfg.alarm_shift / d, warn_at + cfg.check_every) + cfg.check_every
