"""The demo dataset's registries and the drawing helpers textures and defects share.

``DEMO_CLASSES`` (class name -> ``DemoClass``) and ``DEMO_DEFECTS`` (defect name ->
``DefectFn``) live here so that ``procedural.py`` (the standard classes and defects) and
``procedural_hard.py`` (hard classes, subtle defects) both register into them without
importing each other. ``cdo_train.data.procedural`` imports both, so importing it
registers everything.

Example:
    >>> s = _smooth_noise(np.random.default_rng(0), 16, 2.0)
    >>> s.shape, s.dtype.name
    ((16, 16), 'float32')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from cdo_deploy.registry import Registry

__all__ = ["DEMO_CLASSES", "DEMO_DEFECTS", "DefectFn", "DemoClass", "TextureFn"]

TextureFn = Callable[[np.random.Generator, int], "tuple[np.ndarray, np.ndarray]"]
"""``(rng, size) -> (image (size, size, 3) float32 in [0, 1], region (size, size) bool)``."""

DefectFn = Callable[[np.ndarray, np.ndarray, np.random.Generator, float], "tuple[np.ndarray, np.ndarray]"]
"""``(image, region, rng, strength) -> (new image, mask (H, W) bool)``; ``strength`` 1.0 = default contrast."""

DEFECT_TYPES = ("scratch", "spot", "hole", "contamination")


@dataclass(frozen=True)
class DemoClass:
    """A registered demo class.

    Attributes:
        texture: makes one defect-free image and its defect region.
        defects: names in ``DEMO_DEFECTS`` used for this class's test set.
        hard: harder class (stochastic / low contrast), left out of the default set.
        description: one line for ``--list``.
    """

    texture: TextureFn
    defects: tuple[str, ...] = DEFECT_TYPES
    hard: bool = False
    description: str = ""


DEMO_CLASSES: Registry[DemoClass] = Registry("demo class")
DEMO_DEFECTS: Registry[DefectFn] = Registry("demo defect")


def _smooth_noise(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise, rescaled to zero mean and unit std, ``(size, size)``."""
    field = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), sigma)
    return (field - field.mean()) / (field.std() + 1e-6)


# --------------------------------------------------------------------------- textures


def _centre(region: np.ndarray, rng: np.random.Generator, margin: int) -> tuple[int, int]:
    """A random ``(x, y)`` inside ``region`` at least ``margin`` px from its edge (if possible)."""
    h, w = region.shape
    inner = region.copy()
    inner[:margin, :] = inner[-margin:, :] = False
    inner[:, :margin] = inner[:, -margin:] = False
    eroded = cv2.erode(inner.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=margin) > 0
    candidates = np.flatnonzero(eroded if eroded.any() else (inner if inner.any() else region))
    idx = int(candidates[rng.integers(len(candidates))])
    return idx % w, idx // w


def _blend(image: np.ndarray, mask: np.ndarray, colour: np.ndarray, alpha: np.ndarray | float) -> np.ndarray:
    """Blend ``colour`` into ``image`` where ``mask``; forces every masked pixel to change by >= 1/255."""
    out = image.copy()
    a = np.broadcast_to(np.asarray(alpha, np.float32), mask.shape)[mask][:, None]
    new = image[mask] * (1 - a) + colour * a
    old8 = np.round(image[mask] * 255)
    same = np.all(np.round(np.clip(new, 0, 1) * 255) == old8, axis=1)
    # Keep the mask exact: a pixel inside the mask must differ after 8-bit rounding.
    bump = np.where(old8[same] > 127, -2.0, 2.0) / 255.0
    new[same] = image[mask][same] + bump
    out[mask] = np.clip(new, 0, 1)
    return out


def _scale(image: np.ndarray) -> float:
    return image.shape[0] / 256.0


def _curved_line(region: np.ndarray, rng: np.random.Generator, s: float, n_points: int, width: int) -> np.ndarray:
    """Mask of a thin, slightly curved polyline inside ``region`` (shared by the scratch defects)."""
    x, y = _centre(region, rng, int(12 * s) + 1)
    angle, length = rng.uniform(0, np.pi), rng.uniform(40, 80) * s
    bend = rng.uniform(-0.4, 0.4)
    t = np.linspace(-0.5, 0.5, n_points)
    pts = np.stack([x + length * t * np.cos(angle + bend * t), y + length * t * np.sin(angle + bend * t)], 1)
    canvas = np.zeros(region.shape, np.uint8)
    cv2.polylines(canvas, [np.round(pts).astype(np.int32)], False, 1, width, cv2.LINE_8)
    return (canvas > 0) & region


def _line_defect(image, region, rng, n_points: int, width: float, dark, light, alpha: float):
    """A curved line blended towards ``dark`` or ``light`` (RGB in [0, 1]) with opacity ``alpha``."""
    s = _scale(image)
    mask = _curved_line(region, rng, s, n_points, max(1, round(width * s)))
    colour = np.array(dark if rng.random() < 0.5 else light, np.float32)
    return _blend(image, mask, colour, min(1.0, alpha)), mask



def _blob(region: np.ndarray, rng: np.random.Generator, s: float, half_max: float, smooth: float,
          quantile: float) -> tuple[np.ndarray, int, int]:
    """An irregular blob inside ``region``: (mask, centre x, centre y).

    Smooth noise in a window of half-size 10..``half_max`` px (at 256 px, times ``s``), pulled down
    away from the centre so one central blob survives the ``quantile`` threshold.
    """
    h, w = region.shape
    x, y = _centre(region, rng, int(16 * s) + 1)
    half = max(4, int(rng.uniform(10, half_max) * s))
    win = _smooth_noise(rng, 2 * half, max(1.0, smooth * s))
    yy, xx = np.mgrid[-half:half, -half:half]
    win -= 3.0 * np.hypot(xx, yy) / half  # favour one central blob
    blob = win > np.quantile(win, quantile)
    canvas = np.zeros((h, w), bool)
    y0, x0 = y - half, x - half
    ys, xs = slice(max(0, y0), min(h, y0 + 2 * half)), slice(max(0, x0), min(w, x0 + 2 * half))
    canvas[ys, xs] = blob[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
    return canvas & region, x, y


