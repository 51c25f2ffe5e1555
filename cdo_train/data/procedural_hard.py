"""Hard demo classes and defects: stochastic, fine-grained and coloured textures, subtle defects.

Registered into ``DEMO_CLASSES`` / ``DEMO_DEFECTS`` (imported by
``cdo_train.data.procedural``, from ``procedural_base``), all flagged ``hard`` so the default demo set is
unchanged. They mimic the surfaces where plain CDO is weak on real data:

=========  ==================================================================
class      texture
=========  ==================================================================
turf       stochastic grass / fibre: thousands of short, randomly tilted blades
cells      colour micrograph: eosin-pink stroma and purple nuclei, fine grained
speckle    low-contrast stone: beige fine speckle with sparse dark specks
=========  ==================================================================

=============  ==============================================================
defect         what it looks like
=============  ==============================================================
faint_scratch  a 1-2 px line, 20 % towards black or white (low contrast)
soft_stain     a translucent stain whose opacity fades smoothly to its edge
patch          similar material: the surface itself, rotated and rescaled
               (coarser), pasted into an irregular blob
pit            a tiny (2-3 px radius) shaded depression
=============  ==============================================================

Example:
    >>> rng = np.random.default_rng(0)
    >>> image, region = DEMO_CLASSES.get("turf").texture(rng, 64)
    >>> out, mask = DEMO_DEFECTS.get("patch")(image, region, rng, 1.0)
    >>> bool(np.array_equal(np.any(np.round(out * 255) != np.round(image * 255), axis=2), mask))
    True
"""

from __future__ import annotations

import cv2
import numpy as np

from .procedural_base import (
    DEMO_CLASSES,
    DEMO_DEFECTS,
    DemoClass,
    _blend,
    _blob,
    _centre,
    _line_defect,
    _scale,
    _smooth_noise,
)

__all__ = ["HARD_DEFECT_TYPES"]

HARD_DEFECT_TYPES = ("faint_scratch", "soft_stain", "patch", "pit")


# --------------------------------------------------------------------------- textures


def _turf(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Grass / fibre: short blades, random tilt and shade, over a dark smooth background."""
    s = size / 256.0
    shade = _smooth_noise(rng, size, 10 * s)
    image = (np.array([0.16, 0.30, 0.10], np.float32) * (1.0 + 0.15 * shade)[:, :, None]).astype(np.float32)
    n = int(2600 * s * s) + 20
    xy = rng.uniform(-8 * s, size + 8 * s, (n, 2))
    angle = np.pi / 2 + rng.normal(0.0, 0.45, n)
    length = rng.uniform(6, 15, n) * s
    tone = rng.uniform(0.55, 1.15, n)
    hue = rng.uniform(-0.06, 0.06, n)
    end = xy + length[:, None] * np.stack([np.cos(angle), -np.sin(angle)], 1)
    width = max(1, round(1.2 * s))
    for i in range(n):
        colour = (float(0.30 * tone[i] + hue[i]), float(0.55 * tone[i]), float(0.16 * tone[i] - hue[i]))
        p0 = (int(round(xy[i, 0])), int(round(xy[i, 1])))
        p1 = (int(round(end[i, 0])), int(round(end[i, 1])))
        cv2.line(image, p0, p1, colour, width, cv2.LINE_AA)
    image = cv2.GaussianBlur(image, (0, 0), 0.5)
    return np.clip(image * rng.uniform(0.95, 1.05), 0, 1).astype(np.float32), np.ones((size, size), bool)


def _cells(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """H&E-like micrograph: pink stroma (two noise scales), many small purple nuclei."""
    s = size / 256.0
    field = 0.6 * _smooth_noise(rng, size, 5 * s) + 0.4 * _smooth_noise(rng, size, 1.2 * s + 0.3)
    pink = np.array([0.90, 0.62, 0.74], np.float32)
    pale = np.array([0.97, 0.86, 0.90], np.float32)
    t = (1.0 / (1.0 + np.exp(-1.5 * field)))[:, :, None]
    image = (pale + (pink - pale) * t).astype(np.float32)
    n = int(260 * s * s) + 4
    canvas = np.zeros((size, size), np.float32)
    for _ in range(n):
        c = (int(rng.uniform(0, size)), int(rng.uniform(0, size)))
        axes = (max(1, int(rng.uniform(2.0, 4.0) * s)), max(1, int(rng.uniform(1.5, 3.0) * s)))
        cv2.ellipse(canvas, c, axes, float(rng.uniform(0, 180)), 0, 360, float(rng.uniform(0.6, 1.0)), -1,
                    cv2.LINE_AA)
    canvas = cv2.GaussianBlur(canvas, (0, 0), 0.6)[:, :, None]
    nucleus = np.array([0.36, 0.20, 0.52], np.float32)
    image = image * (1 - 0.85 * canvas) + nucleus * 0.85 * canvas
    return np.clip(image * rng.uniform(0.97, 1.03), 0, 1).astype(np.float32), np.ones((size, size), bool)


def _speckle(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Low-contrast stone: fine speckle on a beige base, sparse small dark specks."""
    s = size / 256.0
    field = 0.35 * _smooth_noise(rng, size, 8 * s) + 0.5 * _smooth_noise(rng, size, 0.7)
    image = np.array([0.72, 0.66, 0.57], np.float32) * (1.0 + 0.045 * field)[:, :, None]
    specks = np.zeros((size, size), np.float32)
    n = int(120 * s * s) + 2
    for _ in range(n):
        c = (int(rng.uniform(0, size)), int(rng.uniform(0, size)))
        cv2.circle(specks, c, max(1, int(rng.uniform(0.8, 2.2) * s)), float(rng.uniform(0.25, 0.6)), -1,
                   cv2.LINE_AA)
    image = image * (1.0 - 0.5 * specks[:, :, None])
    return np.clip(image * rng.uniform(0.97, 1.03), 0, 1).astype(np.float32), np.ones((size, size), bool)


DEMO_CLASSES.register("turf")(DemoClass(_turf, HARD_DEFECT_TYPES, True,
                                        "stochastic grass / fibre blades (hard: stochastic)"))
DEMO_CLASSES.register("cells")(DemoClass(_cells, HARD_DEFECT_TYPES, True,
                                         "colour micrograph, pink stroma and nuclei (hard: fine, coloured)"))
DEMO_CLASSES.register("speckle")(DemoClass(_speckle, HARD_DEFECT_TYPES, True,
                                           "low-contrast speckled stone (hard: low contrast)"))


# --------------------------------------------------------------------------- defects


def _faint_scratch(image: np.ndarray, region: np.ndarray, rng: np.random.Generator, strength: float):
    """A thin, slightly curved line only 20 % of the way to black or white."""
    return _line_defect(image, region, rng, 8, 1.5, [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], 0.2 * strength)


def _soft_stain(image: np.ndarray, region: np.ndarray, rng: np.random.Generator, strength: float):
    """A translucent stain with a smooth opacity fall-off; the mask is where opacity >= 25 % of its peak."""
    s = _scale(image)
    h, w = region.shape
    x, y = _centre(region, rng, int(18 * s) + 1)
    ax, ay, rot = rng.uniform(8, 16) * s, rng.uniform(6, 12) * s, rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u = ((xx - x) * np.cos(rot) + (yy - y) * np.sin(rot)) / max(ax, 1.0)
    v = (-(xx - x) * np.sin(rot) + (yy - y) * np.cos(rot)) / max(ay, 1.0)
    profile = np.clip(1.0 - (u * u + v * v), 0.0, 1.0)
    mask = (profile >= 0.25) & region
    if not mask.any():  # tiny images: at least the centre pixel
        mask[y, x] = True
    colour = np.array([0.55, 0.40, 0.18], np.float32) * rng.uniform(0.8, 1.2)
    alpha = np.where(mask, min(1.0, 0.35 * strength) * np.maximum(profile, 0.25), 0.0)
    return _blend(image, mask, colour, alpha), mask


def _patch(image: np.ndarray, region: np.ndarray, rng: np.random.Generator, strength: float):
    """Similar material: the surface rotated and rescaled 1.5x (coarser), pasted into an irregular blob."""
    h, w = region.shape
    mask, x, y = _blob(region, rng, _scale(image), 16, 3.0, 0.7)
    rot = cv2.getRotationMatrix2D((float(x), float(y)), float(rng.uniform(60, 120)), 1.5)
    source = cv2.warpAffine(image, rot, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    tint = rng.uniform(0.92, 1.08, 3).astype(np.float32)
    return _blend(image, mask, np.clip(source[mask] * tint, 0, 1), min(1.0, 0.9 * strength)), mask


def _pit(image: np.ndarray, region: np.ndarray, rng: np.random.Generator, strength: float):
    """A tiny depression: a dark disc of radius 2-3 px (at 256 px) shaded towards its centre."""
    s = _scale(image)
    h, w = region.shape
    x, y = _centre(region, rng, int(8 * s) + 1)
    radius = max(1.0, rng.uniform(2.0, 3.5) * s)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.hypot(xx - x, yy - y) / radius
    mask = (r <= 1.0) & region
    colour = np.array([0.05, 0.04, 0.03], np.float32)
    alpha = np.clip((0.25 + 0.25 * (1.0 - r)) * strength, 0.0, 1.0)
    return _blend(image, mask, colour, alpha), mask


for _name, _fn in zip(HARD_DEFECT_TYPES, (_faint_scratch, _soft_stain, _patch, _pit)):
    DEMO_DEFECTS.register(_name)(_fn)
