"""The CDO loss: MOM (normal vs synthetic pixels) with OOM pixel reweighting.

Per level l, with d the per-pixel discrepancy at level-0 resolution
(:func:`cdo_train.model.discrepancy.level_discrepancies`), N the normal pixels and
S the synthetic-anomaly pixels of the whole batch::

    w_n = (d / mean_N(d))^gamma,  w_s = (mean_S(d) / d)^gamma      (detached; OOM on)
    w_n = w_s = 1                                                  (OOM off)
    L_l = (sum_N w_n d - sum_S w_s d) / (sum_N w_n + sum_S w_s)
    L   = sum_l L_l

MOM off means no synthetic anomalies: S is empty and only the normal term
remains. Fixes against the original code: ``gamma`` reaches the loss, the mask
lives on the features' device, ``eps`` guards every division and power, an
empty S is fine, and nothing is scaled by the batch size.

Example:
    >>> import torch
    >>> fe = [torch.randn(2, 4, 8, 8)]
    >>> float(cdo_loss(fe, fe, None)) < 1e-5
    True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..model.discrepancy import level_discrepancies

__all__ = ["cdo_loss", "mask_to_features", "oom_weights"]

EPS = 1e-6


def mask_to_features(mask: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """Synthetic-anomaly mask (B,1,H,W) -> {0,1} mask at ``like``'s size and device."""
    if mask is None:
        return torch.zeros_like(like)
    m = mask.to(device=like.device, dtype=like.dtype)
    if m.shape[-2:] != like.shape[-2:]:
        m = F.interpolate(m, size=like.shape[-2:], mode="area")
    return (m > 0.5).to(like.dtype)


def oom_weights(d: torch.Tensor, s: torch.Tensor, gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Detached OOM weights (w_n, w_s), zero outside their pixel sets."""
    with torch.no_grad():
        n = 1.0 - s
        dc = d.clamp_min(EPS)
        mean_n = (d * n).sum() / n.sum().clamp_min(1.0)
        mean_s = (d * s).sum() / s.sum().clamp_min(1.0)
        w_n = (dc / mean_n.clamp_min(EPS)) ** gamma * n
        w_s = (mean_s.clamp_min(EPS) / dc) ** gamma * s
    return w_n, w_s


def cdo_loss(
    fe: list[torch.Tensor],
    fa: list[torch.Tensor],
    mask: torch.Tensor | None,
    gamma: float = 2.0,
    oom: bool = True,
) -> torch.Tensor:
    """CDO loss over all levels.

    Args:
        fe: teacher features per level, (B, C_l, h_l, w_l).
        fa: student features per level, same shapes.
        mask: synthetic-anomaly mask (B, 1, H, W) in {0, 1}, or None (MOM off).
        gamma: OOM focusing exponent.
        oom: reweight pixels (True) or weigh them equally (False).

    Returns:
        Scalar loss tensor (fp32).
    """
    ds = level_discrepancies(fe, fa)
    s = mask_to_features(mask, ds[0])
    total = ds[0].new_zeros(())
    for d in ds:
        if oom:
            w_n, w_s = oom_weights(d, s, gamma)
        else:
            w_s = s
            w_n = 1.0 - s
        num = (w_n * d).sum() - (w_s * d).sum()
        total = total + num / (w_n.sum() + w_s.sum()).clamp_min(EPS)
    return total
