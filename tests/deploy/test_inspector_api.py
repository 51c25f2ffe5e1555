"""The Python API: Inspector on one image or a batch, real ONNX Runtime session."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from cdo_deploy import Inspector
from cdo_deploy.errors import CdoError
from cdo_deploy.preprocess import to_model_input


@pytest.fixture(scope="module")
def inspector(tiny_bundle):
    with Inspector(tiny_bundle, device="cpu") as insp:
        yield insp


def test_single_image_result(inspector, part, tiny):
    img = part(True, h=96, w=128)
    pred = inspector(img)
    maps, scores = tiny.reference(to_model_input(img, 32, 32)[None])
    assert pred.decision == "NG" and pred.is_ng
    assert pred.score == pytest.approx(float(scores[0]), abs=1e-6)
    np.testing.assert_allclose(pred.anomaly_map, maps[0, 0], atol=1e-6)
    assert pred.anomaly_map.shape == (32, 32) and pred.image_shape == (96, 128)
    assert pred.anomaly_map_full().shape == (96, 128)
    assert pred.image_threshold == tiny.image_threshold
    (r,) = pred.regions  # the white patch: rows 24..56, cols 64..104 of the original
    assert abs(r.x0 - 64) <= 4 and abs(r.x1 - 104) <= 4 and abs(r.y0 - 24) <= 3 and abs(r.y1 - 56) <= 3
    assert r.peak == pytest.approx(1.0)
    t = pred.times
    assert t.pre > 0 and t.infer > 0 and t.post > 0 and t.total >= t.pre + t.post
    assert pred.to_record()["decision"] == "NG"


def test_ok_part_has_no_regions(inspector, part, tiny):
    pred = inspector(part(False))
    assert pred.decision == "OK" and pred.regions == [] and pred.score < tiny.image_threshold


def test_batch_of_mixed_inputs(inspector, part):
    grey16 = np.full((50, 70), 65535, np.uint16)
    bgra = np.zeros((40, 40, 4), np.uint8)
    preds = inspector([part(False), part(True, h=300, w=200, seed=3), grey16, bgra])
    assert [p.decision for p in preds] == ["OK", "NG", "NG", "OK"]
    assert [p.image_shape for p in preds] == [(96, 128), (300, 200), (50, 70), (40, 40)]
    assert all(p.batch == 4 for p in preds)
    stacked = inspector(np.stack([part(False), part(True)]))
    assert [p.decision for p in stacked] == ["OK", "NG"]


def test_batches_larger_than_max_batch_are_split(tiny_bundle, part):
    with Inspector(tiny_bundle, device="cpu", max_batch=2) as insp:
        preds = insp.predict([part(i % 2 == 1, seed=i) for i in range(5)], sources=[f"s{i}" for i in range(5)])
    assert [p.source for p in preds] == ["s0", "s1", "s2", "s3", "s4"]
    assert [p.batch for p in preds] == [2, 2, 2, 2, 1]


def test_threshold_and_sensitivity_override_without_re_export(tiny_bundle, part):
    img = part(False)
    with Inspector(tiny_bundle, device="cpu", threshold=0.1) as insp:
        assert insp(img).decision == "NG"
    with Inspector(tiny_bundle, device="cpu", sensitivity=0.0) as insp:
        assert insp.thresholds.image == pytest.approx(0.95)  # 0.75 + (0.75 - p99 0.55)


def test_errors_are_cdo_errors(tiny_bundle, tmp_path):
    with pytest.raises(CdoError, match="no such bundle"):
        Inspector(tmp_path / "missing")
    with pytest.raises(CdoError, match="unknown backend"):
        Inspector(tiny_bundle, backend="onnxrt")
    with pytest.raises(CdoError, match="variant 'int8'"):
        Inspector(tiny_bundle, backend="onnxruntime", variant="int8")
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(CdoError, match="no CUDAExecutionProvider"):
            Inspector(tiny_bundle, device="cuda:0")
    with pytest.raises(CdoError, match="bad device"):
        Inspector(tiny_bundle, device="gpu")
    broken = tmp_path / "b"
    shutil.copytree(tiny_bundle, broken)
    (broken / "model.onnx").write_bytes(b"not onnx")
    with pytest.raises(CdoError, match="does not match its sha256"):
        Inspector(broken, device="cpu")
    from cdo_deploy.bundle import load_bundle_meta

    load_bundle_meta(broken, verify=False).save(broken)  # re-record the hash: now the backend itself refuses
    with pytest.raises(CdoError, match="cannot load"):
        Inspector(broken, device="cpu")


def test_a_part_passing_only_the_image_threshold_is_ng_with_one_flagged_region(tiny_bundle, part):
    """The defect: pixel threshold above the image threshold gave NG with regions: []."""
    with Inspector(tiny_bundle, device="cpu", pixel_threshold=1.01) as insp:
        pred = insp(part(True, h=96, w=128))
    assert pred.decision == "NG" and pred.score < 1.01
    (r,) = pred.regions
    assert r.kind == "map_max" and r.to_dict()["kind"] == "map_max"
    assert abs(r.x0 - 64) <= 4 and abs(r.x1 - 104) <= 4 and abs(r.y0 - 24) <= 3 and abs(r.y1 - 56) <= 3
