"""Anomaly detection metrics as reported in papers (numpy and OpenCV; no torch, no scipy).

The project's one metric code: training's evaluation (``cdo_train.training.metrics`` re-exports
this module), the exporter's int8 check and ``cdo-bench --data`` all call it, so the
figures a line PC measures are the figures training reported.

* ``image_auroc`` / ``pixel_auroc``: ROC AUC of image scores / of all pixels.
* ``pixel_ap``: average precision of all pixels (step-wise, as scikit-learn).
* ``f1_max``: the best F1 over all thresholds and that threshold
  (a sample is predicted defective when ``score >= threshold``).
* ``aupro``: area under the per-region-overlap curve up to FPR 0.3, divided by 0.3
  (MVTec AD definition, Bergmann et al. 2021), computed exactly.

A metric that is undefined for the data (one class only, no defect pixel, no
normal pixel) returns ``None``, never NaN, so results can be written to JSON.

Example:
    >>> image_auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    >>> f1, threshold = f1_max([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> f1, round(threshold, 6)
    (0.8, 0.225)
    >>> masks = np.zeros((1, 4, 4), bool); masks[0, :2, :2] = True
    >>> aupro(masks, masks.astype(float))  # a perfect map
    1.0
    >>> image_auroc([1, 1], [0.2, 0.3]) is None
    True
"""

from __future__ import annotations

import logging
from typing import NamedTuple, Optional

import cv2
import numpy as np

__all__ = [
    "METRIC_KEYS",
    "aupro",
    "compute_metrics",
    "f1_max",
    "image_auroc",
    "pixel_ap",
    "pixel_auroc",
    "pro_curve",
]

log = logging.getLogger(__name__)

METRIC_KEYS = (
    "image_auroc",
    "pixel_auroc",
    "pixel_ap",
    "image_f1_max",
    "image_f1_threshold",
    "pixel_f1_max",
    "pixel_f1_threshold",
    "aupro",
)
"""Keys of the dict returned by ``compute_metrics``, in display order."""


class _Ranking(NamedTuple):
    """All scores sorted once, descending; shared by every curve of one data set."""

    order: np.ndarray  # (M,) indices that sort the flat scores in descending order
    last: np.ndarray  # (T,) sorted positions of the last element of each distinct score
    thresholds: np.ndarray  # (T,) the distinct scores, descending


def _rank(scores: np.ndarray) -> _Ranking:
    order = np.argsort(scores)[::-1]
    ranked = scores[order]
    last = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))
    return _Ranking(order, last, ranked[last])


def _counts(y: np.ndarray, ranking: _Ranking) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives when predicting ``score >= t`` for each distinct t (descending)."""
    tps = np.cumsum(y[ranking.order], dtype=np.int64)[ranking.last]
    fps = ranking.last + 1 - tps
    return tps, fps


def _auroc_from(tps: np.ndarray, fps: np.ndarray) -> float:
    tpr = np.concatenate(([0.0], tps / tps[-1]))
    fpr = np.concatenate(([0.0], fps / fps[-1]))
    return float(np.sum(0.5 * (tpr[1:] + tpr[:-1]) * np.diff(fpr)))


def _ap_from(tps: np.ndarray, fps: np.ndarray) -> float:
    precision = tps / (tps + fps)
    recall = np.concatenate(([0.0], tps / tps[-1]))
    return float(np.sum(np.diff(recall) * precision))


def _f1_from(tps: np.ndarray, fps: np.ndarray, thresholds: np.ndarray) -> tuple[float, float]:
    n_pos = tps[-1]
    f1 = 2.0 * tps / (tps + fps + n_pos)  # = 2PR / (P + R)
    best = len(f1) - 1 - int(np.argmax(f1[::-1]))  # the lowest threshold among ties
    # Half-way to the next lower distinct score: the same decisions and F1, but no sample sits
    # exactly on the threshold, so a 1e-6 difference between backends cannot flip a decision.
    t = thresholds[best] if best + 1 == len(thresholds) else 0.5 * (thresholds[best] + thresholds[best + 1])
    return float(f1[best]), float(t)


def _binary(labels, scores, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Flatten labels to bool and scores to float64, checking sizes and finiteness."""
    y = np.asarray(labels).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"{what}: {y.size} labels but {s.size} scores")
    if not np.isfinite(s).all():
        raise ValueError(f"{what}: scores contain NaN or infinity")
    return y.astype(bool), s


def _two_classes(y: np.ndarray) -> bool:
    return 0 < int(y.sum()) < y.size


def image_auroc(labels, scores) -> Optional[float]:
    """Image-level ROC AUC (equal to scikit-learn's ``roc_auc_score``).

    Args:
        labels: ``(N,)`` 0 = good, 1 = defective.
        scores: ``(N,)`` anomaly scores, higher = more anomalous.

    Returns:
        AUROC in ``[0, 1]``, or ``None`` when only one class is present.
    """
    y, s = _binary(labels, scores, "image_auroc")
    return _auroc_from(*_counts(y, _rank(s))) if _two_classes(y) else None


def pixel_auroc(masks, maps) -> Optional[float]:
    """Pixel-level ROC AUC over all pixels of all images.

    Args:
        masks: ``(N, H, W)`` bool ground truth, ``True`` = defect.
        maps: ``(N, H, W)`` anomaly maps, higher = more anomalous.

    Returns:
        AUROC, or ``None`` when there is no defect pixel or no normal pixel.
    """
    y, s = _binary(masks, maps, "pixel_auroc")
    return _auroc_from(*_counts(y, _rank(s))) if _two_classes(y) else None


def pixel_ap(masks, maps) -> Optional[float]:
    """Pixel-level average precision, ``sum_k (R_k - R_k-1) P_k`` (scikit-learn's definition).

    Args:
        masks: ``(N, H, W)`` bool ground truth.
        maps: ``(N, H, W)`` anomaly maps.

    Returns:
        AP, or ``None`` when there is no defect pixel or no normal pixel.
    """
    y, s = _binary(masks, maps, "pixel_ap")
    return _ap_from(*_counts(y, _rank(s))) if _two_classes(y) else None


def f1_max(labels, scores) -> tuple[Optional[float], Optional[float]]:
    """The best F1 score over all thresholds, and the threshold reaching it.

    Works for images (``(N,)``) and pixels (any shape, flattened).

    Args:
        labels: 0/1 or bool ground truth.
        scores: anomaly scores of the same size.

    Returns:
        ``(f1, threshold)``: predicting ``score >= threshold`` as defective gives
        F1 = ``f1``. The lowest such threshold on ties. ``(None, None)`` when no
        sample is positive or none is negative.
    """
    y, s = _binary(labels, scores, "f1_max")
    if not _two_classes(y):
        return None, None
    ranking = _rank(s)
    return _f1_from(*_counts(y, ranking), ranking.thresholds)


def _check_maps(masks, maps) -> tuple[np.ndarray, np.ndarray]:
    masks = np.asarray(masks).astype(bool)
    maps = np.asarray(maps, dtype=np.float64)
    if masks.ndim == 2:
        masks, maps = masks[None], maps[None]
    if masks.ndim != 3 or masks.shape != maps.shape:
        raise ValueError(f"masks {masks.shape} and maps {maps.shape} must both be (N, H, W)")
    if not np.isfinite(maps).all():
        raise ValueError("anomaly maps contain NaN or infinity")
    return masks, maps


def _quantize(maps: np.ndarray, num_thresholds: int) -> np.ndarray:
    """Replace each value by the index of the largest of ``num_thresholds`` evenly spaced thresholds <= it."""
    lo, hi = float(maps.min()), float(maps.max())
    if hi == lo:
        return np.zeros_like(maps)
    return np.floor((maps - lo) / (hi - lo) * (num_thresholds - 1))


def _pro_from(masks: np.ndarray, ranking: _Ranking) -> Optional[tuple[np.ndarray, np.ndarray]]:
    labels = np.zeros(masks.shape, dtype=np.int64)
    n_regions = 0
    for i, mask in enumerate(masks):
        n, lab = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)  # n counts the background
        labels[i] = np.where(lab > 0, lab + n_regions, 0)
        n_regions += n - 1
    normal = ~masks.ravel()
    n_normal = int(normal.sum())
    if n_regions == 0 or n_normal == 0:
        return None
    labels = labels.ravel()
    region_size = np.bincount(labels, minlength=n_regions + 1).astype(np.float64)
    region_size[0] = np.inf  # normal pixels add nothing to PRO
    pro_step = 1.0 / region_size[labels]
    fpr = np.cumsum(normal[ranking.order], dtype=np.int64)[ranking.last] / n_normal
    pro = np.cumsum(pro_step[ranking.order])[ranking.last] / n_regions
    return np.concatenate(([0.0], fpr)), np.concatenate(([0.0], np.clip(pro, 0.0, 1.0)))


def pro_curve(masks, maps, num_thresholds: Optional[int] = None) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """The per-region-overlap (PRO) curve against the false positive rate.

    1. Label the ground-truth regions of every image (8-connectivity).
    2. For a threshold t, PRO(t) = mean over *all* regions of all images of the
       fraction of the region's pixels with ``map >= t``; FPR(t) = fraction of all
       normal pixels of all images with ``map >= t``.
    3. Sorting all pixels once by score (descending) gives both as cumulative
       sums; one point is kept per distinct score (the exact curve), plus (0, 0).

    Args:
        masks: ``(N, H, W)`` bool ground truth (``(H, W)`` is taken as N = 1).
        maps: ``(N, H, W)`` anomaly maps.
        num_thresholds: ``None`` for the exact curve over all distinct scores, or
            ``k >= 2`` to evaluate only at ``k`` thresholds evenly spaced from the
            smallest to the largest score (faster to plot, slightly coarser).

    Returns:
        ``(fpr, pro)``, float64 arrays of equal length, both non-decreasing, from
        ``(0, 0)`` to ``(1, 1)``; ``None`` when there is no defect region or no normal pixel.
    """
    masks, maps = _check_maps(masks, maps)
    if num_thresholds is not None:
        if int(num_thresholds) < 2:
            raise ValueError(f"num_thresholds must be >= 2 or None, got {num_thresholds}")
        maps = _quantize(maps, int(num_thresholds))
    return _pro_from(masks, _rank(maps.ravel()))


def _area_up_to(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """Trapezoid area under ``y(x)`` from ``x[0]`` to ``x_max``, interpolating ``y`` at ``x_max``.

    ``x`` is non-decreasing with ``x[0] <= x_max <= x[-1]``.
    """
    end = int(np.searchsorted(x, x_max, side="right"))  # x[:end] <= x_max < x[end:]
    xs, ys = x[:end], y[:end]
    area = float(np.sum(0.5 * (ys[1:] + ys[:-1]) * np.diff(xs)))
    if xs[-1] < x_max and end < len(x):
        y_at = ys[-1] + (y[end] - ys[-1]) * (x_max - xs[-1]) / (x[end] - xs[-1])
        area += 0.5 * (ys[-1] + y_at) * (x_max - xs[-1])
    return area


def aupro(masks, maps, fpr_limit: float = 0.3, num_thresholds: Optional[int] = None) -> Optional[float]:
    """Normalised area under the PRO curve up to ``fpr_limit`` (MVTec AD's AUPRO).

    1. Build the PRO curve (``pro_curve``; exact by default).
    2. Keep the points with FPR <= ``fpr_limit`` and add one point at exactly
       ``fpr_limit``, linearly interpolated between its neighbours.
    3. Integrate with the trapezoid rule and divide by ``fpr_limit`` (not by the
       largest FPR reached), so a perfect detector scores 1.0 and a random one
       about ``fpr_limit / 2``.

    Args:
        masks: ``(N, H, W)`` bool ground truth.
        maps: ``(N, H, W)`` anomaly maps.
        fpr_limit: integration limit, ``0 < fpr_limit <= 1`` (0.3 in papers).
        num_thresholds: ``None`` = exact; else evaluate at that many evenly spaced thresholds.

    Returns:
        AUPRO in ``[0, 1]``, or ``None`` when there is no defect region or no normal pixel.
    """
    if not 0.0 < fpr_limit <= 1.0:
        raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
    return _aupro_from(pro_curve(masks, maps, num_thresholds), fpr_limit)


def _aupro_from(curve: Optional[tuple[np.ndarray, np.ndarray]], fpr_limit: float = 0.3) -> Optional[float]:
    if curve is None:
        return None
    fpr, pro = curve
    # Rounding to 1e-12 removes summation noise (a perfect map gives exactly 1.0).
    return round(float(np.clip(_area_up_to(fpr, pro, fpr_limit) / fpr_limit, 0.0, 1.0)), 12)


def compute_metrics(labels, scores, masks, maps) -> dict[str, Optional[float]]:
    """All image and pixel metrics for one class.

    Args:
        labels: ``(N,)`` 0 = good, 1 = defective.
        scores: ``(N,)`` image anomaly scores.
        masks: ``(N, H, W)`` bool ground truth (all ``False`` for good images), or
            ``None`` when there are no masks (pixel metrics are then ``None``).
        maps: ``(N, H, W)`` anomaly maps at the mask resolution, or ``None``.

    Returns:
        A dict with the keys of ``METRIC_KEYS``: Python floats, or ``None`` where
        undefined (no defect image, no defect pixel, no masks).

    Raises:
        ValueError: inconsistent shapes or non-finite scores.
    """
    labels = np.asarray(labels).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"{labels.size} labels but {scores.size} scores")
    image_f1, image_threshold = f1_max(labels, scores)
    result: dict[str, Optional[float]] = dict.fromkeys(METRIC_KEYS)
    result.update(image_auroc=image_auroc(labels, scores), image_f1_max=image_f1,
                  image_f1_threshold=image_threshold)
    if masks is not None and maps is not None:
        masks, maps = _check_maps(masks, maps)
        if len(masks) != len(labels):
            raise ValueError(f"{len(labels)} labels but {len(masks)} masks")
        result.update(_pixel_metrics(masks, maps))
    undefined = [k for k, v in result.items() if v is None]
    if undefined:
        log.debug("metrics undefined for this data: %s", ", ".join(undefined))
    return result


def _pixel_metrics(masks: np.ndarray, maps: np.ndarray) -> dict[str, Optional[float]]:
    """Pixel metrics from one shared sort of all pixels (the slow step for millions of pixels)."""
    y = masks.ravel()
    if not _two_classes(y):
        return {}
    ranking = _rank(maps.ravel())
    tps, fps = _counts(y, ranking)
    f1, threshold = _f1_from(tps, fps, ranking.thresholds)
    return {
        "pixel_auroc": _auroc_from(tps, fps),
        "pixel_ap": _ap_from(tps, fps),
        "pixel_f1_max": f1,
        "pixel_f1_threshold": threshold,
        "aupro": _aupro_from(_pro_from(masks, ranking)),
    }
