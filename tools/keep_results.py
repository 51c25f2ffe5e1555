"""Copy the small result files of every finished run under a results folder into the docs.

No weights, no figures: ``metrics.jsonl``, ``summary.json``, ``throughput.json``, ``calibration.json``,
``config.yaml`` and ``model_config.json`` of each ``<experiment>/<class>/seed_<n>`` whose status is
``finished`` (:func:`cdo_train.training.run_folder.run_status`). Studies span sessions: commit what this copies
as runs land.

Usage:
    python tools/keep_results.py result/photo docs/results/data/photo/runs
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from cdo_train.training.run_folder import run_status

KEPT = ("metrics.jsonl", "summary.json", "throughput.json", "calibration.json", "config.yaml", "model_config.json")


def keep(src: Path, dest: Path) -> list[Path]:
    """Copy the finished runs' small files from ``src`` to the same relative folders under ``dest``."""
    kept = []
    for run in sorted(p.parent for p in src.rglob("summary.json") if p.parent.name.startswith("seed_")):
        if run_status(run) != "finished":
            continue
        out = dest / run.relative_to(src)
        out.mkdir(parents=True, exist_ok=True)
        for name in KEPT:
            if (run / name).is_file():
                shutil.copy2(run / name, out / name)
        kept.append(out)
    return kept


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("dest", type=Path)
    args = ap.parse_args(argv)
    if not args.src.is_dir():
        print(f"Error: no such folder: {args.src}", file=sys.stderr)
        return 2
    print(f"kept the small files of {len(keep(args.src, args.dest))} finished runs in {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
