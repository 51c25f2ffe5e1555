"""Optional memory-bank head: nearest-normal-patch distance fused with the CDO discrepancy.

The teacher's features of the training images are a description of "normal"
that CDO's student only imitates. This head keeps a small coreset of them and
measures, per patch, how far the test patch is from its nearest normal patch
(PatchCore's idea, Roth et al. 2022, on the same frozen teacher), then adds
that distance to CDO's discrepancy after putting both on the scale of the
held-out good images::

    q      = [avgpool3x3(fe_8), upsample(avgpool3x3(fe_16))]     # (B, C, H/8, W/8), C = C_8 + C_16, zero pad
    knn    = min_m |q - bank_m|_2                                 # (B, 1, H/8, W/8): MatMul, ArgMin, Gather
    fused  = (D - mu_cdo) / sd_cdo + (up(knn) - mu_knn) / sd_knn  # (B, 1, H/4, W/4), before the blur

``D`` is the summed per-level CDO discrepancy at stride 4; ``mu``/``sd`` are the
pixel mean and standard deviation of each map over the held-out good images
(never test images). The fused map then goes through the same blur, upsample
and score rule as the plain head, so the exported graph stays one ONNX graph
(a constant bank, MatMul, ArgMin, Gather) with a fixed cost per image.

The bank is chosen by greedy k-centre selection (PatchCore's coreset) on a
random projection of the training patches, seeded.

Example:
    >>> import torch
    >>> fe = [torch.randn(2, 4, 16, 16), torch.randn(2, 6, 8, 8), torch.randn(2, 8, 4, 4)]
    >>> bank = MemoryBank.from_patches(patch_features(fe), size=20, seed=0)
    >>> tuple(bank.bank.shape), tuple(bank.distances(fe).shape)
    ((20, 14), (2, 1, 8, 8))
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .discrepancy import level_discrepancies

__all__ = ["KNN_LEVELS", "MemoryBank", "build_memory_bank", "greedy_coreset", "patch_features"]

log = logging.getLogger(__name__)

KNN_LEVELS = (1, 2)  # strides 8 and 16, as PatchCore's default layers
_PROJECTION_DIM = 128


def patch_features(fe: list[torch.Tensor], levels: tuple[int, ...] = KNN_LEVELS) -> torch.Tensor:
    """Locally aware patch features: 3x3-averaged levels at the first level's size, (B, C, h, w)."""
    # zero padding counted, as PatchCore (torch's AvgPool2d default): excluding it makes border patches
    # averages of 4-6 values, noisier than any interior patch, and they then dominate the map (on the
    # photo turf suite, random 10 % bank: pixel AUROC 0.51 excluded vs 0.69 counted)
    maps = [F.avg_pool2d(fe[i].float(), 3, stride=1, padding=1, count_include_pad=True) for i in levels]
    size = maps[0].shape[-2:]
    maps = [m if m.shape[-2:] == size else F.interpolate(m, size=size, mode="bilinear", align_corners=False)
            for m in maps]
    return torch.cat(maps, 1)


def greedy_coreset(patches: torch.Tensor, size: int, seed: int) -> torch.Tensor:
    """Indices of ``size`` rows of ``patches`` (N, C) chosen by greedy k-centre selection.

    Distances are measured on a seeded Gaussian random projection to at most 128
    dimensions (as PatchCore does, for speed); the first centre is a seeded
    random row. Returns ``arange(N)`` when ``size >= N``.
    """
    n = patches.shape[0]
    if size >= n:
        return torch.arange(n)
    gen = torch.Generator().manual_seed(seed)
    x = patches.float()
    if x.shape[1] > _PROJECTION_DIM:
        x = x @ (torch.randn(x.shape[1], _PROJECTION_DIM, generator=gen) / _PROJECTION_DIM**0.5)
    chosen = torch.empty(size, dtype=torch.long)
    chosen[0] = int(torch.randint(n, (1,), generator=gen))
    nearest = ((x - x[chosen[0]]) ** 2).sum(1)
    for i in range(1, size):
        chosen[i] = int(nearest.argmax())
        nearest = torch.minimum(nearest, ((x - x[chosen[i]]) ** 2).sum(1))
    return chosen


class MemoryBank(nn.Module):
    """A coreset of normal teacher patches and the statistics that put both maps on one scale.

    Args:
        bank: (M, C) normal patch features.
        levels: the teacher levels the patches are built from.
    """

    def __init__(self, bank: torch.Tensor, levels: tuple[int, ...] = KNN_LEVELS) -> None:
        super().__init__()
        self.levels = tuple(levels)
        self.register_buffer("bank", bank.float().contiguous())
        self.register_buffer("bank_sq", (bank.float() ** 2).sum(1))
        # (mu_cdo, sd_cdo, mu_knn, sd_knn); identity until calibrate() has seen held-out good images
        self.register_buffer("stats", torch.tensor([0.0, 1.0, 0.0, 1.0]))

    @classmethod
    def from_patches(cls, patches: torch.Tensor, size: int, seed: int,
                     levels: tuple[int, ...] = KNN_LEVELS) -> "MemoryBank":
        """A bank of ``size`` patches from (B, C, h, w) features of the training images."""
        flat = patches.permute(0, 2, 3, 1).reshape(-1, patches.shape[1])
        return cls(flat[greedy_coreset(flat, size, seed)].clone(), levels)

    @classmethod
    def empty(cls, size: int, channels: int, levels: tuple[int, ...] = KNN_LEVELS) -> "MemoryBank":
        """A zero bank of the right shape, to load a saved state into."""
        return cls(torch.zeros(size, channels), levels)

    def distances(self, fe: list[torch.Tensor]) -> torch.Tensor:
        """Distance of every patch to its nearest bank entry, (B, 1, h, w) at the first level's size."""
        q = patch_features(fe, self.levels)
        b, c, h, w = q.shape
        q = q.flatten(2).transpose(1, 2)                                   # (B, hw, C)
        # |q - b|^2 = |q|^2 - 2 q.b + |b|^2: one MatMul finds the nearest entry; its distance is then
        # computed exactly from the difference (the expanded form cancels badly near 0, and the square
        # root would magnify that into differences between runtimes)
        nearest = (self.bank_sq - 2.0 * torch.matmul(q, self.bank.t())).argmin(2)  # (B, hw)
        d = ((q - self.bank[nearest]) ** 2).sum(2).sqrt()
        return d.view(b, 1, h, w)

    def fuse(self, d: torch.Tensor, fe: list[torch.Tensor]) -> torch.Tensor:
        """CDO's summed discrepancy ``d`` (B, 1, h0, w0) and the patch distances, each standardised
        by the held-out good statistics, added: (B, 1, h0, w0)."""
        knn = F.interpolate(self.distances(fe), size=d.shape[-2:], mode="bilinear", align_corners=False)
        mu_c, sd_c, mu_k, sd_k = self.stats
        return (d - mu_c) / sd_c + (knn - mu_k) / sd_k

    def calibrate(self, d: torch.Tensor, knn: torch.Tensor) -> None:
        """Set the statistics from held-out good images' maps: CDO ``d`` and upsampled ``knn`` (B, 1, h0, w0)."""
        d, knn = d.double(), knn.double()
        self.stats.copy_(torch.tensor([d.mean(), d.std().clamp_min(1e-6), knn.mean(), knn.std().clamp_min(1e-6)]))


def _batched(fn, images: np.ndarray, device: torch.device, batch_size: int) -> list:
    """``fn(x)`` over uint8 RGB images (N, H, W, 3) in batches of RGB floats in [0, 1] on ``device``."""
    out = []
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size])).to(device)
        out.append(fn(x.permute(0, 3, 1, 2).float().div_(255.0)))
    return out


@torch.no_grad()
def build_memory_bank(model: nn.Module, train_images: np.ndarray, held_images: np.ndarray | None, size: int,
                      seed: int, device: torch.device, batch_size: int = 16) -> MemoryBank:
    """The memory-bank head of a trained ``CDOModel``.

    Args:
        model: the trained model (its teacher gives the patches, teacher and student the CDO map).
        train_images: (N, H, W, 3) uint8 RGB training images: the bank's source.
        held_images: (M, H, W, 3) uint8 RGB held-out good images for the statistics; ``None`` or empty
            falls back to the training images (their patch distances are then biased low: warned).
        size: bank size (patches); all patches when there are fewer.
        seed: coreset seed.
        device: where the model runs.
        batch_size: images per forward pass.

    Returns:
        The calibrated bank (on ``device``), not yet attached (``model.set_bank``).
    """
    was_training = model.training
    model.eval()
    patches = torch.cat([patch_features(model.teacher_features(x)).cpu()
                         for x in _batched(lambda x: x, train_images, device, batch_size)])
    bank = MemoryBank.from_patches(patches, size, seed).to(device)
    if held_images is None or not len(held_images):
        log.warning("memory bank: no held-out good images; its statistics come from the training images, "
                    "whose patch distances are biased low (hold some images out: holdout_fraction)")
        held_images = train_images

    def maps(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fe, fa = model.features(x)
        d = sum(level_discrepancies(fe, fa, model.head.level_scales))  # the D the head fuses
        knn = F.interpolate(bank.distances(fe), size=d.shape[-2:], mode="bilinear", align_corners=False)
        return d, knn

    pairs = _batched(maps, held_images, device, batch_size)
    bank.calibrate(torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs]))
    model.train(was_training)
    log.info("memory bank: %d of %d patches, statistics from %d images", len(bank.bank),
             patches.shape[0] * patches.shape[2] * patches.shape[3], len(held_images))
    return bank
