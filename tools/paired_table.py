"""Paired comparison over seeds: head variants of the same trained runs against a peer, per class and on the mean.

Reads ``tools/head_study.py``'s JSON (variant -> class -> seed_<n> -> metrics) and the peer's results that
``tools/peers.py`` writes (``<peers>/<method>/<class>/seed_<n>.json``), and prints, per metric, tools/comparison.py's table (the peers and curriculum tables' own):
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
import sys
from pathlib import Path

if not __package__:  # run as `python tools/paired_table.py`: the checkout's root, so `tools` imports as a package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tools import comparison  # noqa: E402


def peer_results(root: Path, method: str) -> dict[str, dict[str, dict[str, float]]]:
    """class -> seed_<n> -> metrics of one peer method."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for path in sorted((root / method).glob("*/seed_*.json")):
        data = json.loads(path.read_text())
        out.setdefault(path.parent.name, {})[path.stem] = {m: float(data["metrics"][m]) for m in comparison.METRICS}
    return out


def common_runs(methods: dict[str, dict]) -> tuple[list[comparison.Run], list[str]]:
    """One :class:`tools.comparison.Run` per method, class and seed, over the classes and seeds every method
    has for every class (so each cell and each paired difference reads the same seeds); and those seeds."""
    classes = sorted(set.intersection(*(set(r) for r in methods.values())))
    seeds = sorted(set.intersection(*(set(r[c]) for r in methods.values() for c in classes)))
    runs = [comparison.Run(name, c, int(s.removeprefix("seed_")), [res[c][s]], True)
            for name, res in methods.items() for c in classes for s in seeds]
    return runs, seeds


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
    runs, seeds = common_runs(methods)
    lines = []
    for metric in comparison.METRICS:  # tools/comparison.py's table: the one the peers and curriculum tables use
        table = comparison.build_table(runs, metric, last=1, baseline=args.peer)
        header, rows = comparison.table_rows(table, {}, bold=False)
        lines += [f"### {metric} ({len(seeds)} seeds: {', '.join(s.removeprefix('seed_') for s in seeds)})", "",
                  "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                  *("| " + " | ".join(r) + " |" for r in rows), ""]
    lines.append("Cells: mean ± std over seeds (n seeds). Δ: per-seed difference of the class mean from the peer, "
                 "mean ± standard error over seeds.")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
