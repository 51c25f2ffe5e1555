"""Level normalisation: the three discrepancy levels put on one scale before they are summed.

The anomaly map sums the per-level discrepancies ``d_l`` (strides 4, 8, 16). On good images
each level has its own spread, so the plain sum (the paper's) lets the level that varies most
on good images set the map, and a defect seen best by a quieter level drowns in it. With
``level_norm: z`` each level is divided by its standard deviation over the held-out good
images (the images that also calibrate the thresholds; never test images) before the sum, as
EfficientAD puts its maps on the scale of good images::

    s_l = 1 / std(d_l over the held-out good pixels, at level-0 size)
    D   = sum_l s_l d_l                      (then blur, upsample, score as before)

Subtracting each level's mean as well would move every pixel of every image alike and change
no decision, so only the factors ``s_l`` are kept. They are computed once, after training, and
stored in the run's ``model.json`` (``level_scales``); every exported graph carries them as
constants, so the line computes the same map (:class:`cdo_train.model.discrepancy.DiscrepancyHead`).
Training itself is unchanged: the loss reads the raw levels.

Measured on the real-photo suite: docs/results/photo_suite.md ("Head options").

Example:
    >>> import numpy as np, torch
    >>> from cdo_train.model.cdo_model import CDOModel, ModelConfig
    >>> m = CDOModel(ModelConfig("resnet18", image_size=64, teacher_weights="random"))
    >>> scales = z_scales(m, np.zeros((2, 64, 64, 3), np.uint8) + 128, torch.device("cpu"))
    >>> len(scales), all(s > 0 for s in scales)
    (3, True)
"""

from __future__ import annotations

import logging
import math
from typing import Iterable

import numpy as np
import torch

from .discrepancy_levels import level_discrepancies

__all__ = ["z_scales", "z_scales_of"]

log = logging.getLogger(__name__)


def z_scales_of(batches: Iterable[list[torch.Tensor]]) -> tuple[float, ...]:
    """``1 / std`` of each level over the pixels of every batch of per-level maps (float64 sums).

    Args:
        batches: per batch of good images, the list of level maps (:func:`level_discrepancies`).

    Returns:
        One factor per level; 1.0 for a level that does not vary at all (nothing to scale by).
    """
    sums: list[list[float]] = []  # per level: count, sum, sum of squares (float64)
    for levels in batches:
        for lvl, d in enumerate(levels):
            d = d.double()
            if len(sums) <= lvl:
                sums.append([0.0, 0.0, 0.0])
            sums[lvl][0] += d.numel()
            sums[lvl][1] += float(d.sum())
            sums[lvl][2] += float((d * d).sum())
    scales = []
    for lvl, (n, s, ss) in enumerate(sums):
        std = math.sqrt(max(0.0, ss / n - (s / n) ** 2) * n / max(1.0, n - 1))
        if not std > 1e-12:
            log.warning("level normalisation: level %d does not vary over the good images; left unscaled", lvl)
            scales.append(1.0)
        else:
            scales.append(1.0 / std)
    return tuple(scales)


@torch.no_grad()
def z_scales(model: torch.nn.Module, images: np.ndarray, device: torch.device, batch_size: int = 16
             ) -> tuple[float, ...]:
    """``1 / std`` of each level's discrepancy over the pixels of ``images`` (good ones): :func:`z_scales_of`
    of the model's level maps, batch by batch.

    Args:
        model: a ``CDOModel`` (its teacher and student give the levels).
        images: (N, H, W, 3) uint8 RGB good images at the model size.
        device: where the model runs.
        batch_size: images per forward pass.
    """
    def batches():
        for i in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size])).to(device)
            yield level_discrepancies(*model.features(x.permute(0, 3, 1, 2).float().div_(255.0)))

    was_training = model.training
    model.eval()
    try:
        return z_scales_of(batches())
    finally:
        model.train(was_training)
