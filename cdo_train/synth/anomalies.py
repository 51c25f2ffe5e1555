"""Synthetic anomalies for MOM, driven by a difficulty parameter t in [0, 1].

The paper's generator (t = 0, every knob at its easy end): per image 0 to 4
axis-aligned rectangles, half-sizes drawn in [H/40, H/10), filled with
uniform noise in [0, 1], pasted opaquely. ``SynthParams`` holds every
quantity a curriculum knob may change (``cdo_train.synth.difficulty`` maps t to
them); the random draws do not depend on the parameters' values (only the
number of draws depends on ``count_max``), so two parameter sets with the same
``count_max`` see the same geometry and noise stream for the same seed.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x, m = synthesize(torch.rand(2, 3, 64, 64), SynthParams(), g)
    >>> tuple(x.shape), tuple(m.shape), float(m.max()) <= 1.0
    ((2, 3, 64, 64), (2, 1, 64, 64), True)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from cdo_deploy.errors import CdoError, did_you_mean

__all__ = ["SynthParams", "butterworth_lowpass", "foreground_mask", "synthesize"]


@dataclass(frozen=True)
class SynthParams:
    """Parameters of one batch of synthetic anomalies (defaults: the paper's).

    Attributes:
        count_min, count_max: rectangles per image, drawn uniformly in [count_min, count_max].
        half_min, half_max: rectangle half-size range as fractions of the image side.
        amplitude: noise band width around mid-grey (1 = full [0, 1]).
        cutoff: Butterworth low-pass cutoff in cycles/pixel (None = white noise).
        opacity: blending of the noise over the image (1 = pasted).
        realistic: share of the anomalous images whose anomaly is realistic instead of the
            paper's (``cdo_train.synth.shapes``); 0 = the paper's generator, bit for bit.
        perlin: share of the realistic anomalies with an irregular Perlin mask (else rectangles).
        fill_image: share filled from another image of the batch (similar material).
        fill_tint: share filled with the image itself, colour-tinted (stain-like); the rest
            gets the paper's noise.
        opacity_min: realistic anomalies' opacity is drawn in ``[opacity_min, 1] * opacity``.
    """

    count_min: int = 0
    count_max: int = 4
    half_min: float = 1.0 / 40.0
    half_max: float = 1.0 / 10.0
    amplitude: float = 1.0
    cutoff: float | None = None
    opacity: float = 1.0
    realistic: float = 0.0
    perlin: float = 1.0
    fill_image: float = 0.5
    fill_tint: float = 0.25
    opacity_min: float = 0.5

    def __post_init__(self) -> None:
        for name in ("realistic", "perlin", "fill_image", "fill_tint", "opacity_min", "opacity", "amplitude"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise CdoError(f"synthetic anomalies: {name} must be in [0, 1], got {value}")
        if self.fill_image + self.fill_tint > 1.0 + 1e-9:
            raise CdoError(f"synthetic anomalies: fill_image + fill_tint must be <= 1, got "
                           f"{self.fill_image} + {self.fill_tint}")
        if not (0 <= self.count_min <= self.count_max and 0.0 < self.half_min <= self.half_max):
            raise CdoError("synthetic anomalies: need 0 <= count_min <= count_max and 0 < half_min <= half_max")

    @classmethod
    def from_dict(cls, values: dict) -> "SynthParams":
        """Build from a config mapping (``synth:`` in YAML); unknown keys fail with suggestions."""
        names = [f.name for f in dataclasses.fields(cls)]
        if not isinstance(values, dict):
            raise CdoError(f"synth must be a mapping of field: value, got {values!r}")
        for key in values:
            if key not in names:
                raise CdoError(f"unknown synth key {key!r}{did_you_mean(key, names)}; known: {', '.join(names)}")
        return cls(**values)

    def replace(self, **kw) -> "SynthParams":
        return dataclasses.replace(self, **kw)


def butterworth_lowpass(noise: torch.Tensor, cutoff: float, order: int = 2) -> torch.Tensor:
    """Low-pass zero-mean noise (B, C, H, W) with a Butterworth filter, keeping its std."""
    h, w = noise.shape[-2:]
    fy = torch.fft.fftfreq(h, device=noise.device).view(-1, 1)
    fx = torch.fft.rfftfreq(w, device=noise.device).view(1, -1)
    radius = torch.sqrt(fy * fy + fx * fx)
    gain = 1.0 / (1.0 + (radius / max(cutoff, 1e-6)) ** (2 * order))
    out = torch.fft.irfft2(torch.fft.rfft2(noise) * gain, s=(h, w))
    std = out.std(dim=(-2, -1), keepdim=True).clamp_min(1e-8)
    return out / std * noise.std(dim=(-2, -1), keepdim=True)


def foreground_mask(images: torch.Tensor, tol: float = 0.08) -> torch.Tensor:
    """Rough object mask (B, 1, H, W): pixels that differ from the border's median colour."""
    border = torch.cat(
        [images[..., 0, :], images[..., -1, :], images[..., :, 0], images[..., :, -1]], dim=-1
    )  # (B, 3, 2W+2H)
    bg = border.median(dim=-1).values[..., None, None]
    return ((images - bg).abs().amax(1, keepdim=True) > tol).to(images.dtype)


def synthesize(
    images: torch.Tensor,
    params: SynthParams,
    generator: torch.Generator,
    foreground_only: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste synthetic anomalies into a batch, on whatever device ``images`` live.

    The one generator of every training path (single process, DDP, the ordering warm-up, CPU or
    GPU): every random draw comes from the CPU ``generator`` in the same order (counts, rectangles,
    noise), so a seed gives the same anomalies whatever the device; the masks are built with one
    vectorised comparison on the images' device and the noise is moved there.

    Args:
        images: RGB in [0, 1], (B, 3, H, W).
        params: what the anomalies look like.
        generator: CPU ``torch.Generator`` (all draws come from it: deterministic per seed).
        foreground_only: keep anomalies on the object (object classes on a plain background).

    Returns:
        ``(images_with_anomalies (B,3,H,W), mask (B,1,H,W) in {0,1})`` on ``images.device``.
    """
    b, _, h, w = images.shape
    dev = images.device
    counts = torch.randint(params.count_min, params.count_max + 1, (b,), generator=generator)
    kmax = max(params.count_max, 1)
    geo = torch.rand(b, kmax, 4, generator=generator)  # cy, cx, half-h, half-w in [0, 1)
    noise = torch.rand(b, 3, h, w, generator=generator)
    mask = _rectangles(counts, geo.double(), h, w, params.half_min, params.half_max, dev)
    if params.cutoff is not None:
        noise = 0.5 + butterworth_lowpass(noise - 0.5, params.cutoff)
    if params.amplitude != 1.0:
        noise = 0.5 + (noise - 0.5) * params.amplitude
    noise = noise.clamp(0.0, 1.0)
    opacity: torch.Tensor | float = params.opacity
    if params.realistic > 0.0:  # extra draws only here: the paper's path stays bit-identical
        from .shapes import realistic_anomalies

        noise, mask, op = realistic_anomalies(images.detach().float().cpu(), mask.cpu(), noise, counts, params,
                                              generator)
        opacity = op.view(b, 1, 1, 1).to(dev, images.dtype)
    noise = noise.to(dev, images.dtype)
    mask = mask.to(dev, images.dtype)
    if foreground_only:
        mask = mask * foreground_mask(images)
    alpha = mask * opacity
    return images * (1.0 - alpha) + noise * alpha, mask


def _rectangles(counts: torch.Tensor, geo: torch.Tensor, h: int, w: int, lo: float, hi: float,
                device: torch.device) -> torch.Tensor:
    """The union of each image's first ``counts[i]`` rectangles, (B, 1, H, W) float32 {0, 1} on ``device``.

    ``geo`` (B, K, 4) float64 holds (cy, cx, half-h, half-w) in [0, 1); a rectangle spans rows
    ``max(0, y - hh) .. y + hh - 1`` with ``y = int(cy * h)``, ``hh = max(1, int(h * (lo + (hi - lo) * sh)))``
    (float64 arithmetic, as Python floats: the same pixels as the loop it replaced), clipped to the image.
    """
    b, kmax, _ = geo.shape
    hh = (h * (lo + (hi - lo) * geo[..., 2])).long().clamp_min(1)
    hw = (w * (lo + (hi - lo) * geo[..., 3])).long().clamp_min(1)
    cy, cx = (geo[..., 0] * h).long(), (geo[..., 1] * w).long()
    on = torch.arange(kmax)[None, :] < counts[:, None]
    box = torch.stack([(cy - hh).clamp_min(0), cy + hh, (cx - hw).clamp_min(0), cx + hw], -1)  # (B, K, 4)
    box = box.to(device)[..., None, None]
    ys = torch.arange(h, device=device).view(1, 1, h, 1)
    xs = torch.arange(w, device=device).view(1, 1, 1, w)
    inside = (ys >= box[..., 0, :, :]) & (ys < box[..., 1, :, :]) & (xs >= box[..., 2, :, :]) & (xs < box[..., 3, :, :])
    return (inside & on.to(device)[..., None, None]).any(1, keepdim=True).float()
