"""AOTInductor packages (``cdo_train.export.aoti``) and the torch backend running them.

The compile takes about a minute on CPU (gcc), so the end-to-end test is
slow-marked; the wrapper's equivalence with the exported ONNX graph's module
and the option checks run always.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from cdo_deploy.bundle import BundleMeta, load_bundle_meta
from cdo_deploy.errors import CdoError
from cdo_train.export.aoti import AotiGraph, aoti_file, aoti_variant, export_aoti
from cdo_train.export.graph import DeployGraph
from cdo_train.model.cdo_model import CDOModel, ModelConfig


def _model(seed: int = 0) -> CDOModel:
    torch.manual_seed(seed)
    return CDOModel(ModelConfig("resnet18", image_size=64, teacher_weights="random")).eval()


def test_aoti_wrapper_computes_what_the_onnx_wrapper_computes():
    images = torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        ref_map, ref_score = DeployGraph(_model()).eval()(images)
        for fused in (True, False):
            amap, score = AotiGraph(_model(), torch.float32, fused_head=fused).eval()(images)
            torch.testing.assert_close(amap, ref_map, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(score, ref_score, atol=1e-5, rtol=1e-5)


def test_bad_options_fail_before_compiling(tmp_path):
    with pytest.raises(CdoError, match="model.json"):
        export_aoti(_model(), tmp_path)  # not a bundle
    BundleMeta(height=64, width=64, backbone="resnet18").save(tmp_path)
    with pytest.raises(CdoError, match="precision"):
        export_aoti(_model(), tmp_path, precision="int8")
    with pytest.raises(CdoError, match="max-batch"):
        export_aoti(_model(), tmp_path, max_batch=0)
    BundleMeta(height=32, width=32, backbone="resnet18").save(tmp_path)
    with pytest.raises(CdoError, match="64x64"):
        export_aoti(_model(), tmp_path)
    if not torch.cuda.is_available():
        with pytest.raises(CdoError, match="no CUDA"):
            export_aoti(_model(), tmp_path, device="cuda")
    assert aoti_variant("fp16") == "aoti-fp16" and aoti_file("fp16") == "model_aoti_fp16.pt2"


@pytest.mark.slow
def test_aoti_package_in_the_bundle_matches_onnxruntime(exported, tmp_path):
    from cdo_deploy import Inspector
    from cdo_train.training.saved_model import load_model

    bundle = tmp_path / "bundle"
    shutil.copytree(exported.bundle, bundle)
    res = export_aoti(load_model(exported.run), bundle, device="cpu", max_batch=4)
    assert res.path == bundle / "model_aoti_fp32.pt2" and res.path.is_file() and res.map_max_abs < 1e-4
    meta = load_bundle_meta(bundle)
    assert meta.variants["aoti-fp32"] == "model_aoti_fp32.pt2" and meta.variants["fp32"] == "model.onnx"
    images = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    with Inspector(bundle, backend="torch", device="cpu", max_batch=8) as t, \
            Inspector(bundle, backend="onnxruntime", device="cpu", variant="fp32") as o:
        assert t.max_batch == 4  # capped to the package's dynamic batch range
        assert t.model_file.variant == "aoti-fp32" and "torch" in t.backend.device_label
        tp, op = t.predict(list(images)), o.predict(list(images))
    for a, b in zip(tp, op):
        np.testing.assert_allclose(a.anomaly_map, b.anomaly_map, atol=1e-4)
        assert a.score == pytest.approx(b.score, abs=1e-4) and a.decision == b.decision
