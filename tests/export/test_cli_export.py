"""``cdo-export`` end to end through the real CLI: the bundle it writes and its one-line errors."""

from __future__ import annotations

import json
import re
import shutil

import onnx
import pytest
import yaml

from cdo_deploy.bundle import BundleMeta, load_bundle_meta, sha256_file
from cdo_train.export.formats import module_available
from tests.conftest import run_cli


def test_bundle_holds_graph_thresholds_statistics_config_and_metrics(exported):
    b = exported.bundle
    assert sorted(p.name for p in b.iterdir()) == ["model.json", "model.onnx", "model_fp16.onnx", "model_int8.onnx"]
    meta = load_bundle_meta(b)
    calib = json.loads((exported.run / "calibration.json").read_text())
    summary = json.loads((exported.run / "summary.json").read_text())
    config = yaml.safe_load((exported.run / "config.yaml").read_text())
    assert (meta.height, meta.width, meta.backbone, meta.channel_order) == (64, 64, "resnet18", "RGB")
    assert meta.levels == [1, 2, 3] and meta.blur_sigma == 4.0 and meta.score_rule == {"kind": "max"}
    assert meta.image_threshold == calib["image_threshold"] and meta.pixel_threshold == calib["pixel_threshold"]
    assert meta.threshold_source == calib["source"] == "f1_optimal_test"
    assert {k: meta.normal_stats[k] for k in calib["normal_stats"]} == calib["normal_stats"]
    assert meta.normal_stats["pixel_p999"] == calib["normal_pixel_p999"]
    assert meta.metrics["last"] == summary["last"] and meta.metrics["best"] == summary["best"]
    assert meta.metrics["export_parity"][0]["variant"] == "fp32"
    assert {k: meta.train[k] for k in config} == config and meta.train["model"]["backbone"] == "resnet18"
    assert meta.variants == {"fp32": "model.onnx", "fp16": "model_fp16.onnx", "int8": "model_int8.onnx"}
    assert meta.engines == {}
    raw = json.loads((b / "model.json").read_text())
    assert raw["input"] == {"name": "image", "height": 64, "width": 64, "channels": 3, "channel_order": "RGB",
                            "layout": "NHWC", "dtype": "uint8"}
    assert [o["name"] for o in raw["outputs"]] == ["anomaly_map", "score"]


def test_model_json_hash_covers_the_final_onnx_file_and_metadata_is_embedded(exported):
    meta = load_bundle_meta(exported.bundle)
    assert meta.onnx_sha256 == sha256_file(exported.bundle / "model.onnx")
    files = ("model.onnx", "model_fp16.onnx", "model_int8.onnx")
    assert meta.sha256 == {name: sha256_file(exported.bundle / name) for name in files}  # one hash per file
    for name in ("model.onnx", "model_fp16.onnx", "model_int8.onnx"):
        proto = onnx.load(str(exported.bundle / name), load_external_data=False)
        embedded = {p.key: p.value for p in proto.metadata_props}["cdo"]
        want = {**meta.to_dict(), "onnx_sha256": "", "sha256": {}}  # embedded before hashing, no engines yet
        assert json.loads(embedded) == want, name
        assert BundleMeta.from_dict(json.loads(embedded)).image_threshold == meta.image_threshold


def test_export_logs_one_line_per_output_file_and_prints_the_next_command(exported):
    lines = [x for x in exported.stderr.splitlines() if re.match(r"^(onnx|onnx-fp16|onnx-int8|triton)\s+[\d.]+ s ", x)]
    assert len(lines) == 4, exported.stderr
    for line in lines:
        assert re.search(r"\d+\.\d s  \S+ \(\d+\.\d MB\)$", line), line
    assert "cdo-inspect" in exported.stdout and str(exported.bundle) in exported.stdout


def test_list_formats_shows_the_table():
    r = run_cli("cdo-export", "--list-formats")
    assert r.returncode == 0, r.stderr
    for name in ("onnx", "onnx-fp16", "onnx-int8", "engine", "triton"):
        assert re.search(rf"^{name}\s", r.stdout, re.M), r.stdout
    assert "tensorrt" in r.stdout.lower()
    # the measured speed/accuracy and the CPU features they depend on, for every format
    assert "measured on" in r.stdout and re.search(r"^this CPU: .*AVX2 (yes|no), .*VNNI (yes|no), AMX", r.stdout, re.M)
    for name in ("onnx", "onnx-fp16", "onnx-int8", "openvino", "engine"):
        assert re.search(rf"^  {name}: speed .+; accuracy .+; depends on .+", r.stdout, re.M), name


def _one_line_error(r, needle: str) -> None:
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    errors = [x for x in r.stderr.splitlines() if x.startswith("Error:")]
    assert len(errors) == 1 and needle in errors[0], r.stderr


@pytest.mark.parametrize("args, needle", [
    (["--opset", "16"], "--opset must be an integer in [17, 24], got 16"),
    (["--opset", "25"], "[17, 24], got 25"),
    (["--engine", "--engine-precision", "int8"], "needs --int8"),
    (["--engine-precision", "fp16"], "only applies to --engine"),
    (["--calib-images", "8"], "only applies to --int8"),
    (["--accept-int8"], "--accept-int8 only applies to --int8"),
    (["--int8", "--int8-activations", "uint8", "--engine", "--engine-precision", "int8"], "needs --int8-activations int8"),
    (["--min-batch", "8", "--max-batch", "4"], "--min-batch"),
    (["--opt-batch", "64"], "--max-batch"),
])
def test_incompatible_options_are_one_line_errors_and_write_nothing(trained_run, tmp_path, args, needle):
    r = run_cli("cdo-export", trained_run, "-o", tmp_path / "b", *args)
    _one_line_error(r, needle)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(module_available("tensorrt"), reason="TensorRT is installed here")
def test_engine_without_tensorrt_names_what_to_install_and_leaves_no_bundle(trained_run, tmp_path):
    r = run_cli("cdo-export", trained_run, "-o", tmp_path / "b", "--engine")
    _one_line_error(r, "pip install tensorrt")
    assert list(tmp_path.iterdir()) == []


def test_missing_run_corrupt_weights_and_existing_bundle_are_one_line_errors(trained_run, exported, tmp_path):
    _one_line_error(run_cli("cdo-export", tmp_path / "nope", "-o", tmp_path / "b"), "no such run folder")
    assert not (tmp_path / "b").exists()

    bad = tmp_path / "bad_run"
    shutil.copytree(trained_run, bad, ignore=shutil.ignore_patterns("tb", "*.png"))
    (bad / "model.safetensors").write_bytes(b"\x00not a safetensors file")
    _one_line_error(run_cli("cdo-export", bad, "-o", tmp_path / "b"), "corrupt weights")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad_run"]  # no bundle, no leftovers

    _one_line_error(run_cli("cdo-export", trained_run, "-o", exported.bundle), "--force")
    assert load_bundle_meta(exported.bundle).variants["int8"] == "model_int8.onnx"  # untouched
    _one_line_error(run_cli("cdo-export"), "usage: cdo-export RUN_DIR -o BUNDLE_DIR")


def test_force_replaces_a_bundle_but_never_a_foreign_folder(trained_run, exported, tmp_path):
    from cdo_train.export import ExportOptions, export_run

    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"x")
    _one_line_error(run_cli("cdo-export", trained_run, "-o", foreign, "--force"), "not a cdo bundle")
    assert (foreign / "holiday.jpg").is_file()

    bundle = tmp_path / "bundle"
    shutil.copytree(exported.bundle, bundle)
    res = export_run(trained_run, bundle, ExportOptions(force=True, simplify=False))
    assert sorted(p.name for p in bundle.iterdir()) == ["model.json", "model.onnx"]
    assert res.meta.variants == {"fp32": "model.onnx"} and [f.format for f in res.files] == ["onnx"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial/old folders left
