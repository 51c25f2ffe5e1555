"""`cdo-inspect build-engine`: wiring and its one-line errors where TensorRT is missing."""

from __future__ import annotations

import importlib.util

import pytest


def _no_tensorrt() -> bool:
    spec = importlib.util.find_spec("tensorrt")
    return spec is None or spec.origin is None


@pytest.mark.skipif(not _no_tensorrt(), reason="TensorRT is installed: the missing-TensorRT error cannot occur")
def test_build_engine_without_tensorrt_is_one_line_error(cli, tiny_bundle):
    r = cli("cdo-inspect", "build-engine", tiny_bundle, "--precision", "fp32")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and r.stderr.startswith("Error:") and "tensorrt" in r.stderr.lower()
    assert not list(tiny_bundle.glob("*.engine"))


def test_build_engine_rejects_bad_batch_range(cli, tiny_bundle):
    r = cli("cdo-inspect", "build-engine", tiny_bundle, "--min-batch", "8", "--opt-batch", "4")
    assert r.returncode == 1 and "Traceback" not in r.stderr and "--min-batch" in r.stderr


def test_build_engine_help_lists_options(cli):
    r = cli("cdo-inspect", "build-engine", "--help")
    assert r.returncode == 0 and "--precision" in r.stdout and "--timing-cache" in r.stdout


def test_trtexec_line_is_printed_without_tensorrt(cli, tiny_bundle):
    r = cli("cdo-inspect", "build-engine", tiny_bundle, "--precision", "fp32", "--trtexec-line", "11",
            "--min-batch", "2", "--max-batch", "16")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ("trtexec --onnx=model.onnx --noTF32 --minShapes=image:2x32x32x3 "
                                "--optShapes=image:8x32x32x3 --maxShapes=image:16x32x32x3 "
                                "--memPoolSize=workspace:2048M --saveEngine=model_fp32.engine "
                                "--timingCacheFile=timing.cache")
    r = cli("cdo-inspect", "build-engine", tiny_bundle, "--precision", "fp16", "--trtexec-line", "10")
    assert r.returncode == 1 and r.stderr.startswith("Error:") and "no fp16 ONNX variant" in r.stderr
