"""Parity of the exported graphs (ONNX Runtime, CPU) with the PyTorch model training evaluates.

Tolerances stated here and in docs/guides/export.md:
    fp32: max |map| and |score| error <= FP32_TOL (1e-4) x the map's scale vs PyTorch; AUROC equal within 1e-6;
    fp16: <= 2 % of the map range vs fp32; AUROC within 0.5 points;
    int8: maps correlate with fp32 (>= 0.9) here; image and pixel AUROC within 0.5 points of fp32
          on the real demo data (test_demo_accuracy.py, slow).
"""

from __future__ import annotations

import numpy as np
import pytest

from cdo_deploy.bundle import load_bundle_meta
from cdo_train.export.verify import fp32_tolerance, onnx_session, run_onnx, torch_reference
from cdo_train.training.metrics import image_auroc, pixel_auroc

FP16_REL_TOL = 0.02


@pytest.fixture(scope="module")
def model(trained_run):
    from cdo_train.training.saved_model import load_model

    return load_model(trained_run)


@pytest.fixture(scope="module")
def predictions(exported, model, test_set):
    """PyTorch and every ONNX variant on the real test images: {name: (maps, scores)}."""
    meta = load_bundle_meta(exported.bundle)
    out = {"pytorch": torch_reference(model, test_set.images)}
    for variant, file in meta.variants.items():
        out[variant] = run_onnx(onnx_session(exported.bundle / file), test_set.images, batch_size=3)
    return out


def _max_err(a, b) -> tuple[float, float]:
    return float(np.abs(a[0] - b[0]).max()), float(np.abs(a[1] - b[1]).max())


def test_fp32_graph_matches_pytorch_on_random_images(exported, model):
    images = np.random.default_rng(7).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    ref = torch_reference(model, images)
    got = run_onnx(onnx_session(exported.bundle / "model.onnx"), images, batch_size=5)
    assert max(_max_err(ref, got)) <= fp32_tolerance(ref[0])


def test_fp32_graph_matches_pytorch_on_real_images_with_the_same_metrics(predictions, test_set):
    ref, got = predictions["pytorch"], predictions["fp32"]
    map_err, score_err = _max_err(ref, got)
    assert map_err <= fp32_tolerance(ref[0]) and score_err <= fp32_tolerance(ref[0])
    assert image_auroc(test_set.labels, got[1]) == pytest.approx(image_auroc(test_set.labels, ref[1]), abs=1e-6)
    assert pixel_auroc(test_set.masks, got[0]) == pytest.approx(pixel_auroc(test_set.masks, ref[0]), abs=1e-6)


def test_ok_ng_decisions_are_identical(exported, predictions):
    """Identical except where a score lies within the fp32 tolerance of the threshold.

    The F1-optimal threshold of ``calibration.json`` is one test image's own
    score, so that image sits exactly on the threshold and any rounding can
    flip it; every other image must keep its decision.
    """
    thr = load_bundle_meta(exported.bundle).image_threshold
    ref, got = predictions["pytorch"][1], predictions["fp32"][1]
    differ = (ref >= thr) != (got >= thr)
    on_threshold = np.abs(ref - thr) <= fp32_tolerance(predictions["pytorch"][0])
    assert not (differ & ~on_threshold).any(), (ref, got, thr)
    assert on_threshold.sum() <= 1


def test_dynamic_batch_gives_the_same_result_for_batch_1_and_several(exported, test_set):
    sess = onnx_session(exported.bundle / "model.onnx")
    images = test_set.images[:6]
    one = run_onnx(sess, images, batch_size=1)
    for batch in (2, 4, 6):
        got = run_onnx(sess, images, batch_size=batch)
        assert max(_max_err(one, got)) <= 1e-5 * max(1.0, float(np.abs(one[0]).max())), batch  # float32, relative
    amap, score = sess.run(None, {"image": images})
    assert amap.shape == (6, 1, 64, 64) and amap.dtype == np.float32 and score.shape == (6,)


def test_fp16_variant_within_stated_tolerance(predictions, test_set):
    fp32, fp16 = predictions["fp32"], predictions["fp16"]
    span = float(fp32[0].max() - fp32[0].min())
    map_err, score_err = _max_err(fp32, fp16)
    assert map_err <= FP16_REL_TOL * span and score_err <= FP16_REL_TOL * span, (map_err, score_err, span)
    assert abs(pixel_auroc(test_set.masks, fp16[0]) - pixel_auroc(test_set.masks, fp32[0])) <= 0.005


def test_int8_variant_runs_on_cpu_and_follows_fp32(predictions):
    """The tiny random-teacher model is too poor for an AUROC criterion (see test_demo_accuracy.py)."""
    fp32, int8 = predictions["fp32"], predictions["int8"]
    assert np.isfinite(int8[0]).all() and int8[0].shape == fp32[0].shape
    assert np.corrcoef(fp32[0].ravel(), int8[0].ravel())[0, 1] >= 0.9


def test_the_runtime_inspector_loads_every_variant_and_scores_like_onnxruntime(exported, predictions, test_set):
    from cdo_deploy import Inspector

    for variant in ("fp32", "fp16", "int8"):
        with Inspector(exported.bundle, backend="onnxruntime", device="cpu", variant=variant,
                       color_order="RGB") as insp:
            preds = insp.predict(list(test_set.images[:3]))
        scores = np.array([p.score for p in preds])
        np.testing.assert_allclose(scores, predictions[variant][1][:3], atol=1e-5, err_msg=variant)
