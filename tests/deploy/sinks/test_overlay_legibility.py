"""Overlays legible at every size: banner and text scale and fit, the part stays visible, every region outlined."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cdo_deploy.postprocess import locate_defects
from cdo_deploy.results import Prediction
from cdo_deploy.sinks.overlay import banner_layout, render_overlay


def _pred(h, w, score=7.21, image_thr=6.659, pixel_thr=7.04, spots=((0.3, 0.4),)):
    """A map at 60 % of the pixel threshold with hot 3x3 spots (fractions of the map size) at the score."""
    mh, mw = max(8, h // 8), max(8, w // 8)
    m = np.full((mh, mw), 0.6 * pixel_thr, np.float32)
    for fy, fx in spots:
        y, x = int(fy * mh), int(fx * mw)
        m[y:y + 3, x:x + 3] = score
    regions = locate_defects(m, score >= image_thr, image_thr, pixel_thr, (h, w))
    return Prediction("p.png", score, score >= image_thr, m, (h, w), regions=regions, image_threshold=image_thr,
                      pixel_threshold=pixel_thr)


def _banner(pic: np.ndarray) -> tuple[int, int]:
    """(height, width) of the black banner at the top left (the background is bright)."""
    dark = pic.max(axis=2) < 40
    return int(np.argmin(dark[:, 0])), int(np.argmin(dark[1]))


@pytest.mark.parametrize("h,w", [(64, 64), (96, 128), (48, 400), (512, 640), (2048, 2448)])
def test_banner_is_small_and_its_text_fits_at_every_size(h, w):
    """The defect: on 64 px the banner covered ~30 % of the image and its text was cut."""
    pic = render_overlay(np.full((h, w, 3), 200, np.uint8), _pred(h, w))
    H, W = pic.shape[:2]
    assert min(H, W) >= min(256, max(h, w)) or (H, W) == (h, w)
    bh, bw = _banner(pic)
    assert 0 < bh <= 0.12 * H and bw <= W
    red = (pic[..., 2] > 150) & (pic[..., 1] < 100) & (pic[..., 0] < 100)
    cols = np.nonzero(red[:bh].any(axis=0))[0]
    assert cols.size and cols.max() < bw - 1  # the text ends inside the banner: nothing cut at the edge
    texts = ["NG 7.21 (thr 6.659)", "NG 7.21/6.66", "NG"]
    b = banner_layout(texts, W, H)
    assert b.text == texts[0] and cv2.getTextSize(b.text, cv2.FONT_HERSHEY_SIMPLEX, b.scale, b.thickness)[0][0] < W
    assert b.height == bh


def test_long_text_on_a_narrow_image_falls_back_to_a_shorter_complete_text():
    b = banner_layout(["NG 7.2134 (thr 6.65921)", "NG 7.21/6.66", "NG"], 70, 2000)
    assert b.text in ("NG 7.21/6.66", "NG") and b.width <= 70


def test_the_heatmap_leaves_the_part_visible_where_the_map_is_normal():
    rng = np.random.default_rng(0)
    img = rng.integers(60, 200, (512, 640, 3), dtype=np.uint8)
    pred = _pred(512, 640)
    pic = render_overlay(img, pred)
    normal = pred.anomaly_map_full() < 0.75 * pred.pixel_threshold
    normal[:80] = False  # the banner
    assert normal.mean() > 0.8 and np.array_equal(pic[normal], img[normal])
    spot = pred.anomaly_map_full() >= pred.pixel_threshold
    assert np.abs(pic[spot].astype(int) - img[spot]).mean() > 20  # the defect is tinted


def test_every_region_gets_a_contour_the_flagged_one_in_orange():
    img = np.full((300, 400, 3), 200, np.uint8)
    two = _pred(300, 400, score=7.5, spots=((0.3, 0.2), (0.7, 0.7)))
    assert [r.kind for r in two.regions] == ["threshold", "threshold"]
    pic = render_overlay(img, two)
    red = (pic[..., 2] > 200) & (pic[..., 1] < 60) & (pic[..., 0] < 60)
    for r in two.regions:
        assert red[max(0, r.y0 - 3):r.y1 + 3, max(0, r.x0 - 3):r.x1 + 3].any()
    flagged = _pred(300, 400, score=7.0)  # 7.0 >= image 6.659 but < pixel 7.04: NG with a map_max region
    (r,) = flagged.regions
    assert r.kind == "map_max"
    pic = render_overlay(img, flagged)
    orange = (pic[..., 2] > 200) & (np.abs(pic[..., 1].astype(int) - 140) < 40) & (pic[..., 0] < 60)
    assert orange[r.y0:r.y1, r.x0:r.x1].any()
