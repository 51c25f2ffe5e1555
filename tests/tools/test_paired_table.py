"""tools/paired_table.py: per-class means over the seeds every method has, and the paired difference from the peer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _m(v: float) -> dict[str, float]:
    return {"image_auroc": v, "pixel_auroc": v, "aupro": v}


def test_paired_difference_over_common_seeds(tmp_path):
    study = {"plain": {c: {"seed_111": _m(0.8 + d), "seed_112": _m(0.7 + d), "seed_113": _m(0.9)}
                       for c, d in (("a", 0.0), ("b", 0.1))}}
    (tmp_path / "study.json").write_text(json.dumps(study))
    for c in ("a", "b"):
        for s, v in ((111, 0.75), (112, 0.75)):  # no seed 113: it does not count
            p = tmp_path / "peers" / "patchcore" / c / f"seed_{s}.json"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(json.dumps({"metrics": _m(v)}))
    r = subprocess.run([sys.executable, str(REPO / "tools" / "paired_table.py"), str(tmp_path / "study.json"),
                        str(tmp_path / "peers"), "--variant", "cdo=plain"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "### image_auroc (2 seeds: 111, 112)" in r.stdout
    # cdo per-seed means .85 and .75 against .75 and .75: +.050 ± .050
    assert "| cdo | 0.750 ± 0.071 (2) | 0.850 ± 0.071 (2) | 0.800 ± 0.071 (2) | +0.050 ± 0.050 (2) |" in r.stdout, r.stdout
    bad = subprocess.run([sys.executable, str(REPO / "tools" / "paired_table.py"), str(tmp_path / "study.json"),
                          str(tmp_path / "peers"), "--variant", "cdo=nope"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("Error: no variant") and "Traceback" not in bad.stderr
