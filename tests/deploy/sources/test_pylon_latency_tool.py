"""tools/pylon_latency.py runs end to end against the emulator and reports every row."""

from __future__ import annotations

import json


def test_latency_tool_reports_trigger_and_free_run_rows(pylon, tiny_bundle, part_folder, emu_pfs, tmp_path, capsys):
    from tools import pylon_latency as tool

    out = tmp_path / "lat.json"
    rc = tool.main([str(tiny_bundle), "--source", "pylon:0815-0001", "--pfs", str(emu_pfs(part_folder)),
                    "--frames", "12", "--rate", "40", "--probe-s", "0.5", "--json", str(out)])
    assert rc == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["mode"] for r in rows] == ["software trigger", "free-run"]
    trig = rows[0]
    assert trig["frames"] == 12 and trig["missed"] == 0 and trig["dropped"] == 0
    tf, td = trig["trigger_to_frame_ms"], trig["to_decision_ms"]
    assert 0 < tf["p50"] <= td["p50"] <= td["p99"]
    table = capsys.readouterr().out
    assert sum(ln.startswith("| ") for ln in table.splitlines()) == 3 and "| software trigger | 40.0 | 12 |" in table
