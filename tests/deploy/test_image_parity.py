"""Training and the line read an image file into the same model-input bytes.

Every kind of file a line or a dataset holds (grey, RGB, BGRA, 16-bit, float32 TIFF in [0, 1] and
in [0, 255], JPEG) at sizes larger, smaller and mixed relative to the model goes through the
training reader (``cdo_train.data.read_image`` / ``load_sample``), the ``cdo-bench --data`` reader
(``load_labelled``) and the line's stages (bytes -> ``decode_image`` -> ``Inspector.preprocess``,
and a path given to the ``Inspector``); all must give identical bytes. Scores of an exported
bundle against training's evaluation on these files: tests/export/test_image_parity.py.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from cdo_deploy import Inspector
from cdo_deploy.labelled import load_labelled
from cdo_deploy.preprocess import decode_image, image_items
from cdo_train.data import Sample, load_sample, read_image

#: (height, width): wider and taller than the 32 px model, smaller, and one side smaller one larger
SIZES = [(200, 300), (300, 200), (60, 100), (20, 24), (24, 60)]


def _photo(hw: tuple[int, int]) -> np.ndarray:
    """A real photo (scikit-image's cat, BGR uint8) at ``hw``."""
    data = pytest.importorskip("skimage.data")
    bgr = np.ascontiguousarray(data.chelsea()[:, :, ::-1])
    return cv2.resize(bgr, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)


def write_image_kinds(folder: Path, hw: tuple[int, int]) -> dict[str, Path]:
    """One file of every kind, all from the same photo: {kind: path}."""
    bgr = _photo(hw)
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    bgra = np.dstack([bgr, np.full(hw, 90, np.uint8)])
    arrays = {
        "grey.png": grey, "rgb.png": bgr, "bgra.png": bgra, "rgb.jpg": bgr,
        "rgb16.png": bgr.astype(np.uint16) * 257 + np.uint16(100),  # low byte set: exercises the rounding
        "grey16.tif": grey.astype(np.uint16) * 257,
        "float01.tif": bgr.astype(np.float32) / 255.0,
        "float255.tif": bgr.astype(np.float32),
    }
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, array in arrays.items():
        assert cv2.imwrite(str(folder / name), array)
        out[name] = folder / name
    return out


@pytest.fixture(scope="module")
def inspector(tiny_bundle):
    with Inspector(tiny_bundle, backend="onnxruntime", device="cpu") as insp:
        yield insp


@pytest.mark.parametrize("hw", SIZES, ids=lambda hw: f"{hw[1]}x{hw[0]}")
def test_training_and_line_give_identical_bytes(tmp_path, inspector, hw):
    files = write_image_kinds(tmp_path / "good", hw)
    size = inspector.input_size
    labelled = load_labelled(tmp_path, *size)  # tmp_path/good/: a labelled folder of good parts
    by_name = dict(zip((Path(n).name for n in labelled.names), labelled.inputs))
    for name, path in files.items():
        train = read_image(path, size)
        assert train.shape == (*size, 3) and train.dtype == np.uint8
        np.testing.assert_array_equal(load_sample(Sample(path, 0, None, "good"), size)[0], train, err_msg=name)
        line, _ = inspector.preprocess(decode_image(path.read_bytes(), path.name))  # what cdo-inspect runs
        np.testing.assert_array_equal(line, train, err_msg=name)
        item = image_items(path)[0][0]  # Inspector(path) / load_run().predict(path)
        np.testing.assert_array_equal(inspector.preprocess(item.image, item.color_order)[0], train, err_msg=name)
        np.testing.assert_array_equal(by_name[name], train, err_msg=name)  # cdo-bench --data


@pytest.mark.parametrize("hw", SIZES, ids=lambda hw: f"{hw[1]}x{hw[0]}")
def test_every_bit_depth_reads_as_the_8_bit_photo(tmp_path, hw):
    """16-bit and float files of the photo give the 8-bit file's bytes at their own size; resized, they
    are rounded once after a float resize, so they differ from the 8-bit resize by at most 1 grey level.
    A float TIFF in [0, 255] is not saturated; grey is the grey file replicated."""
    files = write_image_kinds(tmp_path, hw)
    for size in (None, (32, 32)):
        rgb = read_image(files["rgb.png"], size).astype(int)
        for name in ("rgb16.png", "float01.tif", "float255.tif", "bgra.png"):
            diff = np.abs(read_image(files[name], size).astype(int) - rgb)
            assert diff.max() <= (0 if size is None or name == "bgra.png" else 1), name
        grey = read_image(files["grey.png"], size)
        assert (grey == grey[..., :1]).all()
        assert np.abs(read_image(files["grey16.tif"], size).astype(int) - grey).max() <= (0 if size is None else 1)
    assert abs(float(read_image(files["float255.tif"]).mean()) - float(_photo(hw).mean())) < 0.01


def test_float_rule_and_resize_choice():
    """[0, 1] when the maximum is <= 1, else [0, 255]; INTER_AREA when either axis shrinks."""
    from cdo_deploy.preprocess import interpolation, to_model_input

    assert int(to_model_input(np.full((4, 4), 115.0, np.float32), 4, 4).max()) == 115
    assert int(to_model_input(np.full((4, 4), 0.45, np.float32), 4, 4).max()) == 115
    assert int(to_model_input(np.full((4, 4), 300.0, np.float32), 4, 4).max()) == 255
    assert interpolation((60, 100), (64, 64)) == cv2.INTER_AREA  # narrower one way, wider the other
    assert interpolation((60, 60), (64, 64)) == cv2.INTER_LINEAR
