"""Post-processing: decision and defect regions from the model outputs.

How the two thresholds relate (map and score share units: the score is the
map's maximum, or its top-k mean):

1. Decision: ``NG`` iff ``score >= image threshold``. The image threshold
   alone decides (see :mod:`cdo_deploy.thresholds`).
2. Regions locate the defect: the anomaly map at model resolution is
   thresholded at the pixel threshold; OpenCV's connected components
   (8-connectivity) give one region (``kind="threshold"``) per component.
   Boxes and areas are scaled to original-image pixels; the peak is the
   highest map value inside the component. OK parts may have regions too
   (spots above the pixel threshold whose score stays below the image one).
   Only the bounding rectangle of the pixels above the threshold is labelled
   (BBDT scan) and only those pixels enter the peak reduction: the same
   regions as labelling the whole map, for a typical defect on a 256x256
   map 0.10 ms instead of 1.09 ms.
3. Every NG part shows why: when no region passes the pixel threshold (it is
   above the image threshold, or ``min_area`` dropped every region), the
   component of ``anomaly_map >= min(image, pixel threshold)`` that holds the
   map's maximum is reported, flagged ``kind="map_max"``. It always exists:
   the maximum is at or above the score, which passed the image threshold.
4. The full-resolution map is not computed here: ``Prediction.anomaly_map_full``
   resizes it lazily, only for overlays, which keeps per-image latency low.

Example:
    >>> import numpy as np
    >>> m = np.zeros((4, 4), np.float32); m[1:3, 2:4] = 1.0
    >>> [r.to_dict() for r in find_regions(m, 0.5, (8, 8))]
    [{'box': [4, 2, 8, 6], 'area': 16, 'peak': 1.0, 'kind': 'threshold'}]
    >>> [r.kind for r in locate_defects(m, True, 0.9, 1.5, (8, 8))]
    ['map_max']
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .results import Region

__all__ = ["find_regions", "locate_defects", "peak_region"]


def _components(anomaly_map: np.ndarray, level: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]] | None:
    """(labels, stats, peaks, origin) of the 8-connected components of ``anomaly_map >= level``.

    Only the bounding rectangle of the pixels at or above ``level`` is labelled: ``labels``
    covers that rectangle, whose top-left corner in the map is ``origin`` (row, col); ``stats``
    are in map coordinates. ``None`` when no pixel reaches ``level``.
    """
    mask = anomaly_map >= level
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    r0, c0 = int(rows[0]), int(cols[0])
    crop = np.s_[r0:int(rows[-1]) + 1, c0:int(cols[-1]) + 1]
    inside = mask[crop]
    n, labels, stats, _ = cv2.connectedComponentsWithStatsWithAlgorithm(
        inside.view(np.uint8), 8, cv2.CV_32S, cv2.CCL_BBDT)
    peaks = np.full(n, -np.inf, dtype=np.float64)
    np.maximum.at(peaks, labels[inside], anomaly_map[crop][inside].astype(np.float64))
    stats[:, 0] += c0
    stats[:, 1] += r0
    return labels, stats, peaks, (r0, c0)


def _region(stat: np.ndarray, peak: float, map_hw: tuple[int, int], image_shape: tuple[int, int],
            kind: str) -> Region:
    x, y, bw, bh, area = (int(v) for v in stat)
    big_h, big_w = image_shape
    sy, sx = big_h / map_hw[0], big_w / map_hw[1]
    return Region(x0=max(0, math.floor(x * sx)), y0=max(0, math.floor(y * sy)),
                  x1=min(big_w, math.ceil((x + bw) * sx)), y1=min(big_h, math.ceil((y + bh) * sy)),
                  area=int(round(area * sx * sy)), peak=float(peak), kind=kind)


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
    found = _components(anomaly_map, pixel_threshold)
    if found is None:
        return []
    _, stats, peaks, _ = found
    regions = [_region(stats[i], peaks[i], anomaly_map.shape, image_shape, "threshold") for i in range(1, len(stats))]
    regions = [r for r in regions if r.area >= min_area]
    regions.sort(key=lambda r: r.peak, reverse=True)
    return regions[:max_regions]


def peak_region(anomaly_map: np.ndarray, level: float, image_shape: tuple[int, int]) -> Region:
    """The component of ``anomaly_map >= level`` holding the map's maximum, flagged ``kind="map_max"``.

    ``level`` is lowered to the maximum when above it, so the region is never empty.
    """
    iy, ix = np.unravel_index(int(np.argmax(anomaly_map)), anomaly_map.shape)
    level = min(float(level), float(anomaly_map[iy, ix]))
    found = _components(anomaly_map, level)
    if found is None:  # only a NaN map: nothing compares >= its maximum; flag the whole part
        h, w = image_shape
        return Region(x0=0, y0=0, x1=int(w), y1=int(h), area=int(h) * int(w), peak=float("nan"), kind="map_max")
    labels, stats, peaks, (r0, c0) = found
    lab = int(labels[iy - r0, ix - c0])
    return _region(stats[lab], peaks[lab], anomaly_map.shape, image_shape, "map_max")


def locate_defects(
    anomaly_map: np.ndarray,
    is_ng: bool,
    image_threshold: float,
    pixel_threshold: float,
    image_shape: tuple[int, int],
    min_area: int = 0,
) -> list[Region]:
    """Regions of a result: :func:`find_regions`, plus the flagged :func:`peak_region` for an NG part without any."""
    regions = find_regions(anomaly_map, pixel_threshold, image_shape, min_area=min_area)
    if is_ng and not regions:
        regions = [peak_region(anomaly_map, min(image_threshold, pixel_threshold), image_shape)]
    return regions
