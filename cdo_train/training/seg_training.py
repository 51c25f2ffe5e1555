"""The second stage of a ``--head cdo+seg`` run: the segmentation head trained after the student.

:class:`~cdo_train.model.seg_head.SegHead` learns to mark synthetic anomalies from the
products of the frozen teacher's and the trained student's normalised features
(DeSTSeg's segmentation stage, Zhang et al., CVPR 2023). The head's initial weights are seeded
from the run's generator, so the stage depends only on the model, the images and that generator's
state. ``seg_steps`` optimiser steps, each:

1. ``batch_size`` training images, drawn in passes over a fresh permutation (the run's
   generator; a batch wraps into the next pass, so every batch is full);
2. synthetic anomalies pasted in by the student training's generator
   (:func:`cdo_train.synth.anomalies.synthesize` with the run's base ``SynthParams`` and
   ``foreground_only``, drawn from the same run generator), also when ``--MOM False``
   kept them out of the student's loss: they are this stage's only labels;
3. teacher and student in eval mode without gradients, in the student step's precision
   (:func:`cdo_train.training.step.step_features`: bf16/fp16 autocast where the run's
   step uses it); the head, its BatchNorm in training mode, and the loss in fp32;
4. :func:`cdo_train.training.loss.seg_loss` (focal, gamma 4, + L1 against the mask at
   stride 4) and an Adam step, lr 1e-3, no decay.

Cost: one teacher and one student forward pass per step and a small head's forward and
backward pass, about half a student step (which also runs the student backwards);
the default 200 steps add about a tenth to a default 1000-step run.

Example:
    >>> seg, loss = train_seg_head(model, images.train, cfg, gen, device)  # doctest: +SKIP
    >>> model.set_seg_head(seg)                                            # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import time

import torch

from cdo_deploy.errors import CdoError

from ..model.seg_head import SegHead
from ..synth.anomalies import SynthParams, synthesize
from .config import TrainConfig
from .loss import seg_loss
from .step import step_features, step_precision, to_float_batch

__all__ = ["SEG_LR", "seg_batches", "train_seg_head"]

log = logging.getLogger(__name__)

SEG_LR = 1e-3  # Adam


def seg_batches(n: int, batch_size: int, steps: int, gen: torch.Generator) -> list[torch.Tensor]:
    """``steps`` index batches of ``batch_size`` over ``n`` images: consecutive passes over fresh permutations
    (drawn from ``gen``), cut into full batches."""
    passes = math.ceil(steps * batch_size / n)
    order = torch.cat([torch.randperm(n, generator=gen) for _ in range(passes)])
    return [order[i * batch_size:(i + 1) * batch_size] for i in range(steps)]


def train_seg_head(model, images: torch.Tensor, cfg: TrainConfig, gen: torch.Generator,
                   device: torch.device) -> tuple[SegHead, float]:
    """Train a new segmentation head on a trained ``CDOModel`` (see the module docstring).

    Args:
        model: the trained model; left in eval mode, its teacher and student unchanged.
        images: the run's training images, (N, H, W, 3) uint8.
        cfg: the run's config (``seg_steps``, ``batch_size``, ``synth``, ``foreground_only`` and the step's
            precision settings).
        gen: the run's generator (batches and synthetic anomalies).
        device: where the model is.

    Returns:
        The trained head in eval mode (not attached: ``model.set_seg_head``) and the mean loss of the last
        quarter of the steps (at least the last step).

    Raises:
        CdoError: the loss became non-finite.
    """
    t0 = time.perf_counter()
    precision = step_precision(cfg.amp, cfg.cpu_bf16, cfg.channels_last, device)
    params = SynthParams.from_dict(cfg.synth)
    with torch.random.fork_rng(devices=[]):  # its initial weights from the run's generator too
        torch.manual_seed(int(torch.randint(2**62, (1,), generator=gen)))
        seg = model.new_seg_head().to(device)
    if precision.channels_last:
        seg = seg.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(seg.parameters(), lr=SEG_LR)
    model.eval()
    seg.train()
    losses = []
    for idx in seg_batches(len(images), cfg.batch_size, cfg.seg_steps, gen):
        x = to_float_batch(images[idx].to(device, non_blocking=True))
        x, mask = synthesize(x, params, gen, cfg.foreground_only)
        with torch.no_grad():
            fe, fa = step_features(model, x, precision)
        loss = seg_loss(seg.logits(fe, fa), mask)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    stacked = torch.stack(losses).double()
    value = float(stacked[-max(1, len(losses) // 4):].mean())  # the stage's host syncs: here, at its end
    if not bool(torch.isfinite(stacked).all()):
        raise CdoError(f"the segmentation head's training diverged (loss {value})")
    log.info("segmentation head: %d steps of batch %d in %.1f s, loss %.4g (last quarter)", cfg.seg_steps,
             cfg.batch_size, time.perf_counter() - t0, value)
    return seg.eval(), value
