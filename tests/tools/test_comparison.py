"""tools/comparison.py: aggregation (last-N mean, peak, seeds, missing runs, paired Δ) and its outputs."""

import csv
import json

import pytest
import yaml

from tools import comparison


def _write_run(root, exp, cls, seed, values, curriculum="linear", finished=True):
    run = root / exp / cls / f"seed_{seed}"
    run.mkdir(parents=True)
    lines = []
    for i, v in enumerate(values, 1):
        lines.append(json.dumps({"epoch": i, "loss": 1.0, "difficulty": i / len(values), "image_auroc": v,
                                 "pixel_auroc": v, "aupro": v / 2}))
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    (run / "config.yaml").write_text(yaml.safe_dump({"curriculum": curriculum, "ordering": None}))
    if finished:
        (run / "summary.json").write_text("{}")


@pytest.fixture()
def logdir(tmp_path):
    root = tmp_path / "result"
    # baseline: two classes x two seeds; last-2 means: a/1 0.6, a/2 0.8, b/1 0.4, b/2 0.6
    _write_run(root, "bb-none", "a", 1, [0.1, 0.5, 0.7], curriculum="none")
    _write_run(root, "bb-none", "a", 2, [0.9, 0.7, 0.9], curriculum="none")
    _write_run(root, "bb-none", "b", 1, [0.3, 0.5], curriculum="none")
    _write_run(root, "bb-none", "b", 2, [0.6, 0.6], curriculum="none")
    # curriculum: class b seed 2 missing; an unfinished run is ignored
    _write_run(root, "bb-linear-amp", "a", 1, [0.7, 0.7])
    _write_run(root, "bb-linear-amp", "a", 2, [0.9, 0.9])
    _write_run(root, "bb-linear-amp", "b", 1, [0.5, 0.5])
    _write_run(root, "bb-linear-amp", "b", 2, [0.0, 0.0], finished=False)
    return root


def test_run_value_last_n_mean_and_peak():
    recs = [{"m": 0.1}, {"m": 0.9}, {"m": 0.5}, {"x": 1}, {"m": float("nan")}]
    assert comparison.run_value(recs, "m", last=2) == pytest.approx(0.7)
    assert comparison.run_value(recs, "m", last=5) == pytest.approx(0.5)
    assert comparison.run_value(recs, "m", peak=True) == 0.9
    assert comparison.run_value(recs, "missing") is None


def test_table_cells_seeds_missing_runs_and_paired_delta(logdir):
    runs = [r for r in comparison.find_runs(logdir) if r.finished]
    assert len(runs) == 7
    base = comparison.default_baseline(runs)
    assert base == "bb-none"
    t = comparison.build_table(runs, "image_auroc", last=2, baseline=base)
    assert t.rows == ["bb-none", "bb-linear-amp"] and t.cols == ["a", "b", "mean"]
    a = t.cells[("bb-none", "a")]
    assert (a.mean, a.n) == (pytest.approx(0.7), 2) and a.std == pytest.approx(0.1414, abs=1e-4)
    m = t.cells[("bb-none", "mean")]
    assert m.values == {1: pytest.approx(0.5), 2: pytest.approx(0.7)} and m.mean == pytest.approx(0.6)
    b = t.cells[("bb-linear-amp", "b")]
    assert (b.mean, b.std, b.n) == (pytest.approx(0.5), None, 1)
    cm = t.cells[("bb-linear-amp", "mean")]  # seed 2 lacks class b: only seed 1 enters the mean
    assert cm.n == 1 and cm.mean == pytest.approx(0.6)
    d = t.deltas["bb-linear-amp"]  # paired on seed 1: 0.6 - 0.5
    assert d.n == 1 and d.mean == pytest.approx(0.1) and d.std is None
    assert comparison.format_cell(b) == "0.500 (1)"
    assert comparison.format_cell(a) == "0.700 ± 0.141 (2)"
    assert comparison.format_cell(comparison.Cell()) == "-"
    assert comparison.format_cell(d, signed=True) == "+0.100 (1)"
    peak = comparison.build_table(runs, "image_auroc", peak=True, baseline=base)
    assert peak.cells[("bb-none", "a")].mean == pytest.approx(0.8)


def test_missing_class_is_a_dash_and_never_averaged(logdir):
    _write_run(logdir, "bb-step", "a", 1, [0.9, 0.9])
    runs = [r for r in comparison.find_runs(logdir) if r.finished]
    t = comparison.build_table(runs, "aupro", baseline="bb-none")
    header, rows = comparison.table_rows(t, {})
    step = next(r for r in rows if r[0] == "bb-step")
    assert step[2] == "-" and step[3] == "-" and step[4] == "-"  # class b, mean, delta
    assert step[1].startswith("**0.450")  # best of column a, in bold


def test_short_names_drop_shared_prefix_and_knob_suffix():
    names = ["tf-lite0-none", "tf-lite0-linear-a+b", "tf-lite0-self-paced-a+b", "tf-lite0-anti-a+b"]
    labels, note = comparison.short_names(names)
    assert labels == {"tf-lite0-none": "none", "tf-lite0-linear-a+b": "linear",
                      "tf-lite0-self-paced-a+b": "self-paced", "tf-lite0-anti-a+b": "anti"}
    assert "a+b" in note and "tf-lite0-" in note
    assert comparison.short_names(["x"]) == ({"x": "x"}, "")


def test_main_writes_png_markdown_csv_and_curves(logdir, tmp_path, capsys):
    out = tmp_path / "cmp" / "table_last5avg.png"
    assert comparison.main(["--logdir", str(logdir), "-o", str(out), "--last", "2"]) == 0
    printed = capsys.readouterr().out
    assert "skipped 1 unfinished" in printed and "| experiment |" in printed
    for path in (out, out.with_suffix(".md"), out.parent / "learning_curves.png"):
        assert path.is_file() and path.stat().st_size > 0, path
    md = out.with_suffix(".md").read_text()
    assert md.count("### ") == 3 and "Δ mean vs none" in md and "(baseline)" in md
    with open(out.parent / "table_last5avg_image_auroc.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["label"] for r in rows] == ["none", "linear-amp"]
    assert float(rows[0]["mean_mean"]) == pytest.approx(0.6) and rows[1]["b_std"] == ""
    assert comparison.main(["--logdir", str(logdir), "-o", str(tmp_path / "p.png"), "--peak"]) == 0
    assert comparison.main(["--logdir", str(tmp_path / "empty")]) == 1


def test_runs_are_found_at_any_depth_and_in_several_logdirs(tmp_path, capsys):
    a, b = tmp_path / "machine_a" / "result", tmp_path / "machine_b" / "result"
    _write_run(a / "hard", "default", "turf", 111, [0.5], curriculum="none")
    _write_run(a / "hard", "default", "turf", 112, [0.7], curriculum="none")
    _write_run(a, "flat-none", "turf", 111, [0.6], curriculum="none")
    _write_run(b / "deep" / "er", "linear", "turf", 111, [0.8])
    _write_run(a / "hard", "default", "cells", 111, [0.1], curriculum="none", finished=False)
    (a / "hard" / "default" / "cells" / "seed_111" / "summary.json").write_text('{"status": "interrupted"}')
    runs = comparison.find_runs([a, b])
    assert sorted({r.experiment for r in runs}) == ["deep/er/linear", "flat-none", "hard/default"]
    assert [r.finished for r in runs if r.class_name == "cells"] == [False]  # interrupted is not finished
    assert comparison.find_runs(a / "hard" / "default")[0].experiment == "default"  # an experiment folder itself
    assert len(comparison.find_runs([a, tmp_path / "machine_a"])) == len(comparison.find_runs(a))  # nested: once
    _write_run(b / "hard", "default", "turf", 111, [0.9], curriculum="none")  # the same run name on machine b
    both = {r.experiment for r in comparison.find_runs([a, b])}
    assert {"machine_a/result:hard/default", "machine_b/result:hard/default"} <= both
    out = tmp_path / "cmp" / "t.png"
    assert comparison.main(["--logdir", str(a), "--logdir", str(b), "-o", str(out), "--last", "1"]) == 0
    md = out.with_suffix(".md").read_text()
    assert "linear" in md and "default" in md and "flat-none" in md
    assert comparison.main(["--logdir", str(tmp_path / "nope")]) == 1
    assert "is not a folder" in capsys.readouterr().err
