"""The CDO loss: MOM (normal vs synthetic pixels) with OOM pixel reweighting.

Per level l, with d the per-pixel discrepancy at level-0 resolution
(:func:`cdo_train.model.discrepancy.level_discrepancies`), N the normal pixels and
S the synthetic-anomaly pixels of the whole batch::

    w_n = (d / mean_N(d))^gamma,  w_s = (mean_S(d) / d)^gamma      (detached; OOM on)
    w_n = w_s = 1                                                  (OOM off)
    L_l = (sum_N w_n d - sum_S w_s d) / (sum_N w_n + sum_S w_s)
    L   = sum_l L_l

MOM off means no synthetic anomalies: S is empty and only the normal term
remains.

Two options, both off by default (docs/results/photo_suite.md has what they measured):

* hard-feature loss (EfficientAD, Batzner et al. 2024): with ``hard_quantile`` q, a
  level's normal set N keeps only the pixels whose discrepancy is at least the q-quantile
  of that level's normal discrepancies in the batch (detached), so the student stops
  polishing what it already imitates;
* off-distribution penalty (:func:`penalty_loss`): on natural images that are not the
  part, ``-sum_l mean(d_l)``, which pushes the student away from the teacher outside the
  normal data, against CDO's over-generalisation to anomalies.

The segmentation head's loss (``--head cdo+seg``, :func:`seg_loss`: DeSTSeg's focal + L1) lives here too.

Fixes against the original code: ``gamma`` reaches the loss, the mask
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

__all__ = ["SEG_FOCAL_GAMMA", "cdo_loss", "hard_normal", "mask_to_features", "oom_weights", "penalty_loss",
           "seg_loss"]

EPS = 1e-6
SEG_FOCAL_GAMMA = 4.0  # DeSTSeg's focal exponent


def mask_to_features(mask: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """Synthetic-anomaly mask (B,1,H,W) -> {0,1} mask at ``like``'s size and device."""
    if mask is None:
        return torch.zeros_like(like)
    m = mask.to(device=like.device, dtype=like.dtype)
    if m.shape[-2:] != like.shape[-2:]:
        m = F.interpolate(m, size=like.shape[-2:], mode="area")
    return (m > 0.5).to(like.dtype)


def hard_normal(d: torch.Tensor, s: torch.Tensor, q: float) -> torch.Tensor:
    """The synthetic mask ``s`` widened to every normal pixel whose discrepancy is below the
    q-quantile of the normal discrepancies (detached): ``1 - hard_normal`` is the hard normal set.

    Example:
        >>> d = torch.arange(10.0).view(1, 1, 2, 5)
        >>> n = 1 - hard_normal(d, torch.zeros_like(d), 0.75)
        >>> n.flatten().tolist()
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    """
    with torch.no_grad():
        normal = d[s < 0.5].float()
        if normal.numel() == 0:
            return s
        # kthvalue, not torch.quantile: no input-size limit, and the same on every device
        k = max(1, min(normal.numel(), int(round(q * (normal.numel() - 1))) + 1))
        threshold = normal.kthvalue(k).values.to(d.dtype)
        return torch.where(d < threshold, torch.ones_like(s), s)


def penalty_loss(fe: list[torch.Tensor], fa: list[torch.Tensor]) -> torch.Tensor:
    """The off-distribution penalty: ``-sum_l mean(d_l)`` over images that are not the part.

    Example:
        >>> f = [torch.randn(1, 4, 8, 8)]
        >>> float(penalty_loss(f, f)) > -1e-5
        True
    """
    return -sum(d.mean() for d in level_discrepancies(fe, fa))


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
    hard_quantile: float | None = None,
) -> torch.Tensor:
    """CDO loss over all levels.

    Args:
        fe: teacher features per level, (B, C_l, h_l, w_l).
        fa: student features per level, same shapes.
        mask: synthetic-anomaly mask (B, 1, H, W) in {0, 1}, or None (MOM off).
        gamma: OOM focusing exponent.
        oom: reweight pixels (True) or weigh them equally (False).
        hard_quantile: train the normal term only on discrepancies above this quantile (None: all).

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
        if hard_quantile is not None:
            w_n = w_n * (1.0 - hard_normal(d, s, hard_quantile))
        num = (w_n * d).sum() - (w_s * d).sum()
        total = total + num / (w_n.sum() + w_s.sum()).clamp_min(EPS)
    return total


def seg_loss(logit: torch.Tensor, mask: torch.Tensor | None, gamma: float = SEG_FOCAL_GAMMA) -> torch.Tensor:
    """The segmentation head's loss (``--head cdo+seg``, DeSTSeg's): focal loss + L1, both pixel means.

    The target ``m`` is the synthetic-anomaly mask area-downsampled to the logit's size and binarised
    at 0.5 (:func:`mask_to_features`); with ``p = sigmoid(logit)`` and ``p_t = p m + (1 - p)(1 - m)``::

        L = mean(BCE(logit, m) (1 - p_t)^gamma) + mean(|p - m|)

    The cross-entropy is computed from the logit (stable where ``p`` saturates), in fp32.

    Example:
        >>> m = torch.zeros(1, 1, 8, 8); m[..., :4, :] = 1
        >>> float(seg_loss(20 * m - 10, m)) < 0.01 < float(seg_loss(10 - 20 * m, m))
        True
    """
    logit = logit.float()
    target = mask_to_features(mask, logit)
    p = torch.sigmoid(logit)
    p_t = p * target + (1.0 - p) * (1.0 - target)
    focal = F.binary_cross_entropy_with_logits(logit, target, reduction="none") * (1.0 - p_t) ** gamma
    return focal.mean() + (p - target).abs().mean()
