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
        # good and defective parts are timed apart (5 timed runs of each kind)
        assert set(row["parts"]) == {"good", "defective"}
        assert all(row["parts"][k]["e2e_ms"]["p50"] > 0 for k in row["parts"])
        assert row["accuracy"] == {} and row["agreement_pct"] == 100.0
    trt = [row for row in doc["rows"] if row["backend"] == "tensorrt"]
    assert trt and all(row["status"] in ("ok", "unavailable") for row in trt)
    assert "e2e p50/p90/p99" in r.stdout and "onnxruntime" in r.stdout and "status:" in r.stdout


def test_without_data_the_parts_are_real_images_never_only_noise(tiny_bundle, tmp_path, cli, part):
    """Synthetic surfaces (with drawn defects) here; the bundle's calibration images where readable."""
    import shutil

    import cv2

    from cdo_deploy.bench import BenchConfig, run_bench
    from cdo_deploy.bundle import load_bundle_meta

    rep = run_bench(BenchConfig(tiny_bundle, backends=("onnxruntime",), batches=(2,), warmup=0, iters=4,
                                device="cpu"))
    assert rep.parts.startswith("synthetic parts (8 good + 8 with a drawn defect)")
    (row,) = rep.rows
    # a drawn bright spot raises the brightness map: defective parts decide NG, good ones do not
    assert row.agreement_pct == 100.0 and row.parts["defective"]["post_ms"]["p50"] > 0
    b = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, b)
    meta = load_bundle_meta(b)
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"calib{i}.png"))
        cv2.imwrite(paths[-1], part(False, seed=i))
    meta.calibration_images = paths + [str(tmp_path / "gone.png")]  # one not on this machine
    meta.save(b)
    out = tmp_path / "b.json"
    r = cli("cdo-bench", b, "--backend", "onnxruntime", "--batch", "1", "--warmup", "0", "--iters", "4",
            "--device", "cpu", "--json", out)
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["parts"] == "calibration images (3 good + 3 with a drawn defect)" and "parts: calibration" in r.stdout
    assert "AVX2" in doc["cpu"] or "unknown" in doc["cpu"] or doc["cpu"]


def _offset_variant(src, dst, offset: float) -> None:
    """The tiny graph with ``offset`` added to map and score: a variant whose decisions differ."""
    import onnx
    from onnx import TensorProto, helper

    m = onnx.load(str(src))
    for node in m.graph.node:
        node.output[:] = [o + "_raw" if o in ("anomaly_map", "score") else o for o in node.output]
        node.input[:] = [i + "_raw" if i == "anomaly_map" else i for i in node.input]
    m.graph.initializer.append(helper.make_tensor("offset", TensorProto.FLOAT, [], [offset]))
    m.graph.node.extend([helper.make_node("Add", ["anomaly_map_raw", "offset"], ["anomaly_map"]),
                         helper.make_node("Add", ["score_raw", "offset"], ["score"])])
    onnx.checker.check_model(m)
    onnx.save(m, str(dst))


def test_data_gives_accuracy_and_agreement_per_backend_and_variant(tiny_bundle, tmp_path, cli, part, tiny):
    """Accuracy columns against an independent computation (scikit-learn on the numpy twin of the graph)."""
    import shutil

    import cv2
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from cdo_deploy.bundle import load_bundle_meta
    from cdo_deploy.preprocess import to_model_input

    b = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, b)
    _offset_variant(b / "model.onnx", b / "model_shift.onnx", 0.5)  # good parts (~0.33) cross 0.75
    meta = load_bundle_meta(b)
    meta.variants = {"fp32": "model.onnx", "shift": "model_shift.onnx"}
    meta.save(b)
    data = tmp_path / "lot"
    images, labels, masks = [], [], []
    for i in range(6):
        ng = i >= 3
        img = part(ng, seed=i)
        kind = "patch" if ng else "good"
        (data / kind).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(data / kind / f"{i}.png"), img)
        if ng:
            m = (img[..., 0] == 255).astype(np.uint8) * 255
            (data / "mask" / kind).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(data / "mask" / kind / f"{i}.png"), m)
        images.append(img)
        labels.append(int(ng))
    x = np.stack([to_model_input(img, tiny.size, tiny.size) for img in images])
    maps, scores = tiny.reference(x)
    out = tmp_path / "b.json"
    r = cli("cdo-bench", b, "--data", data, "--backend", "onnxruntime,openvino", "--batch", "1,3", "--warmup", "0",
            "--iters", "2", "--device", "cpu", "--threads", "1", "--json", out, timeout=120)
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["reference"] == "onnxruntime fp32" and "6 parts (3 good, 3 defective; masks)" in doc["parts"]
    rows = {(row["backend"], row["variant"], row["batch"]): row for row in doc["rows"]}
    want_image = roc_auc_score(labels, scores)
    good_flips = sorted(f"good/{i}.png" for i in range(3) if scores[i] < tiny.image_threshold <= scores[i] + 0.5)
    assert good_flips  # the shifted variant really flips some good parts
    for backend in ("onnxruntime", "openvino"):
        for batch in (1, 3):
            fp32, shift = rows[(backend, "fp32", batch)], rows[(backend, "shift", batch)]
            assert fp32["status"] == shift["status"] == "ok"
            assert fp32["accuracy"]["image_auroc"] == pytest.approx(want_image, abs=1e-6)
            assert fp32["accuracy"]["pixel_auroc"] is not None and fp32["accuracy"]["aupro"] is not None
            assert shift["accuracy"]["image_auroc"] == pytest.approx(want_image, abs=1e-6)  # same ranking
            assert fp32["agreement_pct"] == 100.0 and fp32["flipped"] == []
            assert sorted(shift["flipped"]) == good_flips
            assert shift["agreement_pct"] == pytest.approx(100 * (1 - len(good_flips) / 6), abs=1e-3)
    assert "image AUROC" in r.stdout and "agree % (flips)" in r.stdout


def test_bad_data_folder_is_a_one_line_error(tiny_bundle, tmp_path, cli):
    r = cli("cdo-bench", tiny_bundle, "--data", tmp_path / "nope", "--json", tmp_path / "b.json")
    assert r.returncode == 1 and r.stderr.strip().startswith("Error: --data") and "Traceback" not in r.stderr


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
