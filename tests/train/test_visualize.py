"""Tests for cdo_train.training.visualize: figures are written, readable, and the histogram numbers are right."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cdo_train.training.visualize import save_discrepancy_histogram, save_qualitative_grid


def _case(n: int = 5, size: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8)
    masks = np.zeros((n, size, size), bool)
    masks[1:, 8:16, 8:16] = True
    maps = rng.random((n, size, size)) + 2.0 * masks
    return images, masks, maps


def test_qualitative_grid_writes_png(tmp_path):
    images, masks, maps = _case()
    out = save_qualitative_grid(images, masks, maps, tmp_path / "sub" / "grid.png",
                                scores=maps.max(axis=(1, 2)), labels=masks.any(axis=(1, 2)))
    picture = cv2.imread(str(out))
    assert picture is not None and picture.shape[0] > 200 and picture.shape[1] > 400


def test_qualitative_grid_without_masks_low_res_maps_and_subsampling(tmp_path):
    images, _, maps = _case(n=20)
    small_maps = maps[:, ::4, ::4]  # resized to the image inside
    with_masks = cv2.imread(str(save_qualitative_grid(images, _case(n=20)[1], small_maps, tmp_path / "a.png",
                                                      max_items=6, per_row=3)))
    without = cv2.imread(str(save_qualitative_grid(images, None, small_maps, tmp_path / "b.png",
                                                   max_items=6, per_row=3)))
    assert without.shape[0] < with_masks.shape[0]  # two rows per block instead of three


def test_qualitative_grid_says_how_many_of_the_test_images_it_shows(tmp_path, caplog):
    images, masks, maps = _case(n=18)
    with caplog.at_level("INFO", logger="cdo_train.training.visualize"):
        out = save_qualitative_grid(images, masks, maps, tmp_path / "q.png")
    assert b"16 of 18 test images shown, evenly spread" in out.read_bytes()  # drawn, and the PNG's Description
    assert "(16 of 18 test images shown, evenly spread)" in caplog.text
    out = save_qualitative_grid(images[:5], masks[:5], maps[:5], tmp_path / "all.png")
    assert b"5 of 5 test images shown" in out.read_bytes()


def test_qualitative_grid_rejects_bad_shapes(tmp_path):
    images, masks, maps = _case()
    with pytest.raises(ValueError):
        save_qualitative_grid(images[..., 0], masks, maps, tmp_path / "x.png")
    with pytest.raises(ValueError):
        save_qualitative_grid(images, masks[:2], maps, tmp_path / "x.png")


def test_histogram_statistics(tmp_path):
    normal = np.arange(100, dtype=float).reshape(1, 10, 10)  # values 0..99
    masks = np.zeros((1, 10, 10), bool)
    masks[0, 9, :] = True  # defect pixels: 90..99
    stats = save_discrepancy_histogram(normal, masks, tmp_path / "h.png", bins=10)
    assert stats["normal_mean"] == pytest.approx(44.5) and stats["defect_mean"] == pytest.approx(94.5)
    assert stats["mean_gap"] == pytest.approx(50.0)
    assert stats["normal_p99"] == pytest.approx(np.percentile(np.arange(90), 99))
    assert stats["defect_median"] == pytest.approx(94.5)
    assert stats["margin"] == pytest.approx(94.5 - np.percentile(np.arange(90), 99))
    assert stats["overlap"] == pytest.approx(0.0, abs=1e-12)  # bins of width 9.9: no shared bin
    assert (stats["n_normal"], stats["n_defect"]) == (90.0, 10.0)
    assert cv2.imread(str(tmp_path / "h.png")) is not None


def test_histogram_overlap_of_identical_distributions_is_one(tmp_path):
    maps = np.tile(np.arange(10, dtype=float), (1, 2, 1))  # the same 10 values on each row
    masks = np.zeros(maps.shape, bool)
    masks[0, 1] = True
    stats = save_discrepancy_histogram(maps, masks, tmp_path / "h.png", bins=10)
    assert stats["overlap"] == pytest.approx(1.0)
    assert stats["mean_gap"] == pytest.approx(0.0)


def test_histogram_without_defects(tmp_path):
    stats = save_discrepancy_histogram(np.random.default_rng(0).random((2, 8, 8)),
                                       np.zeros((2, 8, 8), bool), tmp_path / "h.png")
    assert stats["defect_mean"] is None and stats["overlap"] is None and stats["margin"] is None
    assert stats["normal_mean"] is not None and (tmp_path / "h.png").is_file()
