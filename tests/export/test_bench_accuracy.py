"""cdo-bench --data on a real exported bundle: every ONNX Runtime and OpenVINO variant in one run, and the
fp32 accuracy columns equal to the metrics the trainer itself reported (summary.json)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli


def test_bench_data_rows_for_every_variant_and_trainers_metrics(exported, tiny_demo_root, tmp_path):
    out = tmp_path / "bench.json"
    r = run_cli("cdo-bench", exported.bundle, "--data", tiny_demo_root / "weave", "--backend",
                "onnxruntime,openvino", "--batch", "1", "--warmup", "0", "--iters", "1", "--device", "cpu",
                "--threads", "2", "--json", out, timeout=300)
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    rows = {(row["backend"], row["variant"]): row for row in doc["rows"]}
    wanted = {(b, v) for b in ("onnxruntime", "openvino") for v in ("fp32", "fp16", "int8")}
    assert wanted <= set(rows) and all(rows[k]["status"] == "ok" for k in wanted), doc["rows"]
    last = json.loads((exported.run / "summary.json").read_text())["last"]
    for backend in ("onnxruntime", "openvino"):
        acc = rows[(backend, "fp32")]["accuracy"]
        for key in ("image_auroc", "pixel_auroc", "aupro", "pixel_ap"):
            assert acc[key] == pytest.approx(last[key], abs=1e-4), (backend, key)
    assert rows[("onnxruntime", "fp32")]["agreement_pct"] == 100.0  # the reference row
    # OpenVINO fp32 differs from ONNX Runtime by ~1e-6: a part may flip only where its score sits on the threshold
    flipped = rows[("openvino", "fp32")]["flipped"]
    if flipped:
        from cdo_deploy.labelled import load_labelled
        from cdo_train.export.verify import fp32_tolerance, onnx_session, run_onnx

        data = load_labelled(tiny_demo_root / "weave", 64, 64)
        maps, scores = run_onnx(onnx_session(exported.bundle / "model.onnx"), data.inputs)
        tol = fp32_tolerance(maps)
        near = {n for n, sc in zip(data.names, scores) if abs(sc - doc["thresholds"]["image"]) <= tol}
        assert set(flipped) <= near, (flipped, doc["thresholds"])
    for k in wanted:
        row = rows[k]
        assert row["e2e_ms"]["p50"] > 0 and set(row["parts"]) == {"good", "defective"}
        assert row["accuracy"]["image_auroc"] is not None and 0 <= row["agreement_pct"] <= 100
    int8 = rows[("onnxruntime", "int8")]
    assert "bundle int8" in int8["note"]  # decided at its own re-calibrated thresholds
    assert doc["reference"] == "onnxruntime fp32" and "8 parts (3 good, 5 defective; masks)" in doc["parts"]
