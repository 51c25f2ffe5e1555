"""Accuracy of one runtime x variant, and how its decisions differ from a reference.

Used by ``cdo-bench --data`` (every backend x variant against fp32) and by
``cdo-export --int8`` (the int8 variant against fp32 before it ships). Metrics
come from :mod:`cdo_deploy.metrics`, the code training reports its figures with.

Example:
    >>> import numpy as np
    >>> def infer(x):  # brightness "model": (B, H, W, 3) -> maps (B, 1, H, W), scores (B,)
    ...     m = x.mean(axis=3)[:, None] / 255.0
    ...     return m, m.reshape(len(m), -1).max(axis=1)
    >>> x = np.zeros((4, 8, 8, 3), np.uint8); x[2:, 2:4, 2:4] = 255
    >>> ev = evaluate(infer, x, image_threshold=0.5, labels=np.array([0, 0, 1, 1]))
    >>> ev.decisions.tolist(), ev.metrics["image_auroc"]
    ([False, False, True, True], 1.0)
    >>> agreement(ev, ev)
    (100.0, [])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .metrics import compute_metrics

__all__ = ["DELTA_KEYS", "Evaluation", "agreement", "deltas", "evaluate"]

#: metrics whose change a variant is judged by (AUROC points = 100 x the AUROC difference).
DELTA_KEYS = ("image_auroc", "pixel_auroc", "aupro")

InferFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Outputs and metrics of one runtime x variant on a set of parts.

    Attributes:
        scores: (N,) image scores.
        decisions: (N,) bool, ``score >= image threshold`` (NG).
        metrics: :func:`cdo_deploy.metrics.compute_metrics` (labels given), else empty.
        maps: (N, H, W) float32 anomaly maps when asked for (``keep_maps``), else ``None``.
    """

    scores: np.ndarray
    decisions: np.ndarray
    metrics: dict[str, float | None] = field(default_factory=dict)
    maps: np.ndarray | None = None


def evaluate(infer: InferFn, inputs: np.ndarray, image_threshold: float, labels: np.ndarray | None = None,
             masks: np.ndarray | None = None, batch: int = 8, keep_maps: bool = False) -> Evaluation:
    """Run ``infer`` over ``inputs`` in batches and score the result.

    Args:
        infer: (B, H, W, 3) uint8 -> (maps (B, 1, H, W) or (B, H, W), scores (B,)).
        inputs: (N, H, W, 3) uint8 model inputs.
        image_threshold: NG iff ``score >= image_threshold``.
        labels: (N,) 0 = good, 1 = defective, or ``None`` (no metrics).
        masks: (N, H, W) bool ground truth at model resolution, or ``None`` (no pixel metrics).
        batch: largest batch sent to ``infer``.
        keep_maps: keep the maps in the result (memory: N x H x W floats).
    """
    maps, scores = [], []
    for i in range(0, len(inputs), batch):
        m, s = infer(np.ascontiguousarray(inputs[i:i + batch]))
        m = np.asarray(m, np.float32)
        maps.append(m.reshape(m.shape[0], *m.shape[-2:]))
        scores.append(np.asarray(s, np.float64).reshape(-1))
    all_maps, all_scores = np.concatenate(maps), np.concatenate(scores)
    metrics = {} if labels is None else compute_metrics(labels, all_scores, masks, all_maps if masks is not None
                                                        else None)
    return Evaluation(all_scores, all_scores >= image_threshold, metrics, all_maps if keep_maps else None)


def agreement(ev: Evaluation, reference: Evaluation) -> tuple[float, list[int]]:
    """Percentage of parts with the reference's decision, and the indices of those that flip."""
    flipped = np.flatnonzero(ev.decisions != reference.decisions)
    return round(100.0 * (1.0 - len(flipped) / max(1, len(ev.decisions))), 3), flipped.tolist()


def deltas(ev: Evaluation, reference: Evaluation, keys: tuple[str, ...] = DELTA_KEYS) -> dict[str, float | None]:
    """``ev - reference`` per metric, in points (x 100); ``None`` where either is undefined."""
    out: dict[str, float | None] = {}
    for k in keys:
        a, b = ev.metrics.get(k), reference.metrics.get(k)
        out[k] = None if a is None or b is None else round(100.0 * (a - b), 4)
    return out
