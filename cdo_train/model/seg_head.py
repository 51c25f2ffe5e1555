"""Optional segmentation head (``--head cdo+seg``): DeSTSeg's idea (Zhang et al., CVPR 2023) on CDO's pair.

CDO's map compares teacher and student by a fixed rule (the cosine discrepancy). This
head learns the rule instead: a small convolutional network reads, per pixel, the
element-wise products of the channel-normalised teacher and student features and is
trained on synthetic anomalies, after the student, to say which pixels are anomalous::

    p_l    = fe_l / |fe_l| * fa_l / |fa_l|                    # (B, C_l, h_l, w_l), per level, fp32
    in     = concat_l upsample_bilinear(p_l -> level-0 size)   # (B, sum C_l, H/4, W/4)
    h      = relu(bn(conv1x1(in)))                             # 32 channels: the reduction first
    logit  = conv1x1(relu(bn(conv3x3(relu(bn(conv3x3(h)))))))   # (B, 1, H/4, W/4)
    anomaly_map = upsample_bilinear(sigmoid(logit) -> (H, W))   # in [0, 1]
    score  = mean of the ``topk`` largest pixels of anomaly_map

``sum_c p_l`` is the cosine that CDO's ``d_l = 2 - 2 cos`` reads, so the head sees at least what
the discrepancy sees, channel by channel. The training (focal + L1 loss against the synthetic
masks, teacher and student frozen) is :mod:`cdo_train.training.seg_training`'s; this module holds
only the network, which the exported graph runs as it is (Conv, BatchNormalization folded,
Relu, Sigmoid, Resize, TopK).

Example:
    >>> import torch
    >>> head = SegHead((4, 6, 8), image_size=(64, 64), topk=10)
    >>> fe = [torch.randn(2, 4, 16, 16), torch.randn(2, 6, 8, 8), torch.randn(2, 8, 4, 4)]
    >>> amap, score = head.eval()(fe, fe)
    >>> tuple(head.inputs(fe, fe).shape), tuple(amap.shape), tuple(score.shape)
    ((2, 18, 16, 16), (2, 1, 64, 64), (2,))
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .discrepancy import top_k_mean
from .discrepancy_levels import EPS

__all__ = ["SEG_WIDTH", "SegHead", "level_product"]

# hidden channels. The 1x1 reduction before the 3x3 convolutions keeps the head within the line's latency budget:
# a 3x3 convolution straight from the 176 concatenated lite0 channels to 64 cost 1.26x the plain model's CPU time
# (torch, one thread, 256 px, batch 1), this design 1.08x, measured side by side before any accuracy run
SEG_WIDTH = 32


def level_product(fe: torch.Tensor, fa: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """``fe/|fe| * fa/|fa|`` (B, C, h, w) in fp32, the norms over channels (one ``rsqrt`` of their product,
    clamped by ``eps`` as :func:`~cdo_train.model.discrepancy_levels.level_discrepancy`)."""
    fe = fe.float()
    fa = fa.float()
    nn2 = (fe * fe).sum(1, keepdim=True) * (fa * fa).sum(1, keepdim=True)
    return fe * fa * torch.rsqrt(nn2.clamp_min(eps))


class SegHead(nn.Module):
    """Teacher/student features -> ``(anomaly_map (B,1,H,W) in [0, 1], score (B,))``.

    Args:
        channels: feature channels per level (the teacher's; the student's are the same).
        image_size: (H, W) of the model input.
        topk: pixels of the full-size map averaged into the image score.
        width: hidden channels (:data:`SEG_WIDTH`).
    """

    def __init__(self, channels: Sequence[int], image_size: tuple[int, int], topk: int = 100,
                 width: int = SEG_WIDTH) -> None:
        super().__init__()
        if width < 1 or topk < 1:
            raise ValueError(f"seg head width and topk must be >= 1, got {width} and {topk}")
        self.channels = tuple(int(c) for c in channels)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.topk = int(topk)
        self.width = int(width)
        self.net = nn.Sequential(
            nn.Conv2d(sum(self.channels), width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 1, 1),
        )

    def inputs(self, fe: list[torch.Tensor], fa: list[torch.Tensor]) -> torch.Tensor:
        """The per-level products of the normalised features at the level-0 size, concatenated:
        (B, sum C_l, h0, w0), fp32."""
        size = fe[0].shape[-2:]
        maps = [level_product(e, a) for e, a in zip(fe, fa)]
        return torch.cat([m if m.shape[-2:] == size else
                          F.interpolate(m, size=size, mode="bilinear", align_corners=False) for m in maps], 1)

    def logits(self, fe: list[torch.Tensor], fa: list[torch.Tensor]) -> torch.Tensor:
        """The anomaly logit at the level-0 size, (B, 1, h0, w0) (what the training loss reads)."""
        return self.net(self.inputs(fe, fa))

    def forward(self, fe: list[torch.Tensor], fa: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        amap = F.interpolate(torch.sigmoid(self.logits(fe, fa)), size=self.image_size, mode="bilinear",
                             align_corners=False)
        return amap, top_k_mean(amap, self.topk)
