"""cdo-bench through the real console script."""

from __future__ import annotations

import importlib.util
import json
import os
import textwrap

import pytest


def test_bench_table_and_json(tiny_bundle, tmp_path, cli):
    out = tmp_path / "bench.json"
    r = cli("cdo-bench", tiny_bundle, "--backend", "onnxruntime,tensorrt", "--batch", "1,4",
            "--warmup", "2", "--iters", "10", "--device", "cpu", "--json", out)
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    rows = {(row["backend"], row["batch"]): row for row in doc["rows"]}
    for b in (1, 4):
        row = rows[("onnxruntime", b)]
        assert row["status"] == "ok" and row["variant"] == "fp32" and "CPU" in row["device"]
        for stage in ("pre_ms", "infer_ms", "post_ms", "e2e_ms"):
            s = row[stage]
            assert 0 < s["p50"] <= s["p90"] <= s["p99"] and s["mean"] > 0 and s["std"] >= 0
        assert row["images_per_s"] > 0 and row["peak_rss_mb"] > 0
    trt = [row for row in doc["rows"] if row["backend"] == "tensorrt"]
    assert trt and all(row["status"] in ("ok", "unavailable") for row in trt)
    assert "e2e p50/p90/p99" in r.stdout and "onnxruntime" in r.stdout and "status:" in r.stdout


def test_bench_errors(tiny_bundle, tmp_path, cli):
    r = cli("cdo-bench", tmp_path / "nope")
    assert r.returncode == 1 and r.stderr.strip().startswith("Error: no such bundle folder")
    r = cli("cdo-bench", tiny_bundle, "--backend", "onnxruntim", "--json", tmp_path / "b.json")
    assert r.returncode == 1 and "did you mean onnxruntime" in r.stderr and "Traceback" not in r.stderr


STAND_IN_API = '''
    """Stand-in for cdo_train.api (numpy twin of the tiny bundle): tests the --torch path without torch."""
    from pathlib import Path

    import numpy as np


    class _Run:
        image_size = (32, 32)

        def predict(self, images):
            maps = images.astype(np.float32).mean(axis=3)[:, None] / 255.0
            return maps, maps.reshape(len(maps), -1).max(axis=1)


    def load_run(run_dir, device="cpu"):
        if not Path(run_dir).is_dir():
            raise FileNotFoundError(f"no run folder {run_dir}")
        return _Run()
'''


def test_bench_reference_row_and_ratio_with_a_stand_in_training_api(tiny_bundle, tmp_path, cli):
    pkg = tmp_path / "stand_in" / "cdo_train"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "api.py").write_text(textwrap.dedent(STAND_IN_API))
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "stand_in")}
    (tmp_path / "run").mkdir()
    for run_dir, status in ((tmp_path / "run", "ok"), (tmp_path / "missing", "failed")):
        out = tmp_path / f"{status}.json"
        r = cli("cdo-bench", tiny_bundle, "--backend", "onnxruntime", "--batch", "1,2", "--iters", "5",
                "--device", "cpu", "--torch", run_dir, "--json", out, env=env)
        assert r.returncode == 0, r.stderr
        rows = json.loads(out.read_text())["rows"]
        ref = [row for row in rows if row["backend"] == "torch-eager"]
        assert ref and {row["status"] for row in ref} == {status}
        if status == "ok":
            assert [row["batch"] for row in ref] == [1, 2] and all(row["vs_torch"] == 1.0 for row in ref)
            ort = [row for row in rows if row["backend"] == "onnxruntime"]
            assert all(row["vs_torch"] > 0 for row in ort) and "vs torch" in r.stdout
        else:
            assert "no run folder" in ref[0]["note"]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("cdo_train") is None, reason="cdo_train not installed")
def test_bench_against_a_real_pytorch_training_run(tiny_bundle, tmp_path, cli):
    """Trains a 1-epoch tiny run with cdo-train, then benchmarks it as the reference row."""
    try:
        importlib.util.find_spec("cdo_train.api")
        from cdo_train.data import make_demo_dataset
    except ImportError as e:
        pytest.skip(f"cdo_train.api not available: {e}")
    data = make_demo_dataset(tmp_path / "data", classes=["weave"], n_train=4, n_test_good=2, n_test_defect=2,
                             size=64)
    r = cli("cdo-train", "--data-root", data, "--class-name", "weave", "--output-dir", tmp_path / "res",
            "--device", "cpu", "--backbone", "resnet18", "--teacher-weights", "random", "--image-size", "64",
            "--batch-size", "4", "--epochs", "1", "--eval-every", "1", "--no-progress", timeout=600)
    assert r.returncode == 0, r.stderr
    run = tmp_path / "res" / "resnet18-none" / "weave" / "seed_111"
    r = cli("cdo-bench", tiny_bundle, "--backend", "onnxruntime", "--batch", "1", "--iters", "3", "--warmup", "1",
            "--device", "cpu", "--torch", run, "--json", tmp_path / "b.json", timeout=600)
    assert r.returncode == 0, r.stderr
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    (ref,) = [row for row in rows if row["backend"] == "torch-eager"]
    assert ref["status"] == "ok" and ref["device"] == "torch cpu" and "64x64" in ref["note"]


@pytest.mark.parametrize("args", [["--backend", "tensorrt"], ["--backend", "onnxruntime", "--variant", "int9"]])
def test_bench_exits_1_when_no_row_was_measured(tiny_bundle, tmp_path, cli, args):
    """The defect: only unavailable rows (TensorRT absent, unknown variant) still exited 0."""
    if args[1] == "tensorrt" and importlib.util.find_spec("tensorrt") is not None:
        spec = importlib.util.find_spec("tensorrt")
        if spec.origin not in (None, "namespace"):
            pytest.skip("TensorRT is installed here: its row may be measured")
    r = cli("cdo-bench", tiny_bundle, *args, "--batch", "1", "--iters", "2", "--device", "cpu",
            "--json", tmp_path / "b.json")
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 1 and last.startswith("Error: no row was measured") and "Traceback" not in r.stderr
    assert "unavailable" in r.stdout and json.loads((tmp_path / "b.json").read_text())["rows"]  # table + JSON kept
