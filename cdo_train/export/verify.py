"""Parity of an exported graph with the PyTorch model, in ONNX Runtime on CPU.

The reference is :func:`cdo_train.training.evaluation.predict`, the function training
uses for its metrics, so "ONNX equals the reference" means "the deployed graph
reproduces the metrics training reported".

Tolerances (in anomaly-map units, relative to the map's scale):
    * fp32: :data:`FP32_TOL` times the reference map's largest value (at least 1) on every map
      pixel and score: float32 reassociation only, whose error grows with the values (the plain
      head's maps are about 0.1..3; level-normalised ones, in units of the good images' spread,
      reach hundreds);
    * fp16 and int8 variants are compared with the fp32 graph and judged by
      accuracy (AUROC) rather than by a pixel tolerance; their errors are reported.

Example:
    >>> sess = onnx_session("bundle/model.onnx")                  # doctest: +SKIP
    >>> maps, scores = run_onnx(sess, images)                     # doctest: +SKIP
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cdo_deploy.bundle import INPUT_NAME, OUTPUT_NAMES

__all__ = ["FP32_TOL", "Parity", "compare", "fp32_tolerance", "onnx_session", "run_onnx", "torch_reference"]

log = logging.getLogger(__name__)

FP32_TOL = 1e-4


@dataclass(frozen=True)
class Parity:
    """Largest absolute differences between two predictions of the same images."""

    variant: str
    n_images: int
    map_max_abs: float
    score_max_abs: float
    tolerance: float | None = None

    @property
    def ok(self) -> bool:
        return self.tolerance is None or max(self.map_max_abs, self.score_max_abs) <= self.tolerance

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def onnx_session(path: str | Path | bytes, threads: int = 0) -> Any:
    """A CPU ONNX Runtime session (``threads`` 0 = ORT's default)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    model = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def run_onnx(session: Any, images: np.ndarray, batch_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N,H,W,3) -> maps (N,H,W) float32 and scores (N,) with an ONNX session."""
    maps, scores = [], []
    for i in range(0, len(images), batch_size):
        amap, score = session.run(list(OUTPUT_NAMES), {INPUT_NAME: np.ascontiguousarray(images[i:i + batch_size])})
        maps.append(amap[:, 0])
        scores.append(score)
    return np.concatenate(maps), np.concatenate(scores)


def torch_reference(model: Any, images: np.ndarray, batch_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The trainer's own prediction (``cdo_train.training.evaluation.predict``) on CPU."""
    import torch

    from ..training.evaluation import predict

    return predict(model, images, torch.device("cpu"), batch_size)


def fp32_tolerance(reference_maps: np.ndarray, tolerance: float = FP32_TOL) -> float:
    """``tolerance`` scaled by the reference maps' largest absolute value when that exceeds 1."""
    return tolerance * max(1.0, float(np.abs(reference_maps).max()))


def compare(reference: tuple[np.ndarray, np.ndarray], other: tuple[np.ndarray, np.ndarray], variant: str,
            tolerance: float | None = None) -> Parity:
    """Max abs differences of maps and scores between ``reference`` and ``other``; ``tolerance`` is scaled by
    the reference map's largest absolute value when that exceeds 1 (the scaled value is recorded)."""
    (m0, s0), (m1, s1) = reference, other
    if tolerance is not None:
        tolerance = fp32_tolerance(m0, tolerance)
    return Parity(variant, len(s0), float(np.abs(m0 - m1).max()), float(np.abs(s0 - s1).max()), tolerance)
