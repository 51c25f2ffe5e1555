"""tools/train_speed.py: today's step and the new one timed side by side in one run, each in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_train_speed_times_every_variant_and_writes_core_seconds(tmp_path):
    out = tmp_path / "speed.json"
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "train_speed.py"), "--image-size", "64", "--steps", "2",
                           "--warmup", "1", "--rounds", "2", "--profile", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    rows = {r["variant"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"today", "new"}
    today, new = rows["today"], rows["new"]
    assert today["precision"] == "fp32" and today["default_steps"] == 1000 and not today["channels_last"]
    assert len(today["core_ms_per_step_rounds"]) == 2 and today["core_ms_per_step"] > 0
    assert today["core_s_per_1000_steps"] == today["core_ms_per_step"]  # 1000 steps x ms = s
    assert new["step_speedup"] == round(today["core_ms_per_step"] / new["core_ms_per_step"], 2)
    assert "core s/run" in proc.stdout and "cdo.backward" in proc.stderr  # the table and the profile
