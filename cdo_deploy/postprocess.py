"""Post-processing: decision and defect regions from the model outputs.

1. Decision: ``NG`` iff ``score >= image threshold`` (see :mod:`cdo_deploy.thresholds`).
2. Regions: the anomaly map at model resolution is thresholded at the pixel
   threshold; ``cv2.connectedComponentsWithStats`` (8-connectivity) gives one
   region per component. Boxes and areas are scaled to original-image pixels;
   the peak is the highest map value inside the component.
3. The full-resolution map is not computed here: ``Prediction.anomaly_map_full``
   resizes it lazily, only for overlays, which keeps per-image latency low.

Example:
    >>> import numpy as np
    >>> m = np.zeros((4, 4), np.float32); m[1:3, 2:4] = 1.0
    >>> [r.to_dict() for r in find_regions(m, 0.5, (8, 8))]
    [{'box': [4, 2, 8, 6], 'area': 16, 'peak': 1.0}]
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .results import Region

__all__ = ["find_regions"]


def find_regions(
    anomaly_map: np.ndarray,
    pixel_threshold: float,
    image_shape: tuple[int, int],
    min_area: int = 0,
    max_regions: int = 32,
) -> list[Region]:
    """Connected regions of ``anomaly_map >= pixel_threshold``.

    Args:
        anomaly_map: (h, w) float map at model resolution.
        pixel_threshold: map value at or above which a pixel is defective.
        image_shape: (H, W) of the original image; boxes and areas are scaled to it.
        min_area: drop regions smaller than this many original-image pixels.
        max_regions: keep at most this many, highest peak first.

    Returns:
        Regions sorted by peak, highest first; empty when nothing exceeds the threshold.
    """
    h, w = anomaly_map.shape
    mask = (anomaly_map >= pixel_threshold).astype(np.uint8)
    if not mask.any():
        return []
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    peaks = np.full(n, -np.inf, dtype=np.float64)
    np.maximum.at(peaks, labels.ravel().astype(np.intp), anomaly_map.ravel().astype(np.float64))
    big_h, big_w = image_shape
    sy, sx = big_h / h, big_w / w
    regions = []
    for i in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[i])
        scaled_area = int(round(area * sx * sy))
        if scaled_area < min_area:
            continue
        regions.append(Region(
            x0=max(0, math.floor(x * sx)),
            y0=max(0, math.floor(y * sy)),
            x1=min(big_w, math.ceil((x + bw) * sx)),
            y1=min(big_h, math.ceil((y + bh) * sy)),
            area=scaled_area,
            peak=float(peaks[i]),
        ))
    regions.sort(key=lambda r: r.peak, reverse=True)
    return regions[:max_regions]
