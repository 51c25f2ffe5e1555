"""Folder datasets (good-only, recursive, anomalib-style labelled), the shared splits and their errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from cdo_deploy.errors import CdoError
from cdo_train.training.config import TrainConfig
from cdo_train.data import make_demo_dataset
from cdo_train.data.folders import FolderSpec, folder_classes, folder_samples
from cdo_train.data.splits import calibration_samples, run_classes, samples, train_split


def _img(path: Path, value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((8, 8), value, np.uint8))
    return path


def _labelled(root: Path, n_good: int = 10, n_bad: int = 3, mask_suffix: str = "_mask") -> Path:
    for i in range(n_good):
        _img(root / "good" / f"{i:03d}.png")
    for i in range(n_bad):
        _img(root / "defect" / ("scratch" if i % 2 else "dent") / f"b{i}.png", 255)
        _img(root / "masks" / ("scratch" if i % 2 else "dent") / f"b{i}{mask_suffix}.png", 255)
    return root


def test_anomalib_labelled_folders_have_anomalibs_semantics(tmp_path):
    root = _labelled(tmp_path / "bracket")
    cfg = TrainConfig(dataset="folder", data_root=str(root), normal_dir="good", abnormal_dir="defect",
                      mask_dir="masks")
    assert run_classes(cfg) == ["bracket"]  # named after the folder
    train = samples(cfg, "bracket", "train")
    test = samples(cfg, "bracket", "test")
    assert len(train) == 8 and all(s.label == 0 for s in train)  # 20 % of the normal images go to the test set
    bad = [s for s in test if s.label == 1]
    assert [(s.path.name, s.defect_type, s.mask_path.name) for s in bad] == [
        ("b0.png", "dent", "b0_mask.png"), ("b2.png", "dent", "b2_mask.png"), ("b1.png", "scratch", "b1_mask.png")]
    good_test = {s.path for s in test if s.label == 0}
    assert len(good_test) == 2 and not good_test & {s.path for s in train}
    assert samples(cfg, "bracket", "test") == test  # the same split every time, whatever the run's seed
    # a separate normal test folder replaces the split; masks named like their image also match
    _labelled(tmp_path / "b2", mask_suffix="")
    for i in range(2):
        _img(tmp_path / "b2" / "good_test" / f"t{i}.png")
    cfg2 = TrainConfig(dataset="folder", data_root=str(tmp_path / "b2"), normal_dir="good", abnormal_dir="defect",
                       mask_dir="masks", normal_test_dir="good_test")
    assert len(samples(cfg2, "b2", "train")) == 10
    assert sorted(s.path.name for s in samples(cfg2, "b2", "test") if s.label == 0) == ["t0.png", "t1.png"]
    # without masks: image-level labels only
    cfg3 = TrainConfig(dataset="folder", data_root=str(root), normal_dir="good", abnormal_dir="defect")
    assert all(s.mask_path is None for s in samples(cfg3, "bracket", "test"))


def test_labelled_folder_errors_say_what_was_found(tmp_path):
    root = _labelled(tmp_path / "p")
    (root / "masks" / "dent" / "b0_mask.png").unlink()
    cfg = TrainConfig(dataset="folder", data_root=str(root), normal_dir="good", abnormal_dir="defect", mask_dir="masks")
    with pytest.raises(CdoError, match=r"1 of 3 abnormal images have no mask in .*masks, e\.g\. b0\.png"):
        samples(cfg, "p", "test")
    (root / "notes").mkdir()
    (root / "notes" / "a.txt").write_text("x")
    (root / "notes" / "b.csv").write_text("x")
    cfg = TrainConfig(dataset="folder", data_root=str(root), normal_dir="good", abnormal_dir="notes")
    with pytest.raises(CdoError, match=r"no abnormal \(--abnormal-dir\) images in .*notes: it holds 2 files, "
                                       r"none an image \(\.csv \.txt\)"):
        samples(cfg, "p", "test")
    with pytest.raises(CdoError, match="--mask-dir needs --abnormal-dir"):
        TrainConfig(dataset="folder", data_root=str(root), mask_dir="masks")
    with pytest.raises(CdoError, match="apply to --dataset folder"):
        TrainConfig(data_root=str(root), abnormal_dir="defect")


def test_good_only_folders_recursive_search_and_class_names(tmp_path):
    mvtec = make_demo_dataset(tmp_path / "mv", classes=["weave"], n_train=3, n_test_good=1, n_test_defect=2, size=32)
    weave = mvtec / "weave"
    cfg = TrainConfig(dataset="folder", data_root=str(weave))
    with pytest.raises(CdoError, match=r"no good images in .*weave: it holds no image itself; the images are in "
                                       r"sub-folders \(train/good: 3, .*\).*or pass --recursive \(or --dataset mvtec2d"):
        run_classes(cfg)
    rec = TrainConfig(dataset="folder", data_root=str(weave / "train"), recursive=True)
    assert run_classes(rec) == ["train"] and len(samples(rec, "train", "train")) == 3
    # one class per sub-folder holding images; a flat folder is one class named after it
    for name in ("line1", "line2"):
        for i in range(2):
            _img(tmp_path / "lines" / name / f"{i}.png")
    lines = TrainConfig(dataset="folder", data_root=str(tmp_path / "lines"))
    assert run_classes(lines) == ["line1", "line2"] and len(samples(lines, "line2", "train")) == 2
    flat = TrainConfig(dataset="folder", data_root=str(tmp_path / "lines" / "line1"))
    assert run_classes(flat) == ["line1"]
    assert run_classes(flat.merged({"class_names": ["bracket"]})) == ["bracket"]  # --class-name names it
    assert samples(flat, "bracket", "test") == []
    assert folder_classes(FolderSpec(tmp_path / "lines" / "line1")) == ["line1"]


def test_calibration_dir_replaces_the_hold_out(tmp_path):
    for i in range(12):
        _img(tmp_path / "good" / f"{i}.png")
    for i in range(11):
        _img(tmp_path / "calib" / "day2" / f"{i}.png")
    cfg = TrainConfig(dataset="folder", data_root=str(tmp_path / "good"), holdout_fraction=0.1)
    train, hold = train_split(cfg, "good", seed=111)
    assert (len(train), len(hold)) == (11, 1) and calibration_samples(cfg, hold) == hold
    with_dir = cfg.merged({"calibration_dir": str(tmp_path / "calib")})
    train, hold = train_split(with_dir, "good", seed=111)
    assert (len(train), hold) == (12, []) and len(calibration_samples(with_dir, hold)) == 11  # searched recursively
    empty = cfg.merged({"calibration_dir": str(tmp_path / "good" / "none")})
    with pytest.raises(CdoError, match=r"no calibration \(--calibration-dir\) images in .*none: it does not exist"):
        calibration_samples(empty, [])


def test_folder_paths_are_relative_to_the_root(tmp_path):
    root = _labelled(tmp_path / "r")
    cfg = TrainConfig(dataset="folder", data_root=str(root), normal_dir="good", abnormal_dir="defect")
    assert cfg.to_dict()["normal_dir"] == str(root / "good") and cfg.normal_dir == "good"
    spec = FolderSpec(root, normal_dir=root / "good", abnormal_dir=root / "defect")
    assert len(folder_samples(spec, None, "train")) == 8
