"""tools/head_cost.py runs and prints its table (tiny sizes; the numbers are in docs/guides/method.md)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_head_cost_tool_prints_a_row_per_head():
    r = subprocess.run([sys.executable, str(REPO / "tools" / "head_cost.py"), "--runs", "2", "--size", "64"],
                       capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr
    rows = [line.split()[0] for line in r.stdout.splitlines()[2:]]
    assert rows == ["naive-2d", "naive-sep", "cdo"], r.stdout
