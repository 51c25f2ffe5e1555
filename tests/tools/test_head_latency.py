"""tools/head_latency.py: the head options built on one run's weights, exported into one bundle, timed together."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_head_options_are_built_exported_and_benched_side_by_side(trained_run, tmp_path):
    work = tmp_path / "lat"
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "head_latency.py"), str(trained_run), str(work),
                           "--banks", "16", "--iters", "2", "--warmup", "0", "--threads", "1"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["variant"]: r for r in json.loads((work / "cdo_bench.json").read_text())["rows"]}
    assert set(rows) == {"fp32", "fp32-z", "fp32-z-knn16"}
    assert all(r["status"] == "ok" for r in rows.values()), rows
    z = json.loads((work / "run-fp32-z" / "model_config.json").read_text())
    knn = json.loads((work / "run-fp32-z-knn16" / "model_config.json").read_text())
    assert z["level_norm"] == "z" and len(z["level_scales"]) == 3 and z["bank_size"] == 0
    assert knn["bank_size"] == 16 and knn["level_scales"] == z["level_scales"]  # same weights, same scales
