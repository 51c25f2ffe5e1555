"""Post-processing (regions) and threshold rules, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from cdo_deploy.bundle import BundleMeta
from cdo_deploy.errors import CdoError
from cdo_deploy.postprocess import find_regions
from cdo_deploy.thresholds import resolve_thresholds


def test_regions_boxes_in_original_coordinates():
    m = np.zeros((8, 8), np.float32)
    m[1:3, 1:4] = 0.9  # 2x3 component, peak 0.9
    m[6, 6] = 0.95     # single pixel, peak 0.95
    regions = find_regions(m, 0.5, (80, 40))  # y scale 10, x scale 5
    assert [r.to_dict() for r in regions] == [
        {"box": [30, 60, 35, 70], "area": 50, "peak": 0.95, "kind": "threshold"},
        {"box": [5, 10, 20, 30], "area": 300, "peak": 0.9, "kind": "threshold"},
    ]
    assert [r.peak for r in find_regions(m, 0.5, (80, 40), min_area=100)] == [pytest.approx(0.9)]
    assert len(find_regions(m, 0.5, (8, 8), max_regions=1)) == 1


def test_no_region_below_threshold_and_threshold_is_inclusive():
    m = np.full((4, 4), 0.5, np.float32)
    assert find_regions(m, 0.51, (4, 4)) == []
    (r,) = find_regions(m, 0.5, (4, 4))
    assert (r.x0, r.y0, r.x1, r.y1, r.area) == (0, 0, 4, 4, 16)


def test_diagonal_pixels_are_one_region_8_connectivity():
    m = np.eye(5, dtype=np.float32)
    assert len(find_regions(m, 0.5, (5, 5))) == 1


def _meta(**kw):
    base = dict(height=8, width=8, backbone="x", image_threshold=0.8, pixel_threshold=0.7,
                normal_stats={"p99": 0.6, "std": 0.05})
    base.update(kw)
    return BundleMeta(**base)


def test_thresholds_from_bundle_and_overrides():
    t = resolve_thresholds(_meta())
    assert (t.image, t.pixel, t.source) == (0.8, 0.7, "bundle")
    t = resolve_thresholds(_meta(), threshold=0.9)
    assert (t.image, t.pixel) == (0.9, 0.7) and t.source == "--threshold"
    t = resolve_thresholds(_meta(pixel_threshold=None), threshold=0.9)
    assert t.pixel == 0.9
    assert resolve_thresholds(_meta(), pixel_threshold=0.1).pixel == 0.1


@pytest.mark.parametrize("s,image,pixel", [(0.5, 0.8, 0.7), (1.0, 0.6, 0.5), (0.0, 1.0, 0.9), (0.75, 0.7, 0.6)])
def test_sensitivity_rule(s, image, pixel):
    # D = T_b - p99 = 0.2; T(s) = 0.8 + (1 - 2s) * 0.2; pixel shifts alike
    t = resolve_thresholds(_meta(), sensitivity=s)
    assert t.image == pytest.approx(image) and t.pixel == pytest.approx(pixel)


def test_sensitivity_falls_back_to_std_when_p99_is_above_threshold():
    t = resolve_thresholds(_meta(normal_stats={"p99": 0.85, "std": 0.05}), sensitivity=1.0)
    assert t.image == pytest.approx(0.75)


def test_threshold_errors():
    with pytest.raises(CdoError, match="--threshold"):
        resolve_thresholds(_meta(image_threshold=None))
    with pytest.raises(CdoError, match="sensitivity"):
        resolve_thresholds(_meta(), sensitivity=1.5)


def test_ng_without_a_pixel_above_the_pixel_threshold_gets_the_flagged_region_around_the_maximum():
    from cdo_deploy.postprocess import locate_defects

    m = np.full((8, 8), 0.1, np.float32)
    m[2:4, 4:6] = 0.85   # above the image threshold 0.8, below the pixel threshold 0.9
    m[2, 4] = 0.88       # the maximum
    m[6, 0] = 0.5
    (r,) = locate_defects(m, True, 0.8, 0.9, (80, 80))
    assert r.to_dict() == {"box": [40, 20, 60, 40], "area": 400, "peak": 0.88, "kind": "map_max"}
    assert locate_defects(m, False, 0.8, 0.9, (80, 80)) == []  # an OK part gets no fallback
    assert [r.kind for r in locate_defects(m, True, 0.8, 0.7, (80, 80))] == ["threshold"]
    # min_area dropped every region: the fallback still locates the defect
    (r,) = locate_defects(m, True, 0.8, 0.7, (80, 80), min_area=1000)
    assert r.kind == "map_max" and (r.x0, r.y0, r.x1, r.y1) == (40, 20, 60, 40)


def _reference_regions(m: np.ndarray, thr: float, image_shape: tuple[int, int]) -> list[dict]:
    """Whole-map labelling with scipy (independent of OpenCV), boxes scaled as documented."""
    import math

    from scipy import ndimage

    lab, n = ndimage.label(m >= thr, structure=np.ones((3, 3)))
    sy, sx = image_shape[0] / m.shape[0], image_shape[1] / m.shape[1]
    out = []
    for i in range(1, n + 1):
        ys, xs = np.nonzero(lab == i)
        out.append({"box": [math.floor(xs.min() * sx), math.floor(ys.min() * sy),
                            min(image_shape[1], math.ceil((xs.max() + 1) * sx)),
                            min(image_shape[0], math.ceil((ys.max() + 1) * sy))],
                    "area": int(round(len(ys) * sx * sy)), "peak": round(float(m[ys, xs].max()), 6),
                    "kind": "threshold"})
    return sorted(out, key=lambda r: r["peak"], reverse=True)


@pytest.mark.parametrize("seed", range(6))
def test_regions_equal_whole_map_labelling(seed):
    """Labelling only the rectangle around the pixels above the threshold finds the same regions."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    h, w = [(64, 64), (256, 256), (40, 96)][seed % 3]
    m = ndimage.gaussian_filter(rng.standard_normal((h, w)), 2 + seed % 2).astype(np.float32)
    if seed == 5:
        m[:, 0] = m[-1, :] = 10.0 + rng.random()  # regions touching the borders
    thr = float(np.quantile(m, [0.6, 0.97, 0.995][seed % 3]))
    got = [r.to_dict() for r in find_regions(m, thr, (2 * h, 3 * w), max_regions=10_000)]
    assert got == _reference_regions(m, thr, (2 * h, 3 * w)) and got


def test_a_nan_map_of_an_ng_part_is_flagged_whole_never_raises():
    from cdo_deploy.postprocess import locate_defects

    (r,) = locate_defects(np.full((4, 4), np.nan, np.float32), True, 0.5, 0.6, (8, 6))
    assert (r.x0, r.y0, r.x1, r.y1, r.area, r.kind) == (0, 0, 6, 8, 48, "map_max")
