"""The per-level discrepancy ``d_l``: the maths the head, the loss, the memory bank and the fused
Triton kernel share (:mod:`cdo_train.model.discrepancy` documents the formula and re-exports these).

Example:
    >>> import torch
    >>> fe = torch.randn(2, 8, 4, 4)
    >>> float(level_discrepancy(fe, fe).abs().max()) < 1e-5, float(level_discrepancy(fe, -fe).min()) > 3.99
    (True, True)
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = ["EPS", "level_discrepancies", "level_discrepancy"]

EPS = 1e-12


def level_discrepancy(fe: torch.Tensor, fa: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """``sum_c (fe/|fe| - fa/|fa|)^2`` as (B, 1, h, w), computed in fp32."""
    fe = fe.float()
    fa = fa.float()
    dot = (fe * fa).sum(1, keepdim=True)
    nn2 = (fe * fe).sum(1, keepdim=True) * (fa * fa).sum(1, keepdim=True)
    return (2.0 - 2.0 * dot * torch.rsqrt(nn2.clamp_min(eps))).clamp_min(0.0)


def level_discrepancies(fe: list[torch.Tensor], fa: list[torch.Tensor],
                        scales: Sequence[float] = ()) -> list[torch.Tensor]:
    """Per-level discrepancies, each upsampled to the level-0 size: list of (B, 1, h0, w0).

    ``scales`` (one per level; empty = all 1) multiplies each level's map: the head's level
    normalisation (:class:`cdo_train.model.discrepancy.DiscrepancyHead`, ``level_scales``).
    """
    size = fe[0].shape[-2:]
    out = []
    for i, (e, a) in enumerate(zip(fe, fa)):
        d = level_discrepancy(e, a)
        if scales and scales[i] != 1.0:
            d = d * float(scales[i])
        if d.shape[-2:] != size:
            d = F.interpolate(d, size=size, mode="bilinear", align_corners=False)
        out.append(d)
    return out
