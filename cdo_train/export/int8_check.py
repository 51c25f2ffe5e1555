"""The int8 variant, checked against fp32 before it ships (``cdo-export --int8``).

Both graphs run in ONNX Runtime on CPU over the run's held-out good images (the
ones the thresholds were calibrated on; never used to calibrate int8) and, where
the run has one, its labelled test set. Metrics and decision comparisons are
:mod:`cdo_deploy.accuracy`, the code ``cdo-bench --data`` uses.

int8 noise in the teacher's and the student's features adds to their
discrepancy everywhere: on the demo run the whole int8 map sits about 0.5 above
fp32's while the ranking (AUROC) is unchanged. So by default (``own_thresholds``)
the int8 variant gets its own thresholds, by training's rule
(:func:`cdo_train.training.evaluation.threshold_rule`) on its own outputs over the same
images, and its decisions at those thresholds are compared with fp32's at the
bundle's.

Rule, with the tolerance ``t`` (``--int8-tolerance``, default 0.5) -- the check
fails when

1. image AUROC, pixel AUROC or AUPRO on the test set drops by more than ``t``
   points (1 point = 0.01), or
2. any held-out good image changes its OK/NG decision at the bundle's image
   threshold, or
3. more than ``t`` % of the test parts change their decision, or
4. there was nothing to check on (no held-out and no test images reachable).

A failed check refuses the export (nothing is written) unless ``--accept-int8``;
then it is logged as a warning and recorded. Either way ``model.json`` gets the
measured figures under ``int8_check`` (:meth:`Int8Check.to_dict`).

Example:
    >>> c = Int8Check(passed=False, reasons=("2 held-out good part(s) flip",), tolerance=0.5)
    >>> c.summary()
    'int8 check FAILED (tolerance 0.5): 2 held-out good part(s) flip'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

import numpy as np

from cdo_deploy.accuracy import DELTA_KEYS, agreement, deltas, evaluate

from .formats import DEFAULT_TOLERANCE

__all__ = ["DEFAULT_TOLERANCE", "Int8Check", "check_int8"]


InferFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Int8Check:
    """Outcome of the int8 check (``model.json`` ``int8_check``).

    Attributes:
        passed: whether the rule (module docstring) holds.
        reasons: why it failed (empty when passed).
        tolerance: ``t``, in AUROC points and % of test parts.
        settings: how int8 was calibrated (method, kept convolutions, images).
        holdout: held-out good images: ``n``, ``flips``, ``flipped`` names, ``score_max_abs_delta``.
        test: test set: ``n``, ``flips``, ``flipped``, ``fp32`` / ``int8`` metrics, ``deltas`` (points).
        accepted: written although it failed (``--accept-int8``).
        thresholds: the int8 variant's own thresholds (``image``, ``pixel``, ``source``,
            ``normal_stats``), or empty when it uses the bundle's.
    """

    passed: bool
    reasons: tuple[str, ...] = ()
    tolerance: float = DEFAULT_TOLERANCE
    settings: dict[str, Any] = field(default_factory=dict)
    holdout: dict[str, Any] = field(default_factory=dict)
    test: dict[str, Any] = field(default_factory=dict)
    accepted: bool = False
    thresholds: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """One line: passed, or failed and why."""
        head = f"int8 check {'passed' if self.passed else 'FAILED'} (tolerance {self.tolerance:g})"
        if not self.passed:
            return f"{head}: {'; '.join(self.reasons)}"
        d = self.test.get("deltas") or {}
        parts = [f"{k} {v:+.2f} pt" for k, v in d.items() if v is not None]
        if self.holdout:
            parts.append(f"{self.holdout['flips']}/{self.holdout['n']} held-out good flip")
        if self.test:
            parts.append(f"{self.test['flips']}/{self.test['n']} test parts flip")
        return f"{head}: {', '.join(parts)}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["reasons"] = list(self.reasons)
        return d


def _metrics(m: dict[str, Any]) -> dict[str, float | None]:
    return {k: None if m.get(k) is None else round(float(m[k]), 6) for k in DELTA_KEYS}


def check_int8(fp32: InferFn, int8: InferFn, image_threshold: float | None,
               holdout: tuple[np.ndarray, list[str]] | None,
               test: tuple[np.ndarray, np.ndarray, np.ndarray, list[str]] | None,
               tolerance: float = DEFAULT_TOLERANCE, settings: dict[str, Any] | None = None,
               batch: int = 8, own_thresholds: bool = True) -> Int8Check:
    """Compare the int8 graph with fp32 and apply the rule of the module docstring.

    Args:
        fp32, int8: (B, H, W, 3) uint8 -> (maps, scores) of each graph.
        image_threshold: the bundle's image threshold (``None``: decisions are not compared).
        holdout: held-out good images (N, H, W, 3) uint8 and their names, or ``None``.
        test: test images, masks (N, H, W) bool, labels (N,) and names, or ``None``.
        tolerance: ``t`` of the rule.
        settings: recorded as is (calibration method, ...).
        batch: batch size for both graphs.
        own_thresholds: re-calibrate int8's thresholds on its own outputs (else: the bundle's).
    """
    from ..training.evaluation import threshold_rule

    thr = float("inf") if image_threshold is None else float(image_threshold)
    h_img, h_names = holdout if holdout is not None and len(holdout[0]) else (None, [])
    has_test = test is not None and len(test[0])
    a_h = evaluate(fp32, h_img, thr, batch=batch) if h_img is not None else None
    b_h = evaluate(int8, h_img, thr, batch=batch, keep_maps=True) if h_img is not None else None
    a_t = b_t = None
    if has_test:
        images, masks, labels, names = test
        pix = masks if labels.any() else None
        a_t = evaluate(fp32, images, thr, labels, pix, batch)
        b_t = evaluate(int8, images, thr, labels, pix, batch)
    own: dict[str, Any] = {}
    if own_thresholds and image_threshold is not None:
        rule = threshold_rule(None if b_h is None else b_h.scores, None if b_h is None else b_h.maps,
                              b_t.metrics if b_t is not None and labels.any() else None)
        if rule["image_threshold"] is not None:
            own = {"image": rule["image_threshold"], "pixel": rule["pixel_threshold"], "source": rule["source"],
                   "normal_stats": rule["normal_stats"]}
            b_h = None if b_h is None else replace(b_h, decisions=b_h.scores >= own["image"])
            b_t = None if b_t is None else replace(b_t, decisions=b_t.scores >= own["image"])
    reasons: list[str] = []
    hold: dict[str, Any] = {}
    if a_h is not None and b_h is not None:
        _, idx = agreement(b_h, a_h)
        hold = {"n": len(h_names), "flips": len(idx), "flipped": [h_names[i] for i in idx],
                "score_max_abs_delta": round(float(np.abs(b_h.scores - a_h.scores).max()), 6)}
        if idx and image_threshold is not None:
            reasons.append(f"{len(idx)} of {len(h_names)} held-out good part(s) flip to NG or back")
    tst: dict[str, Any] = {}
    if a_t is not None and b_t is not None:
        _, idx = agreement(b_t, a_t)
        d = deltas(b_t, a_t)
        tst = {"n": len(names), "flips": len(idx), "flipped": [names[i] for i in idx],
               "fp32": _metrics(a_t.metrics), "int8": _metrics(b_t.metrics), "deltas": d}
        for k, v in d.items():
            if v is not None and v < -tolerance:
                reasons.append(f"{k} drops {-v:.2f} points (> {tolerance:g})")
        share = 100.0 * len(idx) / len(names)
        if image_threshold is not None and share > tolerance:
            reasons.append(f"{len(idx)} of {len(names)} test part(s) change OK/NG ({share:.1f} % > {tolerance:g} %)")
    if not hold and not tst:
        reasons.append("no held-out good or test images reachable to check on (the run's data_root)")
    return Int8Check(not reasons, tuple(reasons), tolerance, dict(settings or {}), hold, tst, thresholds=own)
