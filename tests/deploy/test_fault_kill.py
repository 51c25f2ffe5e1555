"""Fault injection: cdo-inspect SIGKILLed in the middle of a burst, then restarted on the same OUT."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import cv2


def _records(log: Path) -> list[dict]:
    """Complete records only: a line torn by the kill does not count as a record."""
    out = []
    for line in log.read_text().splitlines() if log.exists() else []:
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def test_sigkill_mid_burst_then_restart_leaves_exactly_one_record_per_image(tiny_bundle, tmp_path, part,
                                                                           cli, cli_popen, wait):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    encoded = [cv2.imencode(".png", part(i % 5 == 0, h=48, w=64, seed=i))[1].tobytes() for i in range(16)]
    p = cli_popen("cdo-inspect", tiny_bundle, "--source", inbox, "--out", out, "--settle-ms", "50",
                  "--overlays", "ng", "--csv", "--route", "--max-batch", "4")
    time.sleep(2.0)
    names = [f"{i:04d}.png" for i in range(500)]

    def burst() -> None:
        for i, name in enumerate(names):
            (inbox / name).write_bytes(encoded[i % 16])

    t = threading.Thread(target=burst)
    t.start()
    log = out / "results.jsonl"
    assert wait(lambda: len(_records(log)) >= 120, 240), "cdo-inspect recorded fewer than 120 parts in 240 s"
    p.send_signal(signal.SIGKILL)  # no chance to flush or finish anything in flight
    p.wait(10)
    t.join()
    killed_at = len(_records(log))
    assert 120 <= killed_at < 500  # really killed mid-burst
    r = cli("cdo-inspect", tiny_bundle, "--source", inbox, "--once", "--out", out, "--overlays", "ng", "--csv",
            "--route", timeout=120)
    assert r.returncode == 0, r.stderr
    sources = [Path(rec["source"]).name for rec in _records(log)]
    assert len(sources) == len(set(sources)) == 500 and set(sources) == set(names)
    assert all(rec["error"] is None for rec in _records(log))
    moved = {p.name for d in ("ok", "ng") for p in (out / d).iterdir()}
    left = {p.name for p in inbox.iterdir()}
    assert moved | left == set(names) and not moved & left  # recorded but killed before its move: left in place
