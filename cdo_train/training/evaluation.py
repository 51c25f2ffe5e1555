"""Evaluation on the test set and threshold calibration on held-out good images.

The anomaly maps evaluated here come from ``CDOModel.forward``, the same
definition the exported graph computes, so training metrics are the deployed
model's metrics.

Threshold rule (written to ``calibration.json`` and then ``model.json``):
    * labelled test set present: image threshold = the F1-optimal image score,
      pixel threshold = the F1-optimal pixel value (``source: f1_optimal_test``);
    * otherwise (``--dataset folder``): image threshold = mean + 3 std of the
      held-out good images' scores, pixel threshold = the 99.9th percentile of
      their pixels (``source: good_holdout``);
    * a labelled test set without masks gives no pixel F1 threshold: the pixel
      threshold is then the good images' 99.9th percentile (``pixel_source``).
The good images' score statistics are always recorded with their count ``n``
(the hold-out, or ``--calibration-dir``). Fewer than ``MIN_CALIBRATION_IMAGES``
(10) of them make mean + 3 std and the p99 that ``--sensitivity`` uses
unreliable: ``calibration.json`` then carries ``reliable: false`` and a
``warning`` that the trainer logs.

Example:
    >>> stats = normal_stats(np.array([1.0, 2.0, 3.0]))
    >>> stats["n"], stats["mean"]
    (3, 2.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from ..data import Sample, load_sample
from .metrics import compute_metrics

__all__ = ["MIN_CALIBRATION_IMAGES", "EvalSet", "calibrate", "evaluate", "load_images", "normal_stats", "predict",
           "threshold_rule"]


MIN_CALIBRATION_IMAGES = 10  # fewer held-out good images give thresholds that cannot be trusted (a warning)


@dataclass
class EvalSet:
    """Images (N,H,W,3) uint8, masks (N,H,W) bool, labels (N,) int, and their samples."""

    images: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    samples: list[Sample]


def load_images(samples: Sequence[Sample], size: int) -> EvalSet:
    """Read samples into memory at ``size`` x ``size``."""
    pairs = [load_sample(s, size) for s in samples]
    return EvalSet(
        images=np.stack([p[0] for p in pairs]),
        masks=np.stack([p[1] for p in pairs]),
        labels=np.array([s.label for s in samples], dtype=np.int64),
        samples=list(samples),
    )


@torch.no_grad()
def predict(model: torch.nn.Module, images: np.ndarray, device: torch.device, batch_size: int = 16):
    """Anomaly maps (N,H,W) float32 and scores (N,) for uint8 RGB images (N,H,W,3)."""
    was_training = model.training
    model.eval()
    maps, scores = [], []
    use_amp = device.type == "cuda"
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(images[i : i + batch_size]).to(device).permute(0, 3, 1, 2).float().div_(255.0)
        with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            amap, score = model(x)
        maps.append(amap[:, 0].float().cpu().numpy())
        scores.append(score.float().cpu().numpy())
    model.train(was_training)
    return np.concatenate(maps), np.concatenate(scores)


def evaluate(model, test: EvalSet, device: torch.device, batch_size: int = 16) -> dict[str, Any]:
    """Every metric of ``cdo_train.training.metrics.compute_metrics`` on the test set."""
    maps, scores = predict(model, test.images, device, batch_size)
    has_masks = bool(test.labels.any())
    return compute_metrics(test.labels, scores, test.masks if has_masks else None, maps)


def normal_stats(scores: np.ndarray) -> dict[str, float]:
    """Summary statistics of good images' scores."""
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        return {}
    q = np.percentile(s, [50, 95, 99])
    return {
        "n": int(s.size),
        "mean": float(s.mean()),
        "std": float(s.std()),
        "p50": float(q[0]),
        "p95": float(q[1]),
        "p99": float(q[2]),
        "max": float(s.max()),
    }


def threshold_rule(holdout_scores: np.ndarray | None, holdout_maps: np.ndarray | None,
                   test_metrics: dict[str, Any] | None, good_source: str = "hold-out") -> dict[str, Any]:
    """Normal statistics and thresholds from a model's outputs (see the module docstring for the rule).

    Args:
        holdout_scores: (N,) scores of the good images that calibrate, or ``None``.
        holdout_maps: (N, H, W) their maps, or ``None``.
        test_metrics: ``compute_metrics`` on the labelled test set, or ``None`` without one.
        good_source: where the good images come from, as recorded (``hold-out`` or the folder).

    Returns:
        ``normal_stats``, ``normal_pixel_p999`` (with good images), ``image_threshold``,
        ``pixel_threshold``, ``source`` (``f1_optimal_test``, ``good_holdout`` or ``none``), ``n``,
        ``good_images``, ``min_n``, ``reliable`` and ``warning``.
    """
    n = 0 if holdout_scores is None else len(holdout_scores)
    out: dict[str, Any] = {"normal_stats": {}, "image_threshold": None, "pixel_threshold": None, "source": "none",
                           "n": n, "good_images": good_source, "min_n": MIN_CALIBRATION_IMAGES, "reliable": True,
                           "warning": None}
    pixel_q = None
    if n:
        out["normal_stats"] = normal_stats(holdout_scores)
        pixel_q = float(np.percentile(holdout_maps, 99.9))
        out["normal_pixel_p999"] = pixel_q
    if test_metrics is not None and test_metrics.get("image_f1_threshold") is not None:
        out["image_threshold"] = test_metrics["image_f1_threshold"]
        out["pixel_threshold"] = test_metrics.get("pixel_f1_threshold")
        out["source"] = "f1_optimal_test"
        if out["pixel_threshold"] is None and pixel_q is not None:  # a test set without masks
            out["pixel_threshold"], out["pixel_source"] = pixel_q, "good_holdout"
    elif out["normal_stats"]:
        ns = out["normal_stats"]
        out["image_threshold"] = ns["mean"] + 3.0 * ns["std"]
        out["pixel_threshold"] = pixel_q
        out["source"] = "good_holdout"
    if n < MIN_CALIBRATION_IMAGES:
        uses = ("the thresholds (mean + 3 std, p99.9)" if out["source"] != "f1_optimal_test"
                else "the normal-score statistics that --sensitivity uses")
        out["reliable"] = False
        out["warning"] = (f"only {n} good image(s) ({good_source}) calibrate {uses}, which is unreliable with "
                          f"fewer than {MIN_CALIBRATION_IMAGES} (their spread is not measured); add good images, "
                          f"raise holdout_fraction, or pass --calibration-dir with at least {MIN_CALIBRATION_IMAGES} "
                          "good images")
    return out


def calibrate(model, holdout: EvalSet | None, test: EvalSet | None, last: dict[str, Any], device, batch_size=16,
              good_source: str = "hold-out") -> dict[str, Any]:
    """Normal statistics and thresholds (see the module docstring for the rule).

    Args:
        holdout: the good images that calibrate (the hold-out, or ``--calibration-dir``'s).
        good_source: where they come from, as recorded (``hold-out`` or the folder).
    """
    maps = scores = None
    if holdout is not None and len(holdout.images):
        maps, scores = predict(model, holdout.images, device, batch_size)
    return threshold_rule(scores, maps, last if test is not None else None, good_source)
