"""Per-sample ordering curriculum: train on the easiest fraction of the images first.

Each training image gets a difficulty score once, before training, from a
registered scorer (``ORDERINGS``):

* ``teacher``: atypicality in the frozen teacher's feature space: the
  distance of the image's pooled, per-level L2-normalised teacher features to
  the mean over the training set. No training; a few forward passes.
* ``student``: the discrepancy of a briefly trained student: a copy of the
  model is trained for ``warmup_steps`` CDO steps at the paper's setting
  (t = 0), then each image scores the mean of its anomaly map. Images the
  student has not yet learnt to reproduce are hard.

At each epoch the curriculum schedule's difficulty t (taken at the epoch's
first step) sets the fraction of the easiest images in use:
``fraction = start + (1 - start) * t``. The epoch keeps the full run's number
of steps (batches are drawn from the subset, cycling through shuffles), so
every schedule trains with the same number of gradient steps. With ``anti``
the subset shrinks; with ``none`` it stays at ``start``.

Parameters (``ordering_params`` in YAML, ``--ordering-param k=v``): ``start``
(fraction at t = 0, default 0.3), ``warmup_steps`` (student scorer, default 20).

Example:
    >>> import numpy as np, torch
    >>> cur = DataCurriculum(np.array([3.0, 1.0, 2.0, 0.5]), start=0.5)
    >>> cur.subset(0.0).tolist(), cur.fraction(1.0)
    ([3, 1], 1.0)
    >>> [b.tolist() for b in cur.batches(0.0, 2, 2, torch.Generator().manual_seed(0))][0] in ([3, 1], [1, 3])
    True
"""

from __future__ import annotations

import copy
import logging
import math
from typing import Any, Callable

import numpy as np
import torch

from cdo_deploy.errors import CdoError
from cdo_deploy.registry import Registry

__all__ = ["DEFAULT_PARAMS", "ORDERINGS", "DataCurriculum", "build_ordering", "check_ordering"]

log = logging.getLogger(__name__)

DEFAULT_PARAMS: dict[str, Any] = {"start": 0.3, "warmup_steps": 20}

# A scorer: (model, images uint8 (N,H,W,3), device, batch_size, settings) -> scores (N,), higher = harder.
Scorer = Callable[..., np.ndarray]
ORDERINGS: Registry[Scorer] = Registry("ordering scorer")


def check_ordering(name: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """Validate an ordering name and its parameters; returns the parameters with defaults filled in."""
    ORDERINGS.get(name)
    params = {**DEFAULT_PARAMS, **(params or {})}
    unknown = set(params) - set(DEFAULT_PARAMS)
    if unknown:
        raise CdoError(f"unknown ordering parameter(s) {sorted(unknown)}; known: {', '.join(DEFAULT_PARAMS)}")
    start = params["start"]
    if not isinstance(start, (int, float)) or not 0.0 < start <= 1.0:
        raise CdoError(f"ordering parameter start (fraction of images at t = 0) must be in (0, 1], got {start!r}")
    steps = params["warmup_steps"]
    if not isinstance(steps, int) or steps < 1:
        raise CdoError(f"ordering parameter warmup_steps must be an integer >= 1, got {steps!r}")
    return params


class DataCurriculum:
    """Easiest-first image subsets paced by the curriculum's difficulty.

    Args:
        scores: per-image difficulty (N,), higher = harder.
        start: fraction of the images used at t = 0.
    """

    def __init__(self, scores: np.ndarray, start: float) -> None:
        self.scores = np.asarray(scores, dtype=np.float64)
        self.order = np.argsort(self.scores, kind="stable")  # easiest first
        self.start = float(start)
        self._last: dict[str, Any] = {}

    def fraction(self, t: float) -> float:
        """Fraction of the images in use at difficulty ``t``."""
        return min(1.0, self.start + (1.0 - self.start) * min(1.0, max(0.0, t)))

    def subset(self, t: float, min_size: int = 1) -> np.ndarray:
        """Indices of the easiest ``ceil(fraction(t) * N)`` images (at least ``min_size``), easiest first."""
        n = len(self.order)
        k = min(n, max(min_size, math.ceil(self.fraction(t) * n - 1e-9)))
        return self.order[:k]

    def batches(self, t: float, steps: int, batch_size: int, gen: torch.Generator) -> list[torch.Tensor]:
        """``steps`` batches drawn from the subset at ``t``, cycling through shuffles of it."""
        subset = torch.from_numpy(self.subset(t, min_size=batch_size).copy())
        need = steps * batch_size
        reps = math.ceil(need / len(subset))
        idx = torch.cat([subset[torch.randperm(len(subset), generator=gen)] for _ in range(reps)])
        self._last = {"data_fraction": len(subset) / len(self.order), "data_images": len(subset)}
        return [idx[i * batch_size : (i + 1) * batch_size] for i in range(steps)]

    def state(self) -> dict[str, Any]:
        """The subset last used (logged next to the metrics)."""
        return dict(self._last)

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps: the scores, the start fraction and the subset last used."""
        return {"scores": torch.from_numpy(self.scores.copy()), "start": self.start, "last": self.state()}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], start: float | None = None) -> "DataCurriculum":
        """The curriculum of :meth:`state_dict` (``start`` for checkpoints saved before it recorded its own)."""
        scores = state["scores"]
        cur = cls(scores.numpy() if isinstance(scores, torch.Tensor) else np.asarray(scores),
                  state.get("start", start))
        cur._last = dict(state.get("last") or {})
        return cur


def _to_batch(images: np.ndarray, device: torch.device) -> torch.Tensor:
    from .step import to_float_batch

    return to_float_batch(torch.from_numpy(images).to(device))


@ORDERINGS.register("teacher")
@torch.no_grad()
def teacher_scores(model, images: np.ndarray, device: torch.device, batch_size: int, **_: Any) -> np.ndarray:
    """Distance of each image's pooled teacher features to the training-set mean (N,)."""
    feats = []
    for i in range(0, len(images), batch_size):
        x = _to_batch(images[i : i + batch_size], device)
        fe = model.teacher((x - model.mean) / model.std)  # teacher only: the student's BatchNorm stays untouched
        pooled = [torch.nn.functional.normalize(f.float().mean(dim=(2, 3)), dim=1) for f in fe]
        feats.append(torch.cat(pooled, dim=1).cpu())
    z = torch.cat(feats)
    return (z - z.mean(0, keepdim=True)).norm(dim=1).numpy()


@ORDERINGS.register("student")
def student_scores(model, images: np.ndarray, device: torch.device, batch_size: int, *, warmup_steps: int,
                   lr: float, gamma: float, seed: int, foreground_only: bool = False,
                   precision=None, **_: Any) -> np.ndarray:
    """Mean anomaly map of each image after ``warmup_steps`` CDO steps on a copy of the model (N,);
    the steps run as the run's (``precision``, :class:`cdo_train.training.step.StepPrecision`; default fp32, NCHW)."""
    from ..synth.anomalies import SynthParams, synthesize
    from .evaluation import predict
    from .step import StepPrecision, batch_loss

    precision = precision or StepPrecision(None, False)
    probe = copy.deepcopy(model).train()
    opt = torch.optim.AdamW(probe.student.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed + 7919)
    n = len(images)
    for _step in range(warmup_steps):
        idx = torch.randint(0, n, (min(batch_size, n),), generator=gen).numpy()
        x, mask = synthesize(_to_batch(images[idx], device), SynthParams(), gen, foreground_only)
        loss = batch_loss(probe, x, mask, gamma=gamma, oom=True, precision=precision)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    maps, _scores = predict(probe, images, device, batch_size)
    return maps.reshape(len(maps), -1).mean(axis=1).astype(np.float64)


def build_ordering(name: str, params: dict[str, Any] | None, model, images: np.ndarray, device: torch.device,
                   batch_size: int, **settings: Any) -> DataCurriculum:
    """Score the training images once and return their :class:`DataCurriculum`.

    Args:
        name: registered scorer (``teacher`` or ``student``).
        params: ``ordering_params`` (``start``, ``warmup_steps``).
        model: the run's freshly built ``CDOModel`` (left unchanged; the global RNG is not consumed).
        images: training images, uint8 (N, H, W, 3).
        device: where to compute.
        batch_size: images per forward pass.
        **settings: ``lr``, ``gamma``, ``seed``, ``foreground_only``, ``precision`` for the student scorer.
    """
    params = check_ordering(name, params)
    with torch.random.fork_rng(devices=[]):
        scores = ORDERINGS.get(name)(model, images, device, batch_size,
                                     warmup_steps=params["warmup_steps"], **settings)
    log.info("ordering %s: scored %d images (difficulty %.4g .. %.4g)", name, len(scores),
             float(np.min(scores)), float(np.max(scores)))
    return DataCurriculum(scores, params["start"])
