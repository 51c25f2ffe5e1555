"""Paired comparison over seeds: head variants of the same trained runs against a peer, per class and on the mean.

Reads ``tools/head_study.py``'s JSON (variant -> class -> seed_<n> -> metrics) and the peer's results that
``tools/peers.py`` writes (``<peers>/<method>/<class>/seed_<n>.json``), and prints a Markdown table per metric:
each class's mean ± std over seeds, the suite mean, and the paired per-seed difference of the suite mean from the
peer (mean ± standard error over seeds). Only seeds that every method has for every class count.

Usage:
    python tools/paired_table.py result/head_steps1000.json result/photo_peers \
        --variant "default (z)=levels=012 norm=z sigma=4 score=max" \
        --variant "paper's plain sum=levels=012 norm=none sigma=4 score=max" -o docs/results/data/photo/paired.md
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

METRICS = ("image_auroc", "pixel_auroc", "aupro")


def peer_results(root: Path, method: str) -> dict[str, dict[str, dict[str, float]]]:
    """class -> seed_<n> -> metrics of one peer method."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for path in sorted((root / method).glob("*/seed_*.json")):
        data = json.loads(path.read_text())
        out.setdefault(path.parent.name, {})[path.stem] = {m: float(data["metrics"][m]) for m in METRICS}
    return out


def _fmt(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f}" + (f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else "")


def table(methods: dict[str, dict], baseline: str, metric: str) -> tuple[list[str], list[str], list[str]]:
    """(header, rows, seeds used) of one metric's table."""
    classes = sorted(set.intersection(*(set(r) for r in methods.values())))
    seeds = sorted(set.intersection(*(set(r[c]) for r in methods.values() for c in classes)))
    header = ["method", *classes, "mean", f"Δ mean vs {baseline} (paired)"]
    rows = []
    base = [statistics.mean(methods[baseline][c][s][metric] for c in classes) for s in seeds]
    for name, res in methods.items():
        per_seed = [statistics.mean(res[c][s][metric] for c in classes) for s in seeds]
        cells = [_fmt([res[c][s][metric] for s in seeds]) for c in classes] + [_fmt(per_seed)]
        if name == baseline:
            cells.append("(baseline)")
        else:
            diff = [a - b for a, b in zip(per_seed, base)]
            se = statistics.stdev(diff) / math.sqrt(len(diff)) if len(diff) > 1 else float("nan")
            cells.append(f"{statistics.mean(diff):+.3f} ± {se:.3f}")
        rows.append("| " + " | ".join([name, *cells]) + " |")
    return header, rows, seeds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("head_study", type=Path, help="tools/head_study.py's JSON")
    ap.add_argument("peers", type=Path, help="tools/peers.py's --out folder")
    ap.add_argument("--peer", default="patchcore")
    ap.add_argument("--variant", action="append", required=True, metavar="NAME=VARIANT",
                    help="a head-study variant to show, under NAME (repeatable)")
    ap.add_argument("-o", "--out", type=Path, help="write the Markdown here too")
    args = ap.parse_args(argv)
    study = json.loads(args.head_study.read_text())
    methods = {args.peer: peer_results(args.peers, args.peer)}
    for item in args.variant:
        name, _, variant = item.partition("=")
        if variant not in study:
            print(f"Error: no variant {variant!r} in {args.head_study}", file=sys.stderr)
            return 2
        methods[name] = study[variant]
    lines = []
    for metric in METRICS:
        header, rows, seeds = table(methods, args.peer, metric)
        lines += [f"### {metric} ({len(seeds)} seeds: {', '.join(s.removeprefix('seed_') for s in seeds)})", "",
                  "| " + " | ".join(header) + " |", "|" + "---|" * len(header), *rows, ""]
    lines.append("Cells: mean ± std over seeds. Δ: per-seed difference of the six-class mean from the peer, "
                 "mean ± standard error over seeds.")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
