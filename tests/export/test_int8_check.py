"""int8 that is checked before it ships: the rule on hand-made outputs, and the real cdo-export refusing a
deliberately bad calibration (black images only: the activation ranges miss real parts, a held-out good
part flips)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from cdo_train.export.int8_check import check_int8
from tests.conftest import run_cli
from tests.export.conftest import INT8_TOLERANCE


def _model(offset: float = 0.0, blur: bool = False):
    """Brightness 'model' (maps = grey / 255 + offset); ``blur`` smears the map (worse pixel AUROC)."""
    def infer(x):
        m = x.astype(np.float32).mean(axis=3) / 255.0
        if blur:
            m = np.stack([cv2.blur(a, (15, 15)) for a in m])
        m = m + offset
        return m[:, None], m.reshape(len(m), -1).max(axis=1)
    return infer


def _sets():
    rng = np.random.default_rng(0)
    good = rng.integers(40, 100, (6, 32, 32, 3), dtype=np.uint8)
    test = rng.integers(40, 100, (8, 32, 32, 3), dtype=np.uint8)
    masks = np.zeros((8, 32, 32), bool)
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    for i in range(3, 8):
        test[i, 4 + i:10 + i, 6:12] = 250
        masks[i, 4 + i:10 + i, 6:12] = True
    return (good, [f"h{i}" for i in range(6)]), (test, masks, labels, [f"t{i}" for i in range(8)])


def test_rule_passes_an_identical_variant_and_records_the_figures():
    holdout, test = _sets()
    c = check_int8(_model(), _model(), 0.6, holdout, test, own_thresholds=False)
    assert c.passed and c.reasons == () and c.holdout["flips"] == 0 and c.test["flips"] == 0
    assert c.test["deltas"] == {"image_auroc": 0.0, "pixel_auroc": 0.0, "aupro": 0.0}
    assert c.test["fp32"]["image_auroc"] == 1.0 and "passed" in c.summary()


def test_a_shifted_map_flips_good_parts_at_the_fp32_threshold_but_not_at_its_own():
    holdout, test = _sets()
    at_bundle = check_int8(_model(), _model(0.3), 0.6, holdout, test, own_thresholds=False)
    assert not at_bundle.passed and at_bundle.holdout["flips"] == 6 and "held-out good" in at_bundle.summary()
    own = check_int8(_model(), _model(0.3), 0.6, holdout, test)
    assert own.passed and own.thresholds["source"] == "f1_optimal_test" and own.thresholds["image"] > 0.6


def test_a_metric_drop_beyond_the_tolerance_fails_and_nothing_to_check_fails():
    holdout, test = _sets()
    c = check_int8(_model(), _model(blur=True), 0.6, holdout, test, tolerance=0.5)
    assert not c.passed and any(r.startswith("pixel_auroc drops") for r in c.reasons)
    loose = check_int8(_model(), _model(blur=True), 0.6, holdout, test, tolerance=100)
    assert not any("drops" in r for r in loose.reasons)
    nothing = check_int8(_model(), _model(), 0.6, None, None)
    assert not nothing.passed and "no held-out good or test images" in nothing.reasons[0]


def test_export_records_a_passing_check_and_the_int8_thresholds(exported):
    meta = json.loads((exported.bundle / "model.json").read_text())
    check = meta["int8_check"]
    assert check["passed"] is True and check["accepted"] is False and check["tolerance"] == INT8_TOLERANCE
    assert check["settings"]["method"] == "minmax" and check["settings"]["calibration_images"] == 7
    assert check["holdout"]["n"] >= 1 and check["test"]["n"] == 8
    assert set(check["test"]["deltas"]) == {"image_auroc", "pixel_auroc", "aupro"}
    assert meta["variant_thresholds"]["int8"]["image"] == check["thresholds"]["image"]
    assert len(meta["calibration_images"]) == 7 and all(p.endswith(".png") for p in meta["calibration_images"])
    assert "int8 check passed" in exported.stderr


@pytest.fixture
def black_calibration(tmp_path):
    folder = tmp_path / "black"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f"{i}.png"), np.zeros((64, 64, 3), np.uint8))
    return folder


def test_a_deliberately_bad_calibration_is_refused_unless_accepted(trained_run, tmp_path, black_calibration):
    bundle = tmp_path / "bundle"
    args = (trained_run, "-o", bundle, "--int8", "--calib-dir", black_calibration, "--int8-tolerance", INT8_TOLERANCE)
    r = run_cli("cdo-export", *args)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    errors = [x for x in r.stderr.splitlines() if x.startswith("Error:")]
    assert len(errors) == 1 and "int8 check FAILED" in errors[0] and "--accept-int8" in errors[0], r.stderr
    assert not bundle.exists() and not list(tmp_path.glob(".bundle*"))
    r = run_cli("cdo-export", *args, "--accept-int8")
    assert r.returncode == 0, r.stderr
    assert "WARNING: int8 check FAILED" in r.stderr
    check = json.loads((bundle / "model.json").read_text())["int8_check"]
    assert check["passed"] is False and check["accepted"] is True and check["reasons"]
    assert (bundle / "model_int8.onnx").is_file()
