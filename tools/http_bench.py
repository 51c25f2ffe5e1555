"""Does ``cdo-inspect --http`` slow inspection? The same runs with the server off and on, side by side.

    python tools/http_bench.py [--images 1500] [--rate 40] [--rounds 2] [--poll-hz 5] [--bundle B]

Each round runs ``cdo-inspect`` twice, once without and once with
``--http 127.0.0.1:0``; with it a client plays an open operator page, harder
than the real one (which polls once a second): ``--poll-hz`` times a second it
fetches ``/api/state`` and ``/metrics`` and every thumbnail it has not fetched yet.

* **backlog**: ``--images`` parts already in a folder, ``--once``: throughput
  (parts/s over the run) and the per-part service time (read + pre-process +
  infer + post-process, from ``results.jsonl``);
* **paced**: a writer drops parts into a watched folder at ``--rate`` parts/s
  (1 in 5 NG), ``--images / 2`` of them: end-to-end latency p50/p99 from
  ``results.jsonl`` (file ready to record written).

The tiny bundle (``tools/line_kit.py``) keeps inference cheap, so the
pipeline's own Python work, the part that competes with the server for the
GIL, dominates: the worst case for the server. Prints one table; writes
``WORK/http_bench.json``. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if not __package__:  # run as `python tools/http_bench.py`: the checkout's root, so `tools` imports as a package
    sys.path.insert(0, str(REPO))
from tools import line_kit as kit  # noqa: E402


class PageClient(threading.Thread):
    """Polls the page's endpoints like an open browser tab (harder), until told to stop."""

    def __init__(self, proc: subprocess.Popen, hz: float) -> None:
        super().__init__(daemon=True)
        self.proc, self.period = proc, 1.0 / hz
        self.requests = self.errors = self.gone = 0
        self.halt = threading.Event()
        self.url: str | None = None

    def _get(self, path: str) -> bytes | None:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as r:
                self.requests += 1
                return r.read()
        except urllib.error.HTTPError as e:  # 404: a thumbnail that left the ring before we asked
            self.requests += 1
            self.gone += e.code == 404
            self.errors += e.code != 404
            return None
        except OSError:  # e.g. refused once the run has ended
            self.errors += 1
            return None

    def run(self) -> None:
        for line in self.proc.stderr:  # the URL line comes first; keep draining afterwards
            m = re.search(r"live page (http://\S+/) ", line)
            if m:
                self.url = m.group(1)
                threading.Thread(target=self._poll, daemon=True).start()

    def _poll(self) -> None:
        fetched: set[int] = set()
        while not self.halt.is_set() and self.proc.poll() is None:
            body = self._get("api/state")
            self._get("metrics")
            if body:
                for part in json.loads(body).get("recent", []):
                    if part["thumb"] and part["n"] not in fetched:
                        fetched.add(part["n"])
                        self._get(f"thumb/{part['n']}.jpg")
            time.sleep(self.period)


def inspect_cmd(bundle: Path, source: Path, out: Path, http: bool, once: bool) -> list[str]:
    cmd = [sys.executable, "-c", "from cdo_deploy.cli import inspect_entry; inspect_entry()", str(bundle),
           "--source", str(source), "--out", str(out), "--settle-ms", "20", "--workers", "1", "--no-status"]
    # paced: --include-existing, so parts written while the bundle still loads are inspected too
    return cmd + (["--once"] if once else ["--include-existing"]) + (["--http", "127.0.0.1:0"] if http else [])


def records(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def run_one(args: argparse.Namespace, parts: Path, work: Path, http: bool, once: bool) -> dict:
    out = work / f"out_{'on' if http else 'off'}_{'backlog' if once else 'paced'}_{time.monotonic_ns()}"
    inbox = parts if once else out.with_name(out.name + "_inbox")
    inbox.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(inspect_cmd(args.bundle, inbox, out, http, once), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    client = PageClient(proc, args.poll_hz)
    client.start()
    n = args.images
    if not once:  # paced writer into the watched folder
        n = args.images // 2
        time.sleep(2.0)  # bundle load, server up
        t0 = time.monotonic()
        for i in range(n):
            tmp = inbox / f".{i:05d}.tmp"
            cv2.imwrite(str(tmp) + ".png", kit.make_part(i % 5 == 2, seed=i))
            os.rename(str(tmp) + ".png", inbox / f"p{i:05d}.png")
            time.sleep(max(0.0, t0 + (i + 1) / args.rate - time.monotonic()))
        end = time.monotonic() + 60
        while len(records(out / "results.jsonl")) < n and time.monotonic() < end:
            time.sleep(0.1)
        proc.terminate()
    proc.wait(timeout=600)
    client.halt.set()
    recs = records(out / "results.jsonl")
    summary = json.loads((out / "summary.json").read_text())
    lat = np.array([r["latency_ms"]["total"] for r in recs])
    service = np.array([sum(r["latency_ms"][k] for k in ("read", "pre", "infer", "post")) for r in recs])
    return {"mode": "backlog" if once else "paced", "http": http, "records": len(recs), "expected": n,
            "parts_per_s": summary["fps"], "e2e_p50_ms": float(np.percentile(lat, 50)),
            "e2e_p99_ms": float(np.percentile(lat, 99)), "service_p50_ms": float(np.percentile(service, 50)),
            "service_p99_ms": float(np.percentile(service, 99)), "http_requests": client.requests,
            "http_errors": client.errors, "thumbs_gone": client.gone}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1500)
    ap.add_argument("--rate", type=float, default=40.0, help="paced parts per second")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--poll-hz", type=float, default=5.0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/cdo-http-bench"))
    ap.add_argument("--bundle", type=Path, default=None)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.bundle is None:
        args.bundle = kit.write_tiny_bundle(args.work / "bundle")
    parts = args.work / "parts"
    if not parts.exists():
        parts.mkdir()
        for i in range(args.images):
            cv2.imwrite(str(parts / f"p{i:05d}.png"), kit.make_part(i % 5 == 2, seed=i))
    rows = []
    for r in range(args.rounds):
        for once in (True, False):
            for http in ((False, True) if r % 2 == 0 else (True, False)):  # alternate the order per round
                rows.append({"round": r, **run_one(args, parts, args.work, http, once)})
                print(json.dumps(rows[-1]), flush=True)
    (args.work / "http_bench.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"\n{'mode':8} {'http':5} {'parts/s':>8} {'e2e p50':>8} {'e2e p99':>8} {'svc p50':>8} {'svc p99':>8} "
          f"{'requests':>8}  (medians over {args.rounds} rounds, ms)")
    for mode in ("backlog", "paced"):
        for http in (False, True):
            sel = [x for x in rows if x["mode"] == mode and x["http"] == http]
            med = {k: float(np.median([x[k] for x in sel])) for k in sel[0] if isinstance(sel[0][k], (int, float))}
            print(f"{mode:8} {'on' if http else 'off':5} {med['parts_per_s']:8.1f} {med['e2e_p50_ms']:8.2f} "
                  f"{med['e2e_p99_ms']:8.2f} {med['service_p50_ms']:8.2f} {med['service_p99_ms']:8.2f} "
                  f"{int(med['http_requests']):8d}")
    lost = [x for x in rows if x["records"] != x["expected"]]
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
