"""Acquisition -> decision latency of a pylon camera through cdo-inspect's pipeline.

Runs the real runtime (``run_inspection``: PylonSource, pre-processing, micro-batched
inference, post-processing, results.jsonl) against a camera or pylon's emulator:

1. the camera's free-run frame rate, measured by grabbing for ``--probe-s`` seconds;
2. per ``--rate`` (default: that frame rate and half of it), ``--frames`` software
   triggers fired at that rate; from every record: trigger -> frame in memory
   (``latency_ms.read``), frame -> decision, and trigger -> decision (``latency_ms.total``);
3. one free-run row (latency from frame arrival; a live source drops when behind).

Usage (emulator, no hardware)::

    PYLON_CAMEMU=1 OMP_NUM_THREADS=2 python tools/pylon_latency.py BUNDLE [--frames 300] \\
        [--rate 90 --rate 30] [--pixel-format Mono8] [--exposure-us 2000] [--queue-size 64] [--json out.json]

Prints one Markdown table (ms); ``--json`` writes the rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from cdo_deploy.errors import CdoError
from cdo_deploy.inspection import InspectConfig, run_inspection
from cdo_deploy.sources import CameraSettings, open_source


def free_run_fps(source: str, settings: CameraSettings, seconds: float) -> tuple[float, str]:
    """Frames per second the camera delivers in free-run (grab and discard)."""
    src = open_source(source, camera=settings.replace(trigger="Off"))
    stop, n = threading.Event(), [0]

    def count(item) -> None:
        n[0] += item.error is None

    t = threading.Thread(target=src.run, args=(count, stop))
    try:
        t.start()
        time.sleep(0.5)  # let grabbing settle
        n0, t0 = n[0], time.perf_counter()
        time.sleep(seconds)
        fps = (n[0] - n0) / (time.perf_counter() - t0)
    finally:
        stop.set()
        t.join()
        src.close()
    return fps, src.describe()


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


def measure(bundle: Path, source: str, settings: CameraSettings, frames: int, max_batch: int,
            queue_size: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        cfg = InspectConfig(bundle=bundle, source=source, out=Path(d), overlays="none", max_frames=frames,
                            max_batch=max_batch, queue_size=queue_size, device="cpu", camera=settings)
        t0 = time.perf_counter()
        result = run_inspection(cfg)
        wall = time.perf_counter() - t0
        recs = [json.loads(line) for line in (Path(d) / "results.jsonl").read_text().splitlines()]
    ok = [r for r in recs if r["error"] is None]
    read = [r["latency_ms"]["read"] for r in ok]
    total = [r["latency_ms"]["total"] for r in ok]
    after = [t - r for t, r in zip(total, read)]
    s = result.summary
    return {"frames": len(ok), "fps": round(len(ok) / wall, 1), "missed": s.missed, "dropped": s.dropped,
            "errors": s.errors,
            "trigger_to_frame_ms": {"p50": pct(read, 50), "p99": pct(read, 99)},
            "frame_to_decision_ms": {"p50": pct(after, 50), "p99": pct(after, 99)},
            "to_decision_ms": {"p50": pct(total, 50), "p90": pct(total, 90), "p99": pct(total, 99)},
            "infer_p50_ms": s.infer_p50_ms}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--source", default="pylon", help="pylon, pylon:SERIAL or pylon:NAME")
    ap.add_argument("--frames", type=int, default=300, help="triggers per rate")
    ap.add_argument("--rate", type=float, action="append", help="software-trigger rates, Hz (repeatable)")
    ap.add_argument("--pixel-format", default=None)
    ap.add_argument("--exposure-us", type=float, default=None)
    ap.add_argument("--pfs", type=Path, default=None)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--queue-size", type=int, default=64, help="cdo-inspect --queue-size (bounds free-run latency)")
    ap.add_argument("--probe-s", type=float, default=3.0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    try:
        base = CameraSettings(pfs=args.pfs, pixel_format=args.pixel_format, exposure_us=args.exposure_us)
        fps, what = free_run_fps(args.source, base, args.probe_s)
        print(f"{what}: free-run {fps:.1f} frames/s", file=sys.stderr)
        rates = args.rate or [round(fps, 1), round(fps / 2, 1)]
        rows = []
        for rate in rates:
            s = base.replace(trigger="Software", trigger_interval_s=1.0 / rate)
            rows.append({"mode": "software trigger", "rate_hz": rate,
                         **measure(args.bundle, args.source, s, args.frames, args.max_batch, args.queue_size)})
        free = base.replace(trigger="Off")
        rows.append({"mode": "free-run", "rate_hz": round(fps, 1),
                     **measure(args.bundle, args.source, free, args.frames, args.max_batch, args.queue_size)})
    except CdoError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    print("| mode | rate Hz | frames | done/s | missed | dropped | trigger->frame p50/p99 | "
          "frame->decision p50/p99 | trigger->decision p50/p90/p99 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        tf, fd, td = r["trigger_to_frame_ms"], r["frame_to_decision_ms"], r["to_decision_ms"]
        first = f"{tf['p50']} / {tf['p99']}" if r["mode"] != "free-run" else "-"
        print(f"| {r['mode']} | {r['rate_hz']} | {r['frames']} | {r['fps']} | {r['missed']} | {r['dropped']} | "
              f"{first} | {fd['p50']} / {fd['p99']} | {td['p50']} / {td['p90']} / {td['p99']} |")
    if args.json:
        args.json.write_text(json.dumps({"camera": what, "free_run_fps": round(fps, 1), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
