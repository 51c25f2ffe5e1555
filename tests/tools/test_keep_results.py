"""tools/keep_results.py: only finished runs, only their small files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(root: Path, rel: str, status: str | None) -> Path:
    run = root / rel
    run.mkdir(parents=True)
    for name in ("metrics.jsonl", "config.yaml", "model.safetensors", "qualitative.png"):
        (run / name).write_text("x")
    if status is not None:
        (run / "summary.json").write_text(json.dumps({"status": status}))
    return run


def test_only_finished_runs_and_no_weights(tmp_path):
    src, dest = tmp_path / "result", tmp_path / "kept"
    _run(src, "steps1000/fur/seed_111", "finished")
    _run(src, "steps1000/fur/seed_112", "interrupted")
    _run(src, "steps1000/lunar/seed_111", None)
    r = subprocess.run([sys.executable, str(REPO / "tools" / "keep_results.py"), str(src), str(dest)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "1 finished runs" in r.stdout
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == [
        "steps1000/fur/seed_111/config.yaml", "steps1000/fur/seed_111/metrics.jsonl",
        "steps1000/fur/seed_111/summary.json"]
    bad = subprocess.run([sys.executable, str(REPO / "tools" / "keep_results.py"), str(tmp_path / "nope"), str(dest)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("Error: no such folder") and "Traceback" not in bad.stderr
