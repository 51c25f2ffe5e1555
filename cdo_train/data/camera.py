"""A simulated line camera: what a photograph adds to a clean procedural image.

Procedural textures are too clean: a gain measured on them did not carry over to
photographs of real surfaces. :func:`photograph` turns a clean RGB image into
what a camera would deliver, with per-image parameters drawn from ``rng``:

==================  ==============================================================
effect              model
==================  ==============================================================
exposure / colour   global gain 0.85-1.15, white balance +-4 % per channel
lighting gradient   multiplicative linear ramp, random direction, +-3-12 %
vignetting          radial fall-off to 80-95 % at the corners, random centre
defocus             Gaussian blur, sigma 0.3-1.0 px at 256 px (scales with size)
sensor noise        Poisson-Gaussian: shot noise (full well ~ 600-1500 e-) + read
                    noise (1-2.5 grey levels)
compression         JPEG, quality 72-95
==================  ==============================================================

The same effects hit good and defective images alike; a defect's mask stays the
set of pixels the defect changed before the camera (blur and noise spread it
by a pixel or so, as in a photograph, but the mask is not redrawn).

Example:
    >>> img = np.full((64, 64, 3), 128, np.uint8)
    >>> out = photograph(img, np.random.default_rng(0))
    >>> out.shape, out.dtype, bool(out.std() > 0)
    ((64, 64, 3), dtype('uint8'), True)
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["photograph"]


def _lighting(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size) multiplicative field: exposure x linear ramp x vignette."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(1, size - 1) - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    ramp = 1.0 + rng.uniform(0.03, 0.12) * 2 * (np.cos(angle) * xx + np.sin(angle) * yy)
    cx, cy = rng.uniform(-0.15, 0.15, 2)
    r2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / 0.5
    vignette = 1.0 - rng.uniform(0.05, 0.20) * r2
    return (rng.uniform(0.85, 1.15) * ramp * vignette).astype(np.float32)


def photograph(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What a line camera would deliver for the clean ``image``.

    Args:
        image: (H, W, 3) uint8 RGB, square.
        rng: the per-image generator (fixes every effect's parameters).

    Returns:
        (H, W, 3) uint8 RGB.
    """
    size = image.shape[0]
    x = image.astype(np.float32) / 255.0
    x = x * _lighting(rng, size)[:, :, None] * (1.0 + rng.uniform(-0.04, 0.04, 3)).astype(np.float32)
    sigma = rng.uniform(0.3, 1.0) * size / 256.0
    x = cv2.GaussianBlur(x, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)
    full_well = rng.uniform(600, 1500)
    x = np.clip(x, 0.0, 1.0)
    x = rng.poisson(x * full_well).astype(np.float32) / full_well
    x = x + rng.normal(0.0, rng.uniform(1.0, 2.5) / 255.0, x.shape).astype(np.float32)
    out = np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)
    quality = int(rng.integers(72, 96))
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV only fails here on invalid arrays
        raise RuntimeError("JPEG encoding failed")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
