"""Soak run of the line-side runtime (not in CI): many images through the folder watcher with MQTT on.

    tools/soak.sh [--images 20000] [--restarts 2] [--work /tmp/cdo-soak] [--bundle BUNDLE]

1. a tiny bundle (``tools/line_kit.py``, unless ``--bundle``), a real mosquitto
   with persistence and a persistent QoS 1 subscriber;
2. ``cdo-inspect BUNDLE --source INBOX --out OUT --mqtt ...`` watching INBOX,
   one pre-processing worker, under ``taskset -c 0`` (one CPU) when available;
3. a writer drops ``--images`` PNG parts (64x64, 1 in 5 NG) into INBOX, renaming
   each into place, keeping at most ``--backlog`` unrecorded; the broker is
   stopped for ``--outage-s`` and restarted ``--restarts`` times, evenly spaced;
4. the cdo-inspect resident memory (VmRSS) is sampled every 0.2 s with the
   number of records so far;
5. after the last record and the subscriber's last message, SIGTERM.

Checks and report (``WORK/soak.json``, also printed): records lost (written
images without a record), duplicate records, MQTT ids missing at the subscriber
(duplicate deliveries are allowed and counted), and the peak RSS during the
first and during the last ``--window`` records: growth must stay under 10 %.
Exit status 0 only when all checks pass.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
if not __package__:  # run as `python tools/soak.py`: the checkout's root, so `tools` imports as a package
    sys.path.insert(0, str(REPO))
from tools import line_kit as kit  # noqa: E402


class RecordCounter:
    """Counts the lines of a growing results.jsonl by reading only what was appended."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.count = path, 0, 0

    def poll(self) -> int:
        if self.path.exists():
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
            end = data.rfind(b"\n") + 1
            self.count += data[:end].count(b"\n")
            self.offset += end
        return self.count


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=20000)
    ap.add_argument("--restarts", type=int, default=2)
    ap.add_argument("--outage-s", type=float, default=3.0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/cdo-soak"))
    ap.add_argument("--bundle", type=Path, default=None)
    ap.add_argument("--backlog", type=int, default=200, help="most images written but not yet recorded")
    ap.add_argument("--window", type=int, default=1000, help="records in the first/last RSS window")
    ap.add_argument("--no-route", action="store_true",
                    help="leave inspected files in the inbox (default: --route moves them to OUT/ok, OUT/ng)")
    a = ap.parse_args()

    shutil.rmtree(a.work, ignore_errors=True)
    inbox, out, broker_dir = a.work / "inbox", a.work / "out", a.work / "broker"
    for d in (inbox, broker_dir):
        d.mkdir(parents=True)
    bundle = a.bundle or kit.write_tiny_bundle(a.work / "bundle")
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    broker = kit.Broker(exe, broker_dir).start()
    sub = kit.Subscriber(broker.host, broker.port, "soak/#", persistent=True)
    parts = [cv2.imencode(".png", kit.make_part(i % 5 == 0, h=64, w=64, seed=i))[1].tobytes() for i in range(40)]

    cmd = ["cdo-inspect", str(bundle), "--source", str(inbox), "--out", str(out), "--settle-ms", "100",
           "--overlays", "none", "--workers", "1", "--mqtt", f"{broker.spec}/soak/line1"]
    if not a.no_route:
        cmd.append("--route")
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log_file = open(a.work / "cdo-inspect.log", "w")
    proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    counter = RecordCounter(out / "results.jsonl")
    samples: list[tuple[int, float]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            mb = rss_mb(proc.pid)
            if mb is not None:
                samples.append((counter.count, mb))
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    time.sleep(3.0)  # the watcher is up
    sampler.start()
    t0 = time.monotonic()
    restart_at = [a.images * (k + 1) // (a.restarts + 1) for k in range(a.restarts)]
    outages: list[dict] = []
    outage: threading.Thread | None = None

    def outage_run(entry: dict) -> None:
        broker.stop()
        t_stop = time.monotonic()
        time.sleep(a.outage_s)
        broker.start()
        entry["restarted_after_s"] = round(time.monotonic() - t_stop, 2)
        entry["records_at_restart"] = counter.count

    names = []
    for i in range(a.images):
        while i - counter.poll() >= a.backlog:
            time.sleep(0.01)
        if restart_at and i == restart_at[0]:
            restart_at.pop(0)
            if outage is not None:
                outage.join()
            outages.append({"at_image": i, "records_at_stop": counter.count})
            outage = threading.Thread(target=outage_run, args=(outages[-1],))
            outage.start()
        name = f"{i:06d}.png"
        tmp = a.work / ".staging.png"
        tmp.write_bytes(parts[i % len(parts)])
        os.rename(tmp, inbox / name)
        names.append(str(inbox / name))
    if outage is not None:
        outage.join()
    deadline = time.monotonic() + 300
    while counter.poll() < a.images and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    elapsed = time.monotonic() - t0
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    ids = {r["id"] for r in records}
    deadline = time.monotonic() + 180
    while not ids <= sub.ids and time.monotonic() < deadline:
        time.sleep(0.2)
    done.set()
    sampler.join()
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(60)
    sub.close()
    broker.stop()

    sources = [r["source"] for r in records]
    first = [mb for n, mb in samples if n < a.window]
    last = [mb for n, mb in samples if n >= a.images - a.window]
    peak_first, peak_last = (max(first) if first else None), (max(last) if last else None)
    growth = (peak_last - peak_first) / peak_first if peak_first and peak_last else None
    report = {
        "images_written": len(names), "records": len(records), "lost": len(set(names) - set(sources)),
        "duplicate_records": len(sources) - len(set(sources)), "errors": sum(r["error"] is not None for r in records),
        "ng": sum(r["decision"] == "NG" for r in records),
        "mqtt_ids_missing": len(ids - sub.ids), "mqtt_messages": len(sub.messages),
        "mqtt_duplicate_deliveries": len(sub.messages) - len(sub.ids & ids),
        "broker_outages": outages, "seconds": round(elapsed, 1), "images_per_s": round(len(records) / elapsed, 1),
        "rss_peak_first_mb": round(peak_first, 1) if peak_first else None,
        "rss_peak_last_mb": round(peak_last, 1) if peak_last else None,
        "rss_growth": round(growth, 4) if growth is not None else None,
        "rss_samples": len(samples), "cdo_inspect_exit": rc, "command": " ".join(cmd),
    }
    ok = (report["lost"] == 0 and report["duplicate_records"] == 0 and report["mqtt_ids_missing"] == 0
          and rc == 0 and growth is not None and growth < 0.10)
    report["pass"] = ok
    (a.work / "soak.json").write_text(json.dumps(report, indent=2) + "\n")
    (a.work / "rss.csv").write_text("records,rss_mb\n" + "".join(f"{n},{mb:.1f}\n" for n, mb in samples))
    print(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
