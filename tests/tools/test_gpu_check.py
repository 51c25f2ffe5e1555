"""tools/gpu_check.sh and its Python steps, on a CPU: order, budget, packing, summary, the fair baseline.

The one GPU run must not fail on a typo: the script runs here for real in dry-run mode (every step's
command logged instead of run; ordering, budget cuts, summary and packing real), the summary and
packer run on a synthetic results folder shaped like a GPU run's, and the fair eager baseline of
tools/gpu_bench.py runs on a tiny model on the CPU.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "gpu_check.sh"
ORDER = ["env", "train", "export", "aoti", "bench_torch", "bench_fair", "bench_onnx", "tests"]


def _tool(name: str):
    return importlib.import_module(f"tools.{name}")


def _run(out: Path, **env: str) -> subprocess.CompletedProcess:
    e = {**os.environ, "PYTHON": sys.executable, "OUT": str(out), "GPU_CHECK_DRY_RUN": "1", **env}
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=e, timeout=120)


def test_script_parses():
    r = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_dry_run_orders_benches_before_tests_and_packs_everything_into_two_files(tmp_path):
    r = _run(tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu_check.json", "gpu_check.tar.gz"]
    doc = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [s["step"] for s in doc["steps"]] == ORDER and {s["status"] for s in doc["steps"]} == {"dry-run"}
    assert all(int(s["cap_s"]) >= 10 for s in doc["steps"]) and doc["budget_s"] == 540
    with tarfile.open(tmp_path / "gpu_check.tar.gz") as tar:
        names = set(tar.getnames())
        log = tar.extractfile("gpu_check/logs/bench_fair.log").read().decode()
    assert {f"gpu_check/logs/{s}.log" for s in ORDER} | {"gpu_check/steps.tsv", "gpu_check/summary.txt"} <= names
    assert "tools/gpu_bench.py" not in log and "--run" in log and "--json" in log  # the command, logged
    assert "step caps: env 30s, train 120s" in r.stderr and "gpu_check summary" in r.stdout


def test_budget_cuts_and_skips_late_steps_but_still_summarises_and_packs(tmp_path):
    r = _run(tmp_path, GPU_CHECK_BUDGET_S="15", GPU_CHECK_RESERVE_S="2", GPU_CHECK_MIN_STEP_S="10",
             GPU_CHECK_DRY_SLEEP="1")
    assert r.returncode == 0, r.stderr
    steps = json.loads((tmp_path / "gpu_check.json").read_text())["steps"]
    ran = [s for s in steps if s["status"] == "dry-run"]
    skipped = [s for s in steps if s["status"].startswith("skipped (time budget")]
    assert ran and skipped and [s["step"] for s in ran + skipped] == ORDER
    assert all(int(s["cap_s"]) <= 13 for s in ran)  # every cap cut to what was left
    assert sum(s["seconds"] for s in steps) < 15


def _results(tmp_path: Path) -> Path:
    """A results folder shaped like a GPU run's (the files the steps write)."""
    res = tmp_path / "gpu_check"
    (res / "logs").mkdir(parents=True)
    (res / "steps.tsv").write_text("env\tok\t2.0\t30\ntests\tfailed (rc=1)\t100.5\t240\n")
    (res / "env.json").write_text(json.dumps({"gpu": "NVIDIA H200", "torch": "2.11", "triton": "3.6"}))
    (res / "logs" / "tests.log").write_bytes(os.urandom(3 << 20))  # incompressible: 3 MiB in the archive
    bench = {"rows": [{"backend": "torch", "variant": "aoti-fp16", "batch": b, "status": "ok",
                       "infer_ms": {"p50": 0.4, "p99": 0.6, "mean": 0.45 * b}, "e2e_ms": {"p50": 0.7, "p99": 0.9},
                       "images_per_s": 1400.0 * b} for b in (1, 64)]}
    (res / "bench_torch.json").write_text(json.dumps(bench))
    fair = {"rows": [
        {"name": "eager-fair", "batch": b, "status": "ok", "device_only": {"images_per_s": 1000.0 * b},
         "host_to_host": {"images_per_s": 500.0 * b, "p99_ms": 2.0}} for b in (1, 64)] + [
        {"name": "aoti", "batch": 64, "status": "ok", "device_only": {"images_per_s": 25000.0},
         "host_to_host": {"images_per_s": 12000.0, "p99_ms": 6.0},
         "ratio_vs_eager_fair": {"device_only": 0.39, "host_to_host": 0.38}}]}
    (res / "gpu_bench.json").write_text(json.dumps(fair))
    (res / "pytest_gpu.xml").write_text(
        '<testsuites><testsuite tests="3" failures="1" errors="0" skipped="1">'
        '<testcase classname="tests.gpu.test_x" name="test_a"><failure message="boom"/></testcase>'
        '<testcase classname="tests.gpu.test_x" name="test_b"/></testsuite></testsuites>')
    return res


def test_summary_reports_targets_ratios_and_failed_tests_and_pack_caps_the_archive(tmp_path, monkeypatch):
    steps = _tool("gpu_check_steps")
    res = _results(tmp_path)
    doc = steps.summary(res, 540, 130.0)
    assert doc["elapsed_s"] == 130.0 and doc["tests"]["failed"] == ["tests.gpu.test_x::test_a"]
    targets = {t["target"]: t for t in doc["targets"]}
    assert targets["batch 1 e2e p99 <= 1.0 ms (cdo-bench torch)"]["met"] is True
    dev = targets["batch 64 fp16 >= 20000 img/s device-only (aoti)"]
    assert dev["met"] is True and dev["vs_eager_fair"] == 0.39
    assert [r["vs_eager_fair"] for r in doc["bench"]] == [2.8, 2.8]  # cdo-bench img/s over eager-fair host-to-host
    monkeypatch.setattr(steps, "ARCHIVE_MAX", 2 << 20)  # force the log truncation
    out = tmp_path / "out"
    archive = steps.pack(res, out)
    assert archive.stat().st_size <= 2 << 20 and sorted(p.name for p in out.iterdir()) == [
        "gpu_check.json", "gpu_check.tar.gz"]
    with tarfile.open(archive) as tar:
        assert tar.getmember("gpu_check/logs/tests.log").size == steps.LOG_TAIL


def test_fair_eager_baseline_runs_and_every_row_has_its_ratio():
    torch = pytest.importorskip("torch")
    gpu_bench = _tool("gpu_bench")
    from cdo_train.model.cdo_model import CDOModel, ModelConfig

    torch.manual_seed(0)
    model = CDOModel(ModelConfig("resnet18", image_size=32, teacher_weights="random"))
    doc = gpu_bench.measure(model, "cpu", (1, 2), None, warmup=1, iters=2)
    assert [(r["name"], r["batch"], r["status"]) for r in doc["rows"]] == [("eager-fair", 1, "ok"),
                                                                           ("eager-fair", 2, "ok")]
    for r in doc["rows"]:
        assert r["device_only"]["images_per_s"] > 0 and r["host_to_host"]["p99_ms"] > 0
        assert r["ratio_vs_eager_fair"] == {"device_only": 1.0, "host_to_host": 1.0}
    # the fair module computes what the model computes (reference head, fp32 on CPU)
    images = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)
    amap, score = gpu_bench.fair_eager(model, torch.device("cpu"))(images)
    with torch.no_grad():
        ref_map, ref_score = model(images.permute(0, 3, 1, 2).float() / 255.0)
    torch.testing.assert_close(amap, ref_map, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(score, ref_score, atol=1e-5, rtol=1e-4)
