"""Pre-processing: any input image -> RGB uint8 at model size."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cdo_deploy.errors import CdoError
from cdo_deploy.preprocess import decode_image, is_complete, to_bgr_uint8, to_model_input


def test_bgr_is_swapped_to_rgb():
    img = np.zeros((8, 8, 3), np.uint8)
    img[..., 0] = 200  # blue in BGR
    x = to_model_input(img, 8, 8)
    assert x.shape == (8, 8, 3) and x.dtype == np.uint8 and x.flags.c_contiguous
    assert (x[..., 2] == 200).all() and (x[..., 0] == 0).all()
    assert (to_model_input(img, 8, 8, color_order="RGB")[..., 0] == 200).all()


@pytest.mark.parametrize("shape", [(10, 12), (10, 12, 1)])
def test_grey_becomes_three_equal_channels(shape):
    img = np.full(shape, 77, np.uint8)
    x = to_model_input(img, 4, 4)
    assert x.shape == (4, 4, 3) and (x == 77).all()


def test_bgra_drops_alpha():
    img = np.zeros((6, 6, 4), np.uint8)
    img[..., 2], img[..., 3] = 255, 10  # red, nearly transparent
    x = to_model_input(img, 6, 6)
    assert (x[..., 0] == 255).all() and (x[..., 1:] == 0).all()


def test_uint16_uses_full_range_and_float_is_0_to_1():
    assert to_model_input(np.full((4, 4), 65535, np.uint16), 4, 4).max() == 255
    assert to_model_input(np.full((4, 4), 257 * 100, np.uint16), 4, 4).max() == 100
    assert to_model_input(np.full((4, 4, 3), 0.5, np.float64), 4, 4).max() == 128


def test_interpolation_area_when_shrinking_linear_when_enlarging():
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    expect = cv2.cvtColor(cv2.resize(big, (16, 16), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(to_model_input(big, 16, 16), expect)
    small = big[:8, :8]
    expect = cv2.cvtColor(cv2.resize(small, (32, 32), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(to_model_input(small, 32, 32), expect)


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 2), np.uint8), np.zeros((0, 4), np.uint8),
                                 np.zeros((4, 4), np.int32), [[1, 2]]])
def test_unsupported_inputs_raise_cdo_error(bad):
    with pytest.raises(CdoError):
        to_model_input(bad, 4, 4)


def test_to_bgr_for_overlays():
    assert to_bgr_uint8(np.zeros((5, 7), np.uint16)).shape == (5, 7, 3)
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 9
    assert (to_bgr_uint8(rgb, "RGB")[..., 2] == 9).all()


def test_decode_detects_truncation_and_garbage():
    ok, png = cv2.imencode(".png", np.full((8, 8), 5, np.uint8))
    ok2, jpg = cv2.imencode(".jpg", np.full((8, 8, 3), 5, np.uint8))
    png, jpg = png.tobytes(), jpg.tobytes()
    assert decode_image(png, "a.png").shape == (8, 8)
    assert decode_image(jpg, "a.JPG").shape == (8, 8, 3)
    assert is_complete(jpg + b"\0\0", "a.jpg") and not is_complete(jpg[:-10], "a.jpg")
    with pytest.raises(CdoError, match="truncated"):
        decode_image(png[: len(png) // 2], "a.png")
    with pytest.raises(CdoError, match="truncated"):
        decode_image(jpg[:-20], "a.jpeg")
    with pytest.raises(CdoError, match="^not an image"):  # not "truncated": a text file renamed .png/.bmp
        decode_image(b"hello world", "a.bmp")
    with pytest.raises(CdoError, match="^not an image"):
        decode_image(b"hello world", "a.png")
    with pytest.raises(CdoError, match="not a readable image"):  # the right signature, garbage after it
        decode_image(b"BM" + b"\0" * 20, "a.bmp")
    with pytest.raises(CdoError, match="empty"):
        decode_image(b"", "a.png")


def test_decode_keeps_16_bit():
    ok, buf = cv2.imencode(".png", np.full((4, 4), 40000, np.uint16))
    img = decode_image(buf.tobytes(), "x.png")
    assert img.dtype == np.uint16 and img.max() == 40000
