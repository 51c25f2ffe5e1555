"""The torch (AOTInductor) backend's own contract: package metadata, device checks, formats rows.

Running a real package is covered by the conformance test (slow: it compiles one)
and on a GPU by ``tests/gpu/test_torch_backend_gpu.py``.
"""

from __future__ import annotations

import json
import zipfile

import pytest

from cdo_deploy.backends import BACKENDS, create_backend
from cdo_deploy.backends.torch_aoti import package_metadata
from cdo_deploy.bundle import BundleMeta
from cdo_deploy.errors import CdoError
from cdo_deploy.formats import list_model_files, resolve_model_file


def _fake_package(path, **meta):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("model/data/aotinductor/model/abc.wrapper_metadata.json", json.dumps(meta))
        z.writestr("model/data/aotinductor/model/abc.wrapper.so", b"not a library")
    return path


def test_package_metadata_is_read_without_torch(tmp_path):
    pkg = _fake_package(tmp_path / "m.pt2", cdo_device="cuda", cdo_max_batch="64")
    assert package_metadata(pkg) == {"cdo_device": "cuda", "cdo_max_batch": "64"}
    (tmp_path / "junk.pt2").write_bytes(b"nope")
    assert package_metadata(tmp_path / "junk.pt2") == {}


def test_registered_and_available_where_torch_is_installed():
    assert "torch" in BACKENDS and BACKENDS.get("torch").availability() is None


def test_a_package_for_another_device_fails_with_what_to_do(tmp_path):
    pkg = _fake_package(tmp_path / "m.pt2", cdo_device="cuda", cdo_height="32", cdo_width="32")
    with pytest.raises(CdoError, match="compiled for cuda, not cpu"):
        create_backend("torch", pkg, device="cpu")
    cpu_pkg = _fake_package(tmp_path / "c.pt2", cdo_device="cpu")
    with pytest.raises(CdoError, match="compiled for cpu, not cuda"):
        create_backend("torch", cpu_pkg, device="cuda:0")
    with pytest.raises(CdoError, match="bad device"):
        create_backend("torch", cpu_pkg, device="tensorrt")


def test_a_corrupt_package_fails_cleanly(tmp_path):
    pkg = _fake_package(tmp_path / "c.pt2", cdo_device="cpu")
    with pytest.raises(CdoError, match="cannot load"):
        create_backend("torch", pkg, device="cpu")


def test_formats_route_pt2_to_torch_and_onnx_to_onnxruntime(tmp_path):
    for name in ("model.onnx", "model_fp16.onnx", "model_aoti_fp16.pt2"):
        (tmp_path / name).write_bytes(b"x")
    meta = BundleMeta(height=32, width=32, backbone="t", variants={
        "fp32": "model.onnx", "fp16": "model_fp16.onnx", "aoti-fp16": "model_aoti_fp16.pt2"})
    assert {f.variant for f in list_model_files(tmp_path, meta, "onnxruntime")} == {"fp32", "fp16"}
    torch_files = list_model_files(tmp_path, meta, "torch")
    assert [(f.variant, f.path.name, f.format) for f in torch_files] == [("aoti-fp16", "model_aoti_fp16.pt2", "aoti")]
    assert resolve_model_file(tmp_path, meta, "torch").variant == "aoti-fp16"
    # auto never picks the device-specific package when an ONNX graph is there
    assert resolve_model_file(tmp_path, meta, "auto", available=("onnxruntime", "torch")).backend == "onnxruntime"


def test_no_package_in_the_bundle_says_how_to_build_one(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"x")
    meta = BundleMeta(height=32, width=32, backbone="t")
    with pytest.raises(CdoError, match="--aoti"):
        resolve_model_file(tmp_path, meta, "torch")
