"""Tests for cdo_deploy.metrics (re-exported as cdo_train.training.metrics): hand-computed cases, scikit-learn
and an independent AUPRO reference (scipy labelling, a loop over thresholds)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import average_precision_score, f1_score, precision_recall_curve, roc_auc_score

from cdo_deploy.metrics import (
    METRIC_KEYS,
    aupro,
    compute_metrics,
    f1_max,
    image_auroc,
    pixel_ap,
    pixel_auroc,
    pro_curve,
)

_trapezoid = getattr(np, "trapezoid", None) or getattr(np, "trapz")


def reference_aupro(masks: np.ndarray, maps: np.ndarray, limit: float = 0.3) -> float:
    """Straightforward AUPRO: loop over every distinct threshold, per-region overlap, trapezoid to ``limit``."""
    regions = []
    for i, mask in enumerate(masks):
        lab, n = ndimage.label(mask, structure=np.ones((3, 3)))
        regions += [(i, lab == k) for k in range(1, n + 1)]
    normal = ~masks
    fprs, pros = [0.0], [0.0]
    for t in np.unique(maps)[::-1]:
        pred = maps >= t
        fprs.append((pred & normal).sum() / normal.sum())
        pros.append(np.mean([(pred[i] & r).sum() / r.sum() for i, r in regions]))
    fprs, pros = np.array(fprs), np.array(pros)
    keep = fprs <= limit
    x, y = fprs[keep], pros[keep]
    if x[-1] < limit:
        j = int(np.argmax(fprs > limit))
        y_at = y[-1] + (pros[j] - y[-1]) * (limit - x[-1]) / (fprs[j] - x[-1])
        x, y = np.append(x, limit), np.append(y, y_at)
    return float(_trapezoid(y, x) / limit)


def random_case(seed: int, n: int = 4, size: int = 24, levels: int = 150):
    """Random blob masks (several regions, one image without any) and noisy, tied maps."""
    rng = np.random.default_rng(seed)
    fields = ndimage.gaussian_filter(rng.standard_normal((n, size, size)), (0, 2, 2))
    masks = fields > 1.2 * fields.std()
    masks[0] = False
    signal = ndimage.gaussian_filter(masks.astype(float), (0, 1.5, 1.5))
    maps = 0.6 * signal + 0.4 * rng.random(masks.shape)
    return masks, np.round(maps * levels) / levels  # quantised: many ties


# ----------------------------------------------------------------------------- hand-computed


def test_image_auroc_and_f1_by_hand():
    labels, scores = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    assert image_auroc(labels, scores) == pytest.approx(0.75)  # 3 of 4 (good, defect) pairs ordered
    f1, threshold = f1_max(labels, scores)
    # P = 2/3, R = 1 at score >= 0.35; reported half-way to the next lower score (0.1)
    assert f1 == pytest.approx(0.8) and threshold == pytest.approx(0.225)
    assert image_auroc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)  # a tie counts half


def test_pixel_ap_and_auroc_by_hand():
    masks = np.array([[[1, 0], [1, 0]]], bool)
    maps = np.array([[[0.9, 0.8], [0.7, 0.1]]])
    # thresholds 0.9 / 0.8 / 0.7 / 0.1: (P, R) = (1, .5) (.5, .5) (2/3, 1) (.5, 1)
    assert pixel_ap(masks, maps) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert pixel_auroc(masks, maps) == pytest.approx(0.75)
    assert f1_max(masks, maps) == (pytest.approx(0.8), pytest.approx(0.4))  # between 0.7 and 0.1


def test_aupro_divides_by_the_limit_not_by_the_last_fpr():
    # One region of 2 pixels (scores 1.0 and 0.5); 10 normal pixels: 2 at 0.8, 8 at 0.
    # Curve: (0,0) (0,.5) (.2,.5) (.2,1) (1,1). Area to 0.3 = .2*.5 + .1*1 = 0.2.
    masks = np.zeros((1, 3, 4), bool)
    masks[0, 0, :2] = True
    maps = np.zeros((1, 3, 4))
    maps[0, 0, :2] = [1.0, 0.5]
    maps[0, 1, :2] = 0.8
    fpr, pro = pro_curve(masks, maps)
    np.testing.assert_allclose(fpr, [0, 0, 0.2, 0.2, 1])
    np.testing.assert_allclose(pro, [0, 0.5, 0.5, 1, 1])
    # Dividing by the last kept FPR (0.2) would give 0.5; dropping the point at 0.3 would give 1/3.
    assert aupro(masks, maps) == pytest.approx(0.2 / 0.3)
    assert aupro(masks, maps, fpr_limit=0.2) == pytest.approx(0.5)
    assert aupro(masks, maps, fpr_limit=1.0) == pytest.approx((0.1 + 0.8) / 1.0)


def test_aupro_perfect_random_and_worst():
    masks, maps = random_case(0)
    assert aupro(masks, masks.astype(float)) == 1.0
    assert aupro(masks, np.ones(masks.shape)) == pytest.approx(0.15)  # constant map: PRO = FPR, area .045 / .3
    assert aupro(masks, (~masks).astype(float)) == 0.0


def test_aupro_uses_8_connectivity_and_all_regions_equally():
    masks = np.zeros((1, 6, 6), bool)
    masks[0, 0, 0] = masks[0, 1, 1] = True  # diagonal neighbours: one region with 8-connectivity
    masks[0, 4, 4] = True  # a second region
    maps = np.zeros((1, 6, 6))
    maps[0, 4, 4] = 1.0
    fpr, pro = pro_curve(masks, maps)
    assert pro[1] == pytest.approx(0.5)  # 4-connectivity would give 1/3
    assert fpr[1] == 0.0


# ----------------------------------------------------------------------------- references


@pytest.mark.parametrize("seed", range(5))
def test_aupro_matches_independent_reference(seed):
    masks, maps = random_case(seed)
    ours = aupro(masks, maps)
    assert ours == pytest.approx(reference_aupro(masks, maps), abs=1e-3)
    assert ours == pytest.approx(reference_aupro(masks, maps), abs=1e-9)  # in fact exact
    assert aupro(masks, maps, fpr_limit=0.05) == pytest.approx(reference_aupro(masks, maps, 0.05), abs=1e-9)


def test_aupro_with_fixed_thresholds_is_close_to_exact():
    masks, maps = random_case(7, levels=10_000)
    exact = aupro(masks, maps)
    assert aupro(masks, maps, num_thresholds=2000) == pytest.approx(exact, abs=5e-3)
    fpr, _ = pro_curve(masks, maps, num_thresholds=50)
    assert len(fpr) <= 51


@pytest.mark.parametrize("seed", range(3))
def test_pixel_metrics_match_sklearn(seed):
    masks, maps = random_case(seed)
    y, s = masks.ravel(), maps.ravel()
    assert pixel_auroc(masks, maps) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert pixel_ap(masks, maps) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    precision, recall, _ = precision_recall_curve(y, s)
    best = np.max(2 * precision * recall / np.maximum(precision + recall, 1e-300))
    f1, threshold = f1_max(masks, maps)
    assert f1 == pytest.approx(best, abs=1e-12)
    assert f1 == pytest.approx(f1_score(y, s >= threshold), abs=1e-12)


# ----------------------------------------------------------------------------- edge cases


def test_undefined_metrics_are_none():
    assert image_auroc([1, 1], [0.1, 0.2]) is None
    assert f1_max([0, 0], [0.1, 0.2]) == (None, None)
    empty = np.zeros((2, 4, 4), bool)
    maps = np.random.default_rng(0).random((2, 4, 4))
    assert pixel_auroc(empty, maps) is None and pixel_ap(empty, maps) is None
    assert aupro(empty, maps) is None and pro_curve(empty, maps) is None
    assert aupro(~empty, maps) is None  # no normal pixel: FPR undefined


def test_compute_metrics_keys_and_json():
    masks, maps = random_case(3)
    labels = masks.any(axis=(1, 2)).astype(int)
    scores = maps.max(axis=(1, 2))
    result = compute_metrics(labels, scores, masks, maps)
    assert tuple(result) == METRIC_KEYS and all(isinstance(v, float) for v in result.values())
    assert result["aupro"] == pytest.approx(aupro(masks, maps))
    assert result["pixel_auroc"] == pytest.approx(pixel_auroc(masks, maps))
    assert result["pixel_f1_max"] == pytest.approx(f1_max(masks, maps)[0])
    assert result["image_auroc"] == pytest.approx(roc_auc_score(labels, scores))
    no_masks = compute_metrics(labels, scores, None, maps)
    assert no_masks["image_auroc"] is not None and no_masks["aupro"] is None and no_masks["pixel_ap"] is None
    good_only = compute_metrics([0, 0], [0.1, 0.2], np.zeros((2, 4, 4), bool), np.zeros((2, 4, 4)))
    assert all(v is None for v in good_only.values())
    json.dumps(good_only, allow_nan=False)
    json.dumps(result, allow_nan=False)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="labels"):
        compute_metrics([0, 1], [0.1], None, None)
    with pytest.raises(ValueError, match="NaN"):
        aupro(np.ones((1, 2, 2), bool), np.full((1, 2, 2), np.nan))
    with pytest.raises(ValueError, match="fpr_limit"):
        aupro(np.ones((1, 2, 2), bool), np.zeros((1, 2, 2)), fpr_limit=0)
    with pytest.raises(ValueError, match="must both be"):
        aupro(np.ones((1, 2, 2), bool), np.zeros((1, 2, 3)))
