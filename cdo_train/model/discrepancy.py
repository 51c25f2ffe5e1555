"""The discrepancy head: ONE definition used by the loss, evaluation and export.

Per level l (strides 4/8/16) with teacher map ``fe`` and student map ``fa``
(B, C_l, h_l, w_l)::

    d_l = sum_c (fe/|fe| - fa/|fa|)^2  =  2 - 2 <fe, fa> / (|fe| |fa|)

The right-hand form is exact and cheaper: three channel reductions
(<fe,fa>, |fe|^2, |fa|^2) and arithmetic on (B, 1, h, w) maps instead of two
full-size normalisations, a difference and a square. It is computed in fp32
(the subtraction from 2 would lose the small normal-pixel discrepancies in
fp16); ``|fe|^2 |fa|^2`` is clamped by ``eps`` so all-zero features give d = 2.

Anomaly map (evaluation and export)::

    D = sum_l s_l upsample_bilinear(d_l -> level-0 size)   # (B, 1, H/4, W/4)
    D = gaussian_blur(D, sigma_feat)                       # separable, reflect pad
    anomaly_map = upsample_bilinear(D -> (H, W))            # (B, 1, H, W)
    score = max(S)   or   mean(top-k of S)

``s_l`` is 1 (the paper's plain sum) unless the run normalised its levels
(``--level-norm z``: ``s_l`` = 1 / the standard deviation of ``d_l`` over the
held-out good images, :mod:`cdo_train.model.level_norm`), and ``S`` is the anomaly
map itself (``score_levels`` 0, the default and the paper's rule) or the same
map built from the first ``score_levels`` levels only.
On stochastic surfaces the stride-16 level also answers ordinary texture
variation, and ``score_levels=2`` (strides 4 + 8) separated OK from NG better
there, but it lost on a surface whose defects the stride-16 level sees best
(docs/results/hard_surfaces.md), so it is an option, not the default.

Example:
    >>> import torch
    >>> head = DiscrepancyHead(image_size=(64, 64))
    >>> fe = [torch.randn(2, 8, 16, 16), torch.randn(2, 8, 8, 8), torch.randn(2, 8, 4, 4)]
    >>> amap, score = head(fe, fe)
    >>> tuple(amap.shape), float(score.abs().max()) < 1e-4
    ((2, 1, 64, 64), True)
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .discrepancy_levels import EPS, level_discrepancies, level_discrepancy

__all__ = ["DiscrepancyHead", "gaussian_kernel1d", "level_discrepancy", "level_discrepancies", "top_k_mean"]

LevelSum = Callable[[list[torch.Tensor], list[torch.Tensor], Sequence[float]], torch.Tensor]


def gaussian_kernel1d(sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """Normalised 1-D Gaussian with radius ``ceil(truncate * sigma)`` (scipy's rule)."""
    radius = max(1, int(math.ceil(truncate * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).float()


def top_k_mean(amap: torch.Tensor, k: int) -> torch.Tensor:
    """Mean of the ``k`` largest pixels (all of them when there are fewer) of each map (B, 1, H, W): (B,)."""
    flat = amap.flatten(1)
    return flat.topk(min(k, flat.shape[1]), dim=1).values.mean(1)


class DiscrepancyHead(nn.Module):
    """Teacher/student features -> (anomaly_map (B,1,H,W), score (B,)).

    Args:
        image_size: (H, W) of the model input.
        blur_sigma: Gaussian sigma in input pixels at 256 px input (scaled to the input size);
            0 disables the blur.
        score_rule: ``"max"`` or ``"topk_mean"``.
        topk: k for ``"topk_mean"`` (pixels of the full-size map; < 3840 for TensorRT).
        feature_stride: stride of level 0 (4).
        score_levels: the image score reads the map of the first ``score_levels`` levels only;
            0 (or the number of levels or more) = the anomaly map itself. With a memory bank the
            score is always that of the fused map.
        level_scales: one factor per level multiplying ``d_l`` before the sum (level
            normalisation, :mod:`cdo_train.model.level_norm`); empty = all 1 (the paper's plain sum).
    """

    def __init__(
        self,
        image_size: tuple[int, int],
        blur_sigma: float = 4.0,
        score_rule: str = "max",
        topk: int = 100,
        feature_stride: int = 4,
        score_levels: int = 0,
        level_scales: Sequence[float] = (),
    ) -> None:
        super().__init__()
        if score_rule not in ("max", "topk_mean"):
            raise ValueError(f"unknown score rule {score_rule!r}")
        if score_levels < 0:
            raise ValueError(f"score_levels must be >= 0, got {score_levels}")
        self.score_levels = int(score_levels)
        self.level_scales: tuple[float, ...] = ()
        self.set_level_scales(level_scales)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.score_rule = score_rule
        self.topk = int(topk)
        self.blur_sigma = float(blur_sigma)
        sigma_feat = blur_sigma * (self.image_size[0] / 256.0) / feature_stride
        kernel = gaussian_kernel1d(sigma_feat) if sigma_feat > 0 else torch.ones(1)
        self.pad = (kernel.numel() - 1) // 2
        self.register_buffer("kx", kernel.view(1, 1, 1, -1), persistent=False)
        self.register_buffer("ky", kernel.view(1, 1, -1, 1), persistent=False)

    def set_level_scales(self, scales: Sequence[float]) -> None:
        """Set the per-level factors (empty = all 1); they are constants of every exported graph."""
        scales = tuple(float(x) for x in scales)
        if any(not math.isfinite(x) or x <= 0 for x in scales):
            raise ValueError(f"level scales must be finite and > 0, got {scales}")
        self.level_scales = () if all(x == 1.0 for x in scales) else scales

    def low_res_maps(self, fe: list[torch.Tensor], fa: list[torch.Tensor], bank: nn.Module | None = None,
                     level_sum: LevelSum | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Blurred level-0-resolution maps (B, 1, H/4, W/4): ``(map, score_map)``.

        ``map`` is the summed (with a memory ``bank``: fused, ``MemoryBank.fuse``) discrepancy;
        ``score_map`` the one the image score reads (the same tensor unless ``score_levels`` selects
        fewer levels). ``level_sum`` sums levels at level-0 size (default: the fused Triton kernel on
        CUDA without autograd, its reference otherwise).
        """
        if level_sum is None:
            from .triton_head import fused_level_sum as level_sum
        k = self.score_levels
        scales = self.level_scales
        if scales and len(scales) != len(fe):
            raise ValueError(f"{len(scales)} level scales for {len(fe)} levels")
        if bank is not None or k == 0 or k >= len(fe):
            d = level_sum(fe, fa, scales)
            d = self.blur(d if bank is None else bank.fuse(d, fe))
            return d, d
        part = level_sum(fe[:k], fa[:k], scales[:k])
        size = part.shape[-2:]
        rest = [F.interpolate(level_discrepancy(e, a) * (scales[k + i] if scales else 1.0), size=size,
                              mode="bilinear", align_corners=False)
                for i, (e, a) in enumerate(zip(fe[k:], fa[k:]))]
        return self.blur(part + sum(rest)), self.blur(part)

    def low_res_map(self, fe: list[torch.Tensor], fa: list[torch.Tensor], bank: nn.Module | None = None) -> torch.Tensor:
        """The blurred anomaly map at level-0 resolution, (B, 1, H/4, W/4) (first of ``low_res_maps``)."""
        return self.low_res_maps(fe, fa, bank)[0]

    def blur(self, d: torch.Tensor) -> torch.Tensor:
        """The separable Gaussian blur (reflect padding) of a (B, 1, h, w) level-0 map."""
        if self.pad > 0:
            p = self.pad
            d = F.conv2d(F.pad(d, (p, p, 0, 0), mode="reflect"), self.kx)
            d = F.conv2d(F.pad(d, (0, 0, p, p), mode="reflect"), self.ky)
        return d

    def score(self, amap: torch.Tensor) -> torch.Tensor:
        if self.score_rule == "max":
            return amap.flatten(1).amax(1)
        return top_k_mean(amap, self.topk)

    def forward(self, fe: list[torch.Tensor], fa: list[torch.Tensor], bank: nn.Module | None = None,
                level_sum: LevelSum | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        d, s = self.low_res_maps(fe, fa, bank, level_sum)
        amap = self.upsample(d)
        return amap, self.score(amap if s is d else self.upsample(s))

    def upsample(self, d: torch.Tensor) -> torch.Tensor:
        """A level-0 map (B, 1, h, w) at the input size (B, 1, H, W), bilinear."""
        return F.interpolate(d, size=self.image_size, mode="bilinear", align_corners=False)
