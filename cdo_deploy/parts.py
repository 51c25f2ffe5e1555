"""Parts to time ``cdo-bench`` on when no labelled data is given: never only noise.

Good parts are, in this order of preference:

1. the bundle's calibration images (``model.json`` ``calibration_images``: the good
   training images ``cdo-export`` checked parity and calibrated int8 on), where
   they are readable on this machine;
2. synthetic parts: a smooth surface (low-frequency shading, a periodic weave and
   fine grain) at ``image_hw``.

Defective parts are the same good parts with a synthetic defect drawn in (a dark
scratch and a bright spot, about a tenth of the part), so post-processing is timed
with regions above the threshold as well as without.

Example:
    >>> good, bad, what = timing_parts([], 4, (64, 80))
    >>> len(good), good[0].shape, good[0].dtype.name, what
    (4, (64, 80, 3), 'uint8', 'synthetic parts (4 good + 4 with a drawn defect)')
    >>> bool((good[0] != bad[0]).any())
    True
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from .preprocess import decode_image

__all__ = ["add_defect", "synthetic_part", "timing_parts"]

log = logging.getLogger(__name__)


def synthetic_part(hw: tuple[int, int], seed: int) -> np.ndarray:
    """(H, W, 3) uint8 BGR surface: shading, a periodic pattern and grain."""
    rng = np.random.default_rng(seed)
    h, w = hw
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    period = rng.uniform(6.0, 14.0)
    weave = np.sin(2 * np.pi * x / period) * np.sin(2 * np.pi * y / period)
    shade = np.cos(2 * np.pi * (x / w * rng.uniform(0.3, 1.0) + y / h * rng.uniform(0.3, 1.0)))
    grain = cv2.GaussianBlur(rng.standard_normal((h, w)).astype(np.float32), (0, 0), 1.0)
    base = 120 + 25 * weave + 15 * shade + 12 * grain
    tint = rng.uniform(0.8, 1.2, size=3).astype(np.float32)
    return np.clip(base[..., None] * tint, 0, 255).astype(np.uint8)


def add_defect(image: np.ndarray, seed: int) -> np.ndarray:
    """A copy of ``image`` with a dark scratch and a bright spot drawn in."""
    rng = np.random.default_rng(seed + 10_007)
    out = np.ascontiguousarray(image.copy())
    h, w = out.shape[:2]
    size = max(2, min(h, w) // 10)
    y0, x0 = int(rng.integers(size, h - size)), int(rng.integers(size, w - size))
    colour = (0, 0, 0) if out.ndim == 2 else (20,) * out.shape[2]
    end = (min(w - 1, x0 + 2 * size), min(h - 1, y0 + size))
    cv2.line(out, (x0, y0), end, colour, thickness=max(1, size // 6))
    bright = (255,) * (1 if out.ndim == 2 else out.shape[2])
    cv2.circle(out, (int(rng.integers(size, w - size)), int(rng.integers(size, h - size))), max(1, size // 2),
               bright, thickness=-1)
    return out


def _read(paths: list[str], n: int) -> list[np.ndarray]:
    out = []
    for p in paths:
        if len(out) == n:
            break
        try:
            out.append(decode_image(Path(p).read_bytes(), Path(p).name))
        except Exception as e:  # noqa: BLE001 - an unreadable calibration image is skipped, not fatal
            log.debug("calibration image %s not usable here: %s", p, e)
    return out


def timing_parts(calibration_images: list[str], n: int, image_hw: tuple[int, int]
                 ) -> tuple[list[np.ndarray], list[np.ndarray], str]:
    """``n`` good and ``n`` defective parts to time, and a description of them.

    Args:
        calibration_images: image paths from ``model.json`` (may be empty or absent here).
        n: parts of each kind (at most ``n`` calibration images are read; fewer are cycled).
        image_hw: (H, W) of synthetic parts.

    Returns:
        ``(good, defective, description)``; images are BGR uint8 as a camera delivers them.
    """
    good = _read(list(calibration_images), n)
    if good:
        what = f"calibration images ({len(good)} good + {len(good)} with a drawn defect)"
        good = [good[i % len(good)] for i in range(n)]
    else:
        good = [synthetic_part(image_hw, i) for i in range(n)]
        what = f"synthetic parts ({n} good + {n} with a drawn defect)"
    return good, [add_defect(img, i) for i, img in enumerate(good)], what
