"""Decision thresholds: from ``model.json``, overridden without re-export.

Rules, in order:

0. The bundle thresholds ``T_b`` / ``P_b`` are ``model.json`` ``thresholds``, or,
   for a variant listed under ``variant_thresholds`` (``cdo-export --int8``
   re-calibrates the int8 variant on its own outputs by training's rule, because
   int8 noise raises the whole map), that variant's thresholds and normal
   statistics.
1. ``threshold`` (``--threshold``) replaces the image threshold ``T_b`` of the
   bundle; ``pixel_threshold`` (``--pixel-threshold``) replaces the pixel
   threshold ``P_b``. A bundle without a pixel threshold uses the image one.
2. ``sensitivity`` ``s`` in [0, 1] (``--sensitivity``) moves both thresholds
   along one line; ``s = 0.5`` keeps the bundle thresholds, higher is more NG::

       D    = T_b - p99          (p99: 99th percentile of normal scores in
                                  model.json normal_stats; if D <= 0 or p99 is
                                  missing: D = std, else 0.1 * |T_b|)
       T(s) = T_b + (1 - 2 s) * D
       P(s) = P_b + (T(s) - T_b)

   So ``s = 1`` puts the image threshold at the p99 of normal parts (about 1 %
   of good parts would be NG), ``s = 0`` as far above ``T_b`` as p99 is below.
   The pixel threshold shifts by the same amount (map and score share units).

Decisions: ``NG`` iff ``score >= image threshold`` (the image threshold alone
decides); defect regions are the connected components of
``anomaly_map >= pixel threshold``, and an NG part without one gets the
component around the map's maximum, flagged ``map_max``
(:mod:`cdo_deploy.postprocess`). Both thresholds are in map units, and with the
``max`` score rule a pixel threshold at or below the image threshold always
finds the defect of an NG part.

Example:
    >>> from cdo_deploy.bundle import BundleMeta
    >>> meta = BundleMeta(height=8, width=8, backbone="x", image_threshold=0.8,
    ...                   pixel_threshold=0.7, normal_stats={"p99": 0.6})
    >>> resolve_thresholds(meta, sensitivity=1.0)
    Thresholds(image=0.6, pixel=0.5, source='bundle, sensitivity 1')
"""

from __future__ import annotations

from dataclasses import dataclass

from .bundle import BundleMeta
from .errors import CdoError

__all__ = ["Thresholds", "fmt_threshold", "normal_stats", "resolve_thresholds", "sensitivity_shift"]


@dataclass(frozen=True)
class Thresholds:
    """Image and pixel thresholds in model score units, and where they came from."""

    image: float
    pixel: float
    source: str


def normal_stats(meta: BundleMeta, variant: str | None = None) -> dict[str, float]:
    """Calibration statistics of good scores: the variant's own (re-calibrated) ones, else the bundle's."""
    own = (meta.variant_thresholds or {}).get(variant or "") or {}
    return dict(own.get("normal_stats") or meta.normal_stats or {})


def sensitivity_shift(meta: BundleMeta, image_threshold: float, s: float, variant: str | None = None) -> float:
    """Additive change of the thresholds for sensitivity ``s`` (see module docstring)."""
    if not 0.0 <= s <= 1.0:
        raise CdoError(f"--sensitivity must be within [0, 1] (0.5 = bundle threshold), got {s}")
    stats = normal_stats(meta, variant)
    spread = None
    if stats.get("p99") is not None:
        spread = image_threshold - float(stats["p99"])
    if spread is None or spread <= 0:
        std = stats.get("std")
        spread = float(std) if std else 0.1 * abs(image_threshold) or 1e-6
    return (1.0 - 2.0 * s) * spread


def resolve_thresholds(
    meta: BundleMeta,
    threshold: float | None = None,
    pixel_threshold: float | None = None,
    sensitivity: float | None = None,
    variant: str | None = None,
) -> Thresholds:
    """Thresholds to use, from the bundle (or the variant's own) and the overrides.

    Raises:
        CdoError: no image threshold anywhere, or sensitivity out of range.
    """
    own = (meta.variant_thresholds or {}).get(variant or "") or {}
    base_image = own.get("image", meta.image_threshold)
    base_pixel = own.get("pixel", meta.pixel_threshold) if own else meta.pixel_threshold
    image = base_image if threshold is None else float(threshold)
    if image is None:
        raise CdoError(
            "the bundle has no image threshold (model.json thresholds.image is null); "
            "pass --threshold SCORE"
        )
    pixel = pixel_threshold if pixel_threshold is not None else base_pixel
    pixel = float(image if pixel is None else pixel)
    parts = ["--threshold" if threshold is not None else (f"bundle {variant}" if own else "bundle")]
    if sensitivity is not None:
        shift = sensitivity_shift(meta, float(image), float(sensitivity), variant)
        image, pixel = float(image) + shift, pixel + shift
        parts.append(f"sensitivity {sensitivity:g}")
    return Thresholds(image=round(float(image), 9), pixel=round(pixel, 9), source=", ".join(parts))


def fmt_threshold(value: float | None) -> str:
    """A threshold for people: 4 significant digits (``model.json`` keeps the full value).

    Example:
        >>> fmt_threshold(0.7412345678901234), fmt_threshold(None)
        ('0.7412', 'none')
    """
    return "none" if value is None else f"{value:.4g}"
