"""Labelled test data for cdo-bench --data: MVTec class folders and anomalib-style folders, on real files."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cdo_deploy.errors import CdoError
from cdo_deploy.labelled import load_labelled


def test_mvtec_class_folder_matches_the_trainers_reader(tiny_demo_root):
    from cdo_train.data import list_samples, load_sample

    data = load_labelled(tiny_demo_root / "weave", 32, 32)
    samples = list_samples("mvtec2d", tiny_demo_root, "weave", "test")
    assert data.layout == "mvtec" and len(data) == len(samples) == 8
    assert data.labels.tolist() == [s.label for s in samples]
    assert list(data.defect_types) == [s.defect_type for s in samples]
    for i, s in enumerate(samples):
        image, mask = load_sample(s, 32)
        np.testing.assert_array_equal(data.inputs[i], image)  # runtime pre-processing = trainer's (both shrink)
        np.testing.assert_array_equal(data.masks[i], mask)
    again = load_labelled(tiny_demo_root / "weave" / "test", 32, 32)  # its test folder works too
    assert again.names == data.names and "8 parts (3 good, 5 defective; masks)" == data.summary()


def _write(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


@pytest.fixture
def labelled_folder(tmp_path, part):
    """anomalib-style: good/, crack/, mask/crack/ (same file names)."""
    root = tmp_path / "lot"
    for i in range(3):
        _write(root / "good" / f"{i}.png", part(False, seed=i))
    for i in range(2):
        img = part(True, seed=i)
        _write(root / "crack" / f"c{i}.png", img)
        mask = np.zeros(img.shape[:2], np.uint8)
        mask[img[..., 0] == 255] = 255
        _write(root / "mask" / "crack" / f"c{i}.png", mask)
    return root


def test_anomalib_folder_with_masks(labelled_folder):
    data = load_labelled(labelled_folder, 32, 32)
    assert data.layout == "folder" and data.labels.tolist() == [0, 0, 0, 1, 1]
    assert data.names[3] == "crack/c0.png" and data.masks is not None
    assert not data.masks[:3].any() and data.masks[3:].any()
    assert data.images[0].shape == (96, 128, 3) and data.inputs.shape == (5, 32, 32, 3)


def test_without_masks_pixel_metrics_are_left_out_and_partial_masks_fail(labelled_folder):
    (labelled_folder / "mask" / "crack" / "c1.png").unlink()
    with pytest.raises(CdoError, match=r"c1.png has no mask \(1 of 2 lack one\)"):
        load_labelled(labelled_folder, 32, 32)
    (labelled_folder / "mask" / "crack" / "c0.png").unlink()
    data = load_labelled(labelled_folder, 32, 32)
    assert data.masks is None and "no masks" in data.summary()


def test_layout_and_file_errors_name_the_problem(tmp_path, labelled_folder):
    with pytest.raises(CdoError, match="is not a folder"):
        load_labelled(tmp_path / "missing", 32, 32)
    (tmp_path / "empty" / "stuff").mkdir(parents=True)
    with pytest.raises(CdoError, match="no labelled images found"):
        load_labelled(tmp_path / "empty", 32, 32)
    (labelled_folder / "crack" / "c0.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(CdoError, match=r"c0.png: .*replace or remove the file"):
        load_labelled(labelled_folder, 32, 32)


def test_a_mask_of_another_size_fails(labelled_folder):
    _write(labelled_folder / "mask" / "crack" / "c0.png", np.zeros((10, 10), np.uint8))
    with pytest.raises(CdoError, match="masks must match their image"):
        load_labelled(labelled_folder, 32, 32)
