"""Compare cdo-inspect decisions with the MVTec ground truth (test/<type>/ folders).

Usage: python tools/demo_report.py OUT/results.jsonl
Prints the confusion matrix (good/defective vs OK/NG), accuracy and per-defect-type recall.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path)
    args = ap.parse_args(argv)
    if not args.results.is_file():
        print(f"Error: no such results log: {args.results}", file=sys.stderr)
        return 1
    counts: collections.Counter = collections.Counter()
    per_type: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    errors = 0
    for line in args.results.read_text().splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        if rec.get("error") or rec.get("decision") not in ("OK", "NG"):
            errors += 1
            continue
        defect_type = Path(rec["source"]).parent.name
        truth = "good" if defect_type == "good" else "defective"
        counts[(truth, rec["decision"])] += 1
        per_type[defect_type][rec["decision"]] += 1
    total = sum(counts.values())
    if not total:
        print("no decisions in the log")
        return 1
    correct = counts[("good", "OK")] + counts[("defective", "NG")]
    header = "truth / decision"
    print(f"{header:<18}{'OK':>6}{'NG':>6}")
    for truth in ("good", "defective"):
        print(f"{truth:<18}{counts[(truth, 'OK')]:>6}{counts[(truth, 'NG')]:>6}")
    print(f"accuracy {correct}/{total} = {correct / total:.3f}   errors {errors}")
    print("per type (NG rate): " + ", ".join(
        f"{t} {c['NG']}/{c['OK'] + c['NG']}" for t, c in sorted(per_type.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
