"""Compare curriculum experiments: tables (PNG, Markdown, CSV) and learning curves.

Reads every finished run ``<experiment>/<class>/seed_<n>/metrics.jsonl``
(:func:`cdo_train.training.run_folder.run_status` is ``finished``) at any depth below each
``--logdir`` (repeatable). An experiment is named by its folder's path below
its logdir (``hard/default`` for ``result/hard/default/turf/seed_111``);
when two logdirs hold the same experiment, class and seed, each logdir's name
prefixes its experiments (``machine_a/result:hard/default``); a run below two
nested logdirs counts once. It writes, for image AUROC, pixel AUROC and AUPRO:

* one table per metric: rows are experiments, columns are classes plus
  ``mean``. A run contributes the mean of its last ``--last`` (default 5)
  evaluations, or its best evaluation with ``--peak``; a cell is the mean ±
  std over seeds and the number of seeds ``(n)``. The ``mean`` column averages
  the classes per seed, using only seeds that have every class, so rows
  compare like with like. ``Δ`` is the paired per-seed difference of ``mean``
  from the baseline (the ``curriculum: none`` experiment, or ``--baseline``),
  ± its standard error. A missing run is a dash and never enters an average.
  The best mean of each column is bold.
* ``<out>.png`` (all tables), ``<out>.md`` and ``<out>_<metric>.csv``;
* ``learning_curves.png`` next to it: metric vs epoch, one line per
  experiment (mean over seeds, band ± std), plus the difficulty t that
  explains each curve.

Usage:
    python tools/comparison.py --logdir ./result -o ./result/comparison/table_last5avg.png
    python tools/comparison.py --logdir ./result -o ./result/comparison/table_peak.png --peak
    python tools/comparison.py --logdir machine_a/result --logdir machine_b/result -o both/table.png
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from cdo_train.training.run_folder import read_metrics, read_run_info, run_seed

METRICS = ("image_auroc", "pixel_auroc", "aupro")
LABELS = {"image_auroc": "image AUROC", "pixel_auroc": "pixel AUROC", "aupro": "AUPRO", "difficulty": "difficulty t"}
MEAN = "mean"


@dataclass
class Run:
    """One (experiment, class, seed) run folder."""

    experiment: str
    class_name: str
    seed: int
    records: list[dict[str, Any]]
    finished: bool
    config: dict[str, Any] = field(default_factory=dict)
    run_dir: Optional[Path] = None


@dataclass
class Cell:
    """Mean, sample std (None for one seed) and seed count of one table cell; ``n == 0`` is missing."""

    mean: Optional[float] = None
    std: Optional[float] = None
    n: int = 0
    values: dict[int, float] = field(default_factory=dict)  # seed -> value


@dataclass
class Table:
    """One metric's comparison table."""

    metric: str
    rows: list[str]
    cols: list[str]
    cells: dict[tuple[str, str], Cell]
    baseline: Optional[str] = None
    deltas: dict[str, Cell] = field(default_factory=dict)


def _read_run(run_dir: Path, experiment: str) -> Optional[Run]:
    seed = run_seed(run_dir)
    if seed is None:
        return None
    info = read_run_info(run_dir, warn_missing=False)
    return Run(experiment, run_dir.parent.name, seed, read_metrics(run_dir), info.finished, info.config,
               run_dir.resolve())


def _runs_below(logdir: Path) -> list[Run]:
    runs = []
    for path in sorted(logdir.rglob("seed_*/metrics.jsonl")):
        exp_dir = path.parent.parent.parent
        try:
            rel = exp_dir.relative_to(logdir).as_posix()
        except ValueError:  # the logdir is a class or run folder itself
            rel = "."
        run = _read_run(path.parent, exp_dir.resolve().name if rel == "." else rel)
        if run is not None:
            runs.append(run)
    return runs


def find_runs(logdirs: Union[str, Path, Sequence[Union[str, Path]]]) -> list[Run]:
    """Every run folder below the logdir(s) (finished or not), sorted by experiment, class, seed."""
    dirs = [Path(logdirs)] if isinstance(logdirs, (str, Path)) else [Path(d) for d in logdirs]
    seen: set[Path] = set()
    per_dir = []
    for d in dirs:  # a run below two of the logdirs (nested ones) counts once
        found = [r for r in _runs_below(d) if r.run_dir not in seen]
        seen.update(r.run_dir for r in found)
        per_dir.append(found)
    keys = [(r.experiment, r.class_name, r.seed) for runs in per_dir for r in runs]
    if len(keys) != len(set(keys)):  # the same run name in two logdirs: tell them apart by the logdir
        names = [d.resolve().name for d in dirs]
        if len(set(names)) < len(names):
            common = os.path.commonpath([str(d.resolve()) for d in dirs])
            names = [Path(os.path.relpath(d.resolve(), common)).as_posix() for d in dirs]
        for label, runs in zip(names, per_dir):
            for r in runs:
                r.experiment = f"{label}:{r.experiment}"
    runs = [r for part in per_dir for r in part]
    return sorted(runs, key=lambda r: (r.experiment, r.class_name, r.seed))


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def run_value(records: list[dict[str, Any]], metric: str, last: int = 5, peak: bool = False) -> Optional[float]:
    """Mean of the last ``last`` evaluations of ``metric`` (all if fewer), or their max with ``peak``."""
    values = [float(r[metric]) for r in records if _finite(r.get(metric))]
    if not values:
        return None
    return max(values) if peak else statistics.fmean(values[-last:])


def _cell(values: dict[int, float]) -> Cell:
    xs = list(values.values())
    if not xs:
        return Cell()
    return Cell(statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else None, len(xs), dict(values))


def default_baseline(runs: list[Run]) -> Optional[str]:
    """The first experiment trained with ``curriculum: none`` and no ordering, if any."""
    for r in runs:
        if r.config.get("curriculum") == "none" and not r.config.get("ordering"):
            return r.experiment
    return None


def build_table(runs: list[Run], metric: str, last: int = 5, peak: bool = False,
                baseline: Optional[str] = None) -> Table:
    """Aggregate finished runs into a :class:`Table` for ``metric``."""
    rows = sorted({r.experiment for r in runs}, key=lambda e: (e != baseline, e))
    classes = sorted({r.class_name for r in runs})
    per: dict[tuple[str, str], dict[int, float]] = {(e, c): {} for e in rows for c in classes}
    for r in runs:
        v = run_value(r.records, metric, last, peak)
        if v is not None:
            per[(r.experiment, r.class_name)][r.seed] = v
    cells = {k: _cell(v) for k, v in per.items()}
    for e in rows:  # class average per seed, only seeds that have every class
        seeds = set.intersection(*(set(per[(e, c)]) for c in classes)) if classes else set()
        cells[(e, MEAN)] = _cell({s: statistics.fmean(per[(e, c)][s] for c in classes) for s in sorted(seeds)})
    table = Table(metric, rows, classes + [MEAN], cells, baseline if baseline in rows else None)
    if table.baseline:
        base = cells[(table.baseline, MEAN)].values
        for e in rows:
            if e == table.baseline:
                continue
            own = cells[(e, MEAN)].values
            diffs = [own[s] - base[s] for s in sorted(set(own) & set(base))]
            d = Cell()
            if diffs:  # std here is the standard error of the mean paired difference
                se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else None
                d = Cell(statistics.fmean(diffs), se, len(diffs))
            table.deltas[e] = d
    return table


def format_cell(cell: Cell, digits: int = 3, signed: bool = False) -> str:
    """``0.912 ± 0.010 (3)``, ``0.912 (1)`` for one seed, ``-`` when missing."""
    if cell.n == 0 or cell.mean is None:
        return "-"
    fmt = f"{{:{'+' if signed else ''}.{digits}f}}"
    text = fmt.format(cell.mean)
    if cell.std is not None:
        text += f" ± {cell.std:.{digits}f}"
    return f"{text} ({cell.n})"


def short_names(names: list[str]) -> tuple[dict[str, str], str]:
    """Drop the prefix shared by all names and a ``-suffix`` shared by all but at most one.

    Returns:
        ``(name -> label, note)`` where the note says what was dropped.
    """
    if len(names) < 2:
        return {n: n for n in names}, ""
    prefix = os.path.commonprefix(names)
    prefix = prefix[: prefix.rfind("-") + 1] if "-" in prefix else ""
    labels = {n: n[len(prefix):] for n in names}
    note = f"experiments {prefix}*" if prefix else ""
    longer = [v for v in labels.values() if "-" in v]
    if len(longer) >= max(2, len(names) - 1):
        suffix = os.path.commonprefix([v[::-1] for v in longer])[::-1]
        suffix = suffix[suffix.find("-"):] if "-" in suffix else ""
        if suffix and all(v != suffix for v in longer):
            labels = {n: (v[: -len(suffix)] if v.endswith(suffix) else v) for n, v in labels.items()}
            note += f"{'; ' if note else ''}suffix {suffix} (the knobs) dropped"
    return labels, note


def _best(table: Table, col: str) -> set[str]:
    """Rows holding the best mean of a column (ties: all of them)."""
    present = {e: table.cells[(e, col)].mean for e in table.rows if table.cells[(e, col)].n}
    top = max(present.values(), default=None)
    return {e for e, v in present.items() if v == top}


def table_rows(table: Table, labels: dict[str, str], bold: bool = True) -> tuple[list[str], list[list[str]]]:
    """Header and text rows of a table (``**`` marks the best mean of a column when ``bold``)."""
    header = ["experiment", *table.cols]
    if table.baseline:
        header.append(f"Δ mean vs {labels.get(table.baseline, table.baseline)}")
    best = {c: _best(table, c) for c in table.cols}
    out = []
    for e in table.rows:
        row = [labels.get(e, e)]
        for c in table.cols:
            text = format_cell(table.cells[(e, c)])
            row.append(f"**{text}**" if bold and e in best[c] and text != "-" else text)
        if table.baseline:
            row.append("(baseline)" if e == table.baseline else format_cell(table.deltas[e], signed=True))
        out.append(row)
    return header, out


def caption(last: int, peak: bool) -> str:
    """What a cell means."""
    what = "the best evaluation (peak)" if peak else f"the mean of the last {last} evaluations (all, if fewer)"
    return (f"Cell: per run {what}; mean ± std over seeds (n seeds). mean: per-seed class average, seeds with "
            "every class only. Δ: paired per-seed difference of mean from the baseline ± standard error. "
            "-: missing run. Bold: best mean of the column (ties: all).")


def to_markdown(tables: list[Table], labels: dict[str, str], text: str) -> str:
    """All tables as one Markdown document."""
    parts = []
    for t in tables:
        header, rows = table_rows(t, labels)
        lines = [f"### {LABELS.get(t.metric, t.metric)}", "", "| " + " | ".join(header) + " |",
                 "|" + "|".join(["---"] + [":-:"] * (len(header) - 1)) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + f"\n\n{text}\n"


def to_csv(table: Table, labels: dict[str, str], path: Path) -> None:
    """One row per experiment: mean, std, n of every column (and the Δ vs baseline)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        head = ["experiment", "label"] + [f"{c}_{k}" for c in table.cols for k in ("mean", "std", "n")]
        w.writerow(head + (["delta_mean", "delta_se", "delta_n"] if table.baseline else []))
        for e in table.rows:
            row: list[Any] = [e, labels.get(e, e)]
            for c in table.cols:
                cell = table.cells[(e, c)]
                row += [cell.mean, cell.std, cell.n]
            if table.baseline:
                d = table.deltas.get(e, Cell(0.0, 0.0, table.cells[(e, MEAN)].n))
                row += [d.mean, d.std, d.n]
            w.writerow(["" if v is None else v for v in row])


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def plot_tables(tables: list[Table], labels: dict[str, str], path: Path, title: str, text: str) -> None:
    """Render the tables one above the other into a PNG (best mean per column in bold)."""
    nrows = len(tables[0].rows)
    ncols = len(tables[0].cols) + 1 + bool(tables[0].baseline)
    panel = 0.45 + 0.24 * (nrows + 1)  # inches per metric
    height = 0.9 + len(tables) * panel
    fig = _figure(max(8.0, 1.9 * ncols), height)
    fig.suptitle(title, fontsize=11, fontweight="bold", y=1.0 - 0.12 / height)
    for i, t in enumerate(tables):
        top = 1.0 - (0.45 + i * panel) / height
        ax = fig.add_axes((0.01, top - (panel - 0.15) / height, 0.98, (panel - 0.3) / height))
        ax.axis("off")
        ax.set_title(LABELS.get(t.metric, t.metric), fontsize=10, loc="left")
        header, rows = table_rows(t, labels)
        tab = ax.table(cellText=[[c.strip("*") for c in r] for r in rows], colLabels=header, loc="upper center",
                       cellLoc="center")
        tab.auto_set_font_size(False)
        tab.set_fontsize(8)
        tab.scale(1.0, 1.2)
        for (r, c), cell in tab.get_celld().items():
            if r == 0:
                cell.set_text_props(fontweight="bold")
                cell.set_facecolor("#e8e8e8")
            elif rows[r - 1][c].startswith("**"):
                cell.set_text_props(fontweight="bold")
                cell.set_facecolor("#dff0d8")
            elif r - 1 < len(t.rows) and t.rows[r - 1] == t.baseline:
                cell.set_facecolor("#f4f4f4")
    fig.text(0.01, 0.01, text, fontsize=7, wrap=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def _series(runs: list[Run], key: str) -> dict[int, list[float]]:
    by_epoch: dict[int, list[float]] = {}
    for r in runs:
        for rec in r.records:
            if _finite(rec.get(key)):
                by_epoch.setdefault(int(rec["epoch"]), []).append(float(rec[key]))
    return by_epoch


def plot_curves(runs: list[Run], labels: dict[str, str], path: Path, metrics=METRICS,
                baseline: Optional[str] = None) -> None:
    """Metric and difficulty vs epoch per class: one line per experiment (baseline black), mean over seeds ± std.

    The difficulty row shows the epoch's mean t (``difficulty_mean``) where logged, else the t of its last step.
    """
    experiments = sorted({r.experiment for r in runs}, key=lambda e: (e != baseline, e))
    classes = sorted({r.class_name for r in runs})
    keys = list(metrics) + ["difficulty"]
    fig = _figure(3.6 * len(classes) + 0.9, 2.2 * len(keys) + 0.6)
    axes = fig.subplots(len(keys), len(classes), squeeze=False, sharex=True)
    colours = [f"C{i}" for i in range(10)]
    for j, c in enumerate(classes):
        for i, key in enumerate(keys):
            ax = axes[i][j]
            for k, e in enumerate(experiments):
                chosen = [r for r in runs if r.experiment == e and r.class_name == c]
                series = _series(chosen, "difficulty_mean") if key == "difficulty" else {}
                series = series or _series(chosen, key)
                if not series:
                    continue
                xs = sorted(series)
                mean = [statistics.fmean(series[x]) for x in xs]
                std = [statistics.stdev(series[x]) if len(series[x]) > 1 else 0.0 for x in xs]
                colour = "black" if e == baseline else colours[k % 10]
                style = "--" if e == baseline or k > 10 else "-"
                ax.plot(xs, mean, style, color=colour, lw=1.4, label=labels.get(e, e), marker=".", ms=3,
                        zorder=3 if e == baseline else 2)  # the baseline stays visible on top
                ax.fill_between(xs, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                                color=colour, alpha=0.10, lw=0)
            ax.grid(alpha=0.3)
            if i == 0:
                ax.set_title(c, fontsize=10)
            if j == 0:
                ax.set_ylabel(LABELS.get(key, key), fontsize=9)
            if i == len(keys) - 1:
                ax.set_xlabel("epoch", fontsize=9)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper center", ncol=min(len(names), 6), fontsize=8, frameon=False)
    h = fig.get_figheight()
    fig.subplots_adjust(left=0.8 / fig.get_figwidth(), right=0.98, top=1.0 - 0.75 / h, bottom=0.5 / h, hspace=0.12)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def main(argv: Optional[list[str]] = None) -> int:
    """Command line entry point; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--logdir", action="append", default=None,
                    help="folder searched for runs at any depth, e.g. cdo-train's --output-dir (repeatable; "
                         "default ./result)")
    ap.add_argument("-o", "--output", default=None,
                    help="table PNG (default <first logdir>/comparison/table_last<N>avg.png or table_peak.png)")
    ap.add_argument("--peak", action="store_true", help="best evaluation per run instead of the last-N mean")
    ap.add_argument("--last", type=int, default=5, help="evaluations averaged per run (default 5)")
    ap.add_argument("--baseline", default=None, help="experiment the Δ column compares with ('' for none)")
    ap.add_argument("--include-unfinished", action="store_true", help="also use runs without summary.json")
    ap.add_argument("--metrics", default=",".join(METRICS), help=f"comma-separated (default {','.join(METRICS)})")
    args = ap.parse_args(argv)
    if args.last < 1:
        ap.error("--last must be >= 1")
    logdirs = args.logdir or ["./result"]
    missing = [d for d in logdirs if not Path(d).is_dir()]
    if missing:
        print(f"error: --logdir {missing[0]} is not a folder", file=sys.stderr)
        return 1
    all_runs = find_runs(logdirs)
    runs = [r for r in all_runs if r.finished or args.include_unfinished]
    if not runs:
        print(f"error: no finished runs under {', '.join(logdirs)} (expected <experiment>/<class>/seed_<n>/"
              "metrics.jsonl at any depth)", file=sys.stderr)
        return 1
    if len(runs) < len(all_runs):
        print(f"skipped {len(all_runs) - len(runs)} unfinished run(s) (--include-unfinished to use them)")
    kind = "peak" if args.peak else f"last{args.last}avg"
    out = Path(args.output or Path(logdirs[0]) / "comparison" / f"table_{kind}.png")
    baseline = default_baseline(runs) if args.baseline is None else (args.baseline or None)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    tables = [build_table(runs, m, args.last, args.peak, baseline) for m in metrics]
    labels, note = short_names(tables[0].rows)
    text = caption(args.last, args.peak) + (f" Labels: {note}." if note else "")
    n_seeds = len({r.seed for r in runs})
    title = f"{'peak' if args.peak else f'mean of last {args.last} evaluations'} ({', '.join(logdirs)}, {n_seeds} seed(s))"
    plot_tables(tables, labels, out, title, text)
    md = to_markdown(tables, labels, text)
    out.with_suffix(".md").write_text(md)
    for t in tables:
        to_csv(t, labels, out.with_name(f"{out.stem}_{t.metric}.csv"))
    plot_curves(runs, labels, out.with_name("learning_curves.png"), metrics, tables[0].baseline)
    print(md)
    print(f"wrote {out}, {out.with_suffix('.md')}, {out.stem}_<metric>.csv and {out.with_name('learning_curves.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
