"""Fault injection: the output filesystem fills up during a run.

Uses a real 1 MiB tmpfs mounted for the test where the machine allows it (root,
as on CI and the dev machine); elsewhere the kernel's per-process file-size
limit (RLIMIT_FSIZE, writes fail with EFBIG) stands in for the full disk, since
it needs no privileges. Either way the failure comes from the kernel, not a mock.

Behaviour under test: secondary outputs (overlays) that fail are counted and the
run goes on; once ``results.jsonl`` itself cannot be written the run stops with
one ``Error:`` line (a result that cannot be recorded would be lost), every
record written before is intact, and after space is freed a restart records
every remaining image exactly once.
"""

from __future__ import annotations

import json
import resource
import shutil
import signal
import subprocess
from pathlib import Path

import cv2
import pytest


@pytest.fixture
def small_out(tmp_path):
    """(folder, preexec_fn): a folder on a 1 MiB tmpfs, or a plain folder plus a 256 KiB file-size limit."""
    d = tmp_path / "small"
    d.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(d)], capture_output=True)
    if r.returncode == 0:
        yield d, None
        subprocess.run(["umount", "-l", str(d)], check=False)
        return

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 << 10, 256 << 10))

    yield d, limit


def test_full_output_disk_stops_with_one_line_keeps_records_intact_and_restart_completes(
        tiny_bundle, tmp_path, part, small_out, cli, records):
    out_fs, preexec = small_out
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    n = 600
    for i in range(n):
        cv2.imwrite(str(inbox / f"{i:04d}.png"), part(i % 4 == 0, h=48, w=64, seed=i % 16))
    out = out_fs / "out"
    r = cli("cdo-inspect", tiny_bundle, "--source", inbox, "--once", "--out", out, "--overlays", "all",
            timeout=120, preexec_fn=preexec)
    assert r.returncode == 1, (r.stdout, r.stderr)
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: cannot write ") and "results.jsonl" in last, r.stderr
    assert "records written before are intact" in last and "Traceback" not in r.stderr
    log = out / "results.jsonl"
    raw = log.read_bytes()
    assert raw.endswith(b"\n")
    first = [json.loads(line) for line in raw.decode().splitlines()]  # every line parses: nothing torn
    assert 0 < len(first) < n and len({rec["source"] for rec in first}) == len(first)
    shutil.rmtree(out / "overlays")  # the operator frees space (or the file-size limit is lifted) and restarts
    r = cli("cdo-inspect", tiny_bundle, "--source", inbox, "--once", "--out", out, "--overlays", "none",
            timeout=120)
    assert r.returncode == 0, r.stderr
    sources = [rec["source"] for rec in records(log)]
    assert len(sources) == n and set(sources) == {str(p) for p in inbox.iterdir()}
    assert Path(log).read_bytes().startswith(raw)  # what was written before is untouched
