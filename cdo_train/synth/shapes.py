"""Realistic synthetic anomalies: irregular Perlin-noise masks, fills from real material, opacity ranges.

The paper's generator pastes opaque uniform-noise rectangles; real subtle
defects are irregular, made of a similar material and only partly opaque.
:func:`realistic_anomalies` replaces the anomaly of a share of the images
(``SynthParams.realistic``) with one of these, following DRAEM (Zavrtanik et
al., ICCV 2021) for the masks but taking the fill from the training data
itself instead of an external texture set:

1. shape: with probability ``perlin`` a thresholded two-octave Perlin noise
   mask, else the image's rectangles. The Perlin period is ``4 * half * H`` (>= H / 8;
   blobs about as wide as a rectangle) with
   ``half`` drawn in ``[half_min, half_max]`` (the rectangles' half-size range,
   so the ``size`` and ``count`` knobs drive it), and the covered area is
   ``U(1, 4) * (2 * half)^2`` of the image (threshold at that quantile);
2. fill: with probability ``fill_image`` another image of the batch, rotated by
   90 degrees, zoomed by a factor in [0.5, 2] and circularly shifted (a patch of
   similar material at another orientation and scale: the same material
   unchanged would be a normal region labelled anomalous, which was measured to
   hurt); with probability ``fill_tint`` the image itself with each channel 20-40 %
   darker or brighter (stain-like); otherwise the paper's noise (so
   ``amplitude`` and ``frequency`` still act);
3. opacity drawn in ``[opacity_min, 1] * opacity`` (the ``blending`` knob scales it).

All draws come from the CPU generator after the paper's draws, so the paper's
anomalies (``realistic = 0``) are bit-identical to the original generator.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> m = perlin_masks(2, 32, 32, [0.05, 0.1], [0.05, 0.02], g)
    >>> tuple(m.shape), 0 < float(m[0].mean()) < 0.2
    ((2, 1, 32, 32), True)
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = ["perlin_masks", "perlin_noise", "realistic_anomalies"]


def _fade(t: torch.Tensor) -> torch.Tensor:
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


def perlin_noise(h: int, w: int, period: float, generator: torch.Generator) -> torch.Tensor:
    """One octave of 2-D gradient (Perlin) noise, (h, w), roughly in [-1, 1].

    Args:
        h, w: output size in pixels.
        period: lattice cell size in pixels (> 0).
        generator: CPU generator for the lattice gradients.

    The noise is evaluated on a grid of about 4 samples per lattice cell and
    upsampled bilinearly (it is smooth at that scale; far cheaper at 256 px).
    """
    scale = max(1.0, period / 4.0)
    if scale > 1.0:
        hs, ws = max(2, math.ceil(h / scale)), max(2, math.ceil(w / scale))
        small = _perlin(hs, ws, period * hs / h, generator)
        return F.interpolate(small[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
    return _perlin(h, w, period, generator)


def _perlin(h: int, w: int, period: float, generator: torch.Generator) -> torch.Tensor:
    ry, rx = max(1, math.ceil(h / period)), max(1, math.ceil(w / period))
    angles = 2.0 * math.pi * torch.rand(ry + 1, rx + 1, generator=generator)
    grads = torch.stack([torch.sin(angles), torch.cos(angles)])  # (2, ry+1, rx+1): y and x components
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) / period
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) / period
    y0, x0 = ys.floor().long().clamp_max(ry - 1), xs.floor().long().clamp_max(rx - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    n = {}
    for dy in (0, 1):
        rows = grads.index_select(1, y0 + dy)  # (2, h, rx+1)
        for dx in (0, 1):
            g = rows.index_select(2, x0 + dx)  # (2, h, w)
            n[dy, dx] = g[0] * (fy - dy) + g[1] * (fx - dx)
    u, v = _fade(fy), _fade(fx)
    top = n[0, 0] + u * (n[1, 0] - n[0, 0])
    bottom = n[0, 1] + u * (n[1, 1] - n[0, 1])
    return (top + v * (bottom - top)) * math.sqrt(2.0)


def perlin_masks(
    b: int, h: int, w: int, halves: Sequence[float], areas: Sequence[float], generator: torch.Generator
) -> torch.Tensor:
    """Irregular {0,1} masks (b, 1, h, w): two-octave Perlin noise thresholded to a target area.

    Args:
        b, h, w: batch size and image size.
        halves: per image, the half-size (fraction of the side) that sets the noise period ``4 * half * h``.
        areas: per image, the fraction of pixels to cover, in (0, 1).
        generator: CPU generator.
    """
    out = torch.zeros(b, 1, h, w)
    for i in range(b):
        period = max(h / 8.0, 4.0 * float(halves[i]) * h)  # blobs about 2 * half * h across
        field = perlin_noise(h, w, period, generator) + 0.3 * perlin_noise(h, w, period / 2.0, generator)
        q = torch.quantile(field.flatten(), 1.0 - min(max(float(areas[i]), 1e-3), 0.5))
        out[i, 0] = (field > q).float()
    return out


def _rescaled(image: torch.Tensor, factor: float, h: int, w: int) -> torch.Tensor:
    """``image`` (3, H, W) zoomed by ``factor``, tiled or cropped back to (3, h, w)."""
    z = F.interpolate(image[None], scale_factor=factor, mode="bilinear", align_corners=False)[0]
    reps = (1, math.ceil(h / z.shape[-2]), math.ceil(w / z.shape[-1]))
    return z.repeat(*reps)[:, :h, :w]


def realistic_anomalies(
    images: torch.Tensor,
    rect_mask: torch.Tensor,
    noise: torch.Tensor,
    counts: torch.Tensor,
    params,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Masks, fills and opacities with realistic anomalies for the images chosen by ``params.realistic``.

    Args:
        images: clean RGB in [0, 1], (B, 3, H, W), on CPU.
        rect_mask: the paper's rectangle masks (B, 1, H, W) in {0, 1}.
        noise: the paper's noise fill (B, 3, H, W) in [0, 1] (after ``cutoff``/``amplitude``).
        counts: rectangles per image (B,); images with 0 stay anomaly-free.
        params: a ``SynthParams``.
        generator: CPU generator (drawn from after the paper's draws).

    Returns:
        ``(fill (B,3,H,W), mask (B,1,H,W), opacity (B,))`` on CPU; images not chosen keep the
        paper's rectangles, noise and ``params.opacity``. The caller blends
        ``images * (1 - mask * opacity) + fill * mask * opacity``.
    """
    b, _, h, w = images.shape
    u = torch.rand(b, 10, generator=generator)  # fixed number of draws per image
    chosen = (u[:, 0] < params.realistic) & (counts > 0)
    lo, hi = params.half_min, params.half_max
    halves = (lo + (hi - lo) * u[:, 1]).tolist()
    areas = ((1.0 + 3.0 * u[:, 2]) * (2.0 * (lo + (hi - lo) * u[:, 1])) ** 2).tolist()
    perlin = chosen & (u[:, 3] < params.perlin)
    mask = rect_mask.clone()
    idx = torch.nonzero(perlin).flatten().tolist()
    if idx:
        mask[idx] = perlin_masks(len(idx), h, w, [halves[i] for i in idx], [areas[i] for i in idx], generator)
    # fill: another image of the batch (rotated, rescaled, shifted), the image tinted, or the paper's noise
    partner = (torch.arange(b) + 1 + (u[:, 4] * max(b - 1, 1)).long()) % b  # never itself when b > 1
    v = 2.0 * torch.rand(b, 3, 1, 1, generator=generator) - 1.0
    gains = 1.0 + v.sign() * (0.2 + 0.2 * v.abs())  # each channel 20-40 % darker or brighter
    shift_y, shift_x = (u[:, 5] * h).long().tolist(), (u[:, 6] * w).long().tolist()
    fill = noise.clone()
    for i in torch.nonzero(chosen).flatten().tolist():
        k = u[i, 7].item()
        if k < params.fill_image:
            src = _rescaled(images[int(partner[i])].transpose(-2, -1) if h == w else images[int(partner[i])].flip(-1),
                            2.0 ** (2.0 * u[i, 9].item() - 1.0), h, w)
            fill[i] = torch.roll(src, (shift_y[i], shift_x[i]), dims=(-2, -1))
        elif k < params.fill_image + params.fill_tint:
            fill[i] = (images[i] * gains[i]).clamp(0.0, 1.0)
    opacity = torch.full((b,), params.opacity)
    opacity[chosen] = params.opacity * (params.opacity_min + (1.0 - params.opacity_min) * u[chosen, 8])
    return fill, mask, opacity
