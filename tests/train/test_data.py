"""Tests for cdo_train.data: image IO, dataset layouts and the demo generator."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from cdo_deploy.errors import CdoError
from cdo_train.data import (
    DEMO_CLASSES,
    DEMO_DEFECTS,
    Sample,
    list_classes,
    list_samples,
    load_sample,
    make_demo_dataset,
    read_image,
    read_mask,
    split_holdout,
)
from cdo_train.data.demo import main as demo_main

SMALL = dict(n_train=3, n_test_good=2, n_test_defect=4, size=64)


def _write(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)
    return path


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory) -> Path:
    return make_demo_dataset(tmp_path_factory.mktemp("demo"), **SMALL)


# ----------------------------------------------------------------------------- io


def test_read_image_grey_rgba_16bit_and_bgr(tmp_path):
    grey = _write(tmp_path / "g.png", np.full((5, 7), 77, np.uint8))
    assert read_image(grey).shape == (5, 7, 3) and (read_image(grey) == 77).all()
    bgra = np.zeros((4, 4, 4), np.uint8)
    bgra[..., 0], bgra[..., 2], bgra[..., 3] = 10, 200, 0  # B=10, R=200, fully transparent
    rgb = read_image(_write(tmp_path / "a.png", bgra))
    assert rgb.shape == (4, 4, 3) and tuple(rgb[0, 0]) == (200, 0, 10)
    deep = np.full((4, 4, 3), 65535, np.uint16)
    deep[..., 1] = 257 * 100
    rgb16 = read_image(_write(tmp_path / "d.png", deep))
    assert rgb16.dtype == np.uint8 and tuple(rgb16[0, 0]) == (255, 100, 255)
    grey16 = read_image(_write(tmp_path / "g16.tif", np.full((3, 3), 257 * 9, np.uint16)))
    assert (grey16 == 9).all()


def test_read_image_paletted(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    index = np.array([[0, 1], [1, 0]], np.uint8)
    img = Image.fromarray(index, mode="P")
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    img.save(tmp_path / "p.png")
    rgb = read_image(tmp_path / "p.png")
    assert tuple(rgb[0, 0]) == (255, 0, 0) and tuple(rgb[0, 1]) == (0, 0, 255)


def test_read_image_resize(tmp_path):
    path = _write(tmp_path / "x.png", np.random.default_rng(0).integers(0, 255, (40, 60, 3), np.uint8))
    assert read_image(path, 20).shape == (20, 20, 3)
    assert read_image(path, (30, 90)).shape == (30, 90, 3)
    with pytest.raises(CdoError, match="invalid image size"):
        read_image(path, (0, 4))


def test_read_image_errors_name_the_file(tmp_path):
    with pytest.raises(CdoError, match="not found: .*missing.png"):
        read_image(tmp_path / "missing.png")
    bad = tmp_path / "corrupt.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(CdoError, match="corrupt.png"):
        read_image(bad)
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    with pytest.raises(CdoError, match="not an image"):
        read_image(text)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(CdoError, match="empty.png"):
        read_mask(tmp_path / "empty.png")


def test_read_mask_threshold_and_nearest_resize(tmp_path):
    m = np.zeros((8, 8), np.uint8)
    m[:4, :4] = 1  # any value > 0 is a defect
    mask = read_mask(_write(tmp_path / "m.png", m), size=4)
    assert mask.dtype == bool and mask.shape == (4, 4)
    assert mask[:2, :2].all() and not mask[2:, :].any() and not mask[:, 2:].any()
    colour = np.zeros((4, 4, 3), np.uint8)
    colour[0, 0, 2] = 255
    assert read_mask(_write(tmp_path / "c.png", colour)).sum() == 1


# ----------------------------------------------------------------------------- layouts


def test_mvtec2d_layout(demo_root):
    assert list_classes("mvtec2d", demo_root) == ["grain", "weave"]
    train = list_samples("mvtec2d", demo_root, "weave", "train")
    assert len(train) == 3 and all(s.label == 0 and s.mask_path is None for s in train)
    test = list_samples("mvtec2d", demo_root, "weave", "test")
    assert sum(s.label for s in test) == 4 and len(test) == 6
    assert {s.defect_type for s in test} == {"good", "scratch", "spot", "hole", "contamination"}
    bad = next(s for s in test if s.label)
    assert bad.mask_path == demo_root / "weave" / "ground_truth" / bad.defect_type / f"{bad.path.stem}_mask.png"
    image, mask = load_sample(bad, size=32)
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8 and mask.shape == (32, 32) and mask.any()
    good_image, good_mask = load_sample(test[[s.label for s in test].index(0)])
    assert good_image.shape == (64, 64, 3) and not good_mask.any()


def test_mvtec3d_layout(tmp_path):
    cls = tmp_path / "bagel"
    img = np.full((6, 6, 3), 100, np.uint8)
    gt = np.zeros((6, 6), np.uint8)
    gt[1:3, 1:3] = 255
    _write(cls / "train/good/rgb/000.png", img)
    _write(cls / "train/good/rgb/001.PNG", img)
    _write(cls / "train/good/xyz/000.tiff", img)  # ignored: not under rgb/
    (cls / "train/good/rgb/notes.txt").write_text("ignored")
    _write(cls / "test/good/rgb/000.png", img)
    _write(cls / "test/good/gt/000.png", np.zeros((6, 6), np.uint8))
    _write(cls / "test/crack/rgb/000.png", img)
    _write(cls / "test/crack/gt/000.png", gt)
    assert list_classes("mvtec3d", tmp_path) == ["bagel"]
    assert [s.path.name for s in list_samples("mvtec3d", tmp_path, "bagel", "train")] == ["000.png", "001.PNG"]
    test = list_samples("mvtec3d", tmp_path, "bagel", "test")
    assert [(s.defect_type, s.label) for s in test] == [("crack", 1), ("good", 0)]
    assert test[0].mask_path == cls / "test/crack/gt/000.png" and test[1].mask_path is None
    assert load_sample(test[0])[1].sum() == 4


def test_folder_layout(tmp_path):
    img = np.zeros((4, 4, 3), np.uint8)
    for name in ("b.jpg", "a.png", "c.BMP"):
        _write(tmp_path / "line1" / name, img)
    (tmp_path / "line1" / "readme.md").write_text("x")
    (tmp_path / "line1" / "._a.png").write_bytes(b"macOS resource fork")
    assert list_classes("folder", tmp_path) == ["line1"]
    names = [s.path.name for s in list_samples("folder", tmp_path, "line1", "train")]
    assert names == ["a.png", "b.jpg", "c.BMP"]
    assert list_samples("folder", tmp_path, "line1", "test") == []
    flat = tmp_path / "line1"
    assert list_classes("folder", flat) == ["line1"]
    assert len(list_samples("folder", flat, None, "train")) == 3
    assert len(list_samples("folder", flat, "anything", "train")) == 3


def test_split_holdout_is_deterministic_and_disjoint():
    samples = [Sample(Path(f"{i}.png"), 0, None, "good") for i in range(20)]
    train, hold = split_holdout(samples, 0.25, seed=3)
    assert (len(train), len(hold)) == (15, 5)
    assert split_holdout(samples, 0.25, seed=3) == (train, hold)
    assert split_holdout(samples, 0.25, seed=4)[1] != hold
    assert sorted(train + hold, key=lambda s: int(s.path.stem)) == samples
    assert split_holdout(samples, 0.0) == (samples, [])
    with pytest.raises(CdoError, match="fraction"):
        split_holdout(samples, 1.0)
    with pytest.raises(CdoError, match="cannot hold out"):
        split_holdout(samples[:1], 0.5)


@pytest.mark.parametrize(
    "setup, call, message",
    [
        (None, lambda r: list_samples("mvtec2d", r / "nope", "a", "train"), "dataset root not found"),
        (None, lambda r: list_samples("mvtec2", r, "a", "train"), "unknown dataset layout 'mvtec2'.*mvtec2d"),
        (None, lambda r: list_samples("mvtec2d", r, "a", "val"), "unknown split"),
        ("a/train/good/x.txt", lambda r: list_samples("mvtec2d", r, "zipper", "train"), "class folder not found.*zipper.*classes found: a"),
        ("a/train/good/x.txt", lambda r: list_samples("mvtec2d", r, "a", "train"), r"no training images in .*a[/\\]train[/\\]good: it holds 1 file, none an image \(\.txt\)"),
        ("a/train/x.txt", lambda r: list_samples("mvtec2d", r, "a", "train"), r"a[/\\]train[/\\]good: it does not exist"),
        ("a/train/x.txt", lambda r: list_samples("mvtec2d", r, "a", "test"), "test folder not found"),
        ("a/test/crack/000.png", lambda r: list_samples("mvtec2d", r, "a", "test"), r"has no mask: expected .*ground_truth[/\\]crack[/\\]000_mask.png"),
        ("a/test/crack/rgb/000.png", lambda r: list_samples("mvtec3d", r, "a", "test"), r"has no mask: expected .*crack[/\\]gt[/\\]000.png"),
        ("x.txt", lambda r: list_samples("folder", r, None, "train"), "no training images"),
        ("x.txt", lambda r: list_classes("folder", r), r"no good images in .*: it holds 1 file, none an image \(\.txt\)"),
        ("x.txt", lambda r: list_classes("mvtec2d", r), "no classes found"),
    ],
)
def test_layout_errors_are_helpful(tmp_path, setup, call, message):
    if setup:
        path = tmp_path / setup
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".png":
            _write(path, np.zeros((4, 4, 3), np.uint8))
        else:
            path.write_text("not an image")
    with pytest.raises(CdoError, match=message):
        call(tmp_path)


def test_mask_size_mismatch_is_reported_on_load(tmp_path):
    _write(tmp_path / "a/train/good/000.png", np.zeros((8, 8, 3), np.uint8))
    _write(tmp_path / "a/test/crack/000.png", np.zeros((8, 10, 3), np.uint8))
    _write(tmp_path / "a/ground_truth/crack/000_mask.png", np.zeros((8, 8), np.uint8))
    (sample,) = list_samples("mvtec2d", tmp_path, "a", "test")  # listing does not decode
    with pytest.raises(CdoError, match=r"000_mask.png is 8x8 but its image .*000.png is 10x8"):
        load_sample(sample)


# ----------------------------------------------------------------------------- demo


def test_demo_is_byte_identical_and_complete(tmp_path, demo_root):
    again = make_demo_dataset(tmp_path / "again", **SMALL)
    first, second = _tree_digest(demo_root), _tree_digest(again)
    assert first == second
    assert len([k for k in first if k.endswith(".png")]) == 2 * (3 + 2 + 4 + 4)
    other = _tree_digest(make_demo_dataset(tmp_path / "seed1", classes=["weave"], seed=1, **SMALL))
    assert other["weave/train/good/000.png"] != first["weave/train/good/000.png"]


def test_demo_masks_are_small_but_present(demo_root):
    for name in ("weave", "grain"):
        for s in list_samples("mvtec2d", demo_root, name, "test"):
            if s.label:
                image, mask = load_sample(s)
                assert 4 <= mask.sum() < 0.05 * mask.size, s.path


def test_demo_defects_change_exactly_the_mask():
    rng = np.random.default_rng(1)
    for cls in DEMO_CLASSES:
        image, region = DEMO_CLASSES.get(cls).texture(rng, 96)
        base = np.round(image * 255)
        for defect in DEMO_DEFECTS:
            out, mask = DEMO_DEFECTS.get(defect)(image, region, rng, 1.0)
            changed = np.any(np.round(out * 255) != base, axis=2)
            assert mask.any() and np.array_equal(changed, mask) and not (mask & ~region).any(), (cls, defect)


def test_demo_rerun_and_overwrite(tmp_path):
    root = make_demo_dataset(tmp_path, classes=["grain"], **SMALL)
    marker_time = (root / "grain/train/good/000.png").stat().st_mtime_ns
    make_demo_dataset(tmp_path, classes=["grain"], **SMALL)  # up to date: nothing rewritten
    assert (root / "grain/train/good/000.png").stat().st_mtime_ns == marker_time
    with pytest.raises(CdoError, match="already exists.*overwrite"):
        make_demo_dataset(tmp_path, classes=["grain"], seed=5, **SMALL)
    make_demo_dataset(tmp_path, classes=["grain"], seed=5, overwrite=True, **SMALL)
    with pytest.raises(CdoError, match="unknown demo class 'wave'.*weave"):
        make_demo_dataset(tmp_path, classes=["wave"])
    with pytest.raises(CdoError, match="n_train"):
        make_demo_dataset(tmp_path / "x", n_train=0)


def test_demo_cli(tmp_path, capsys):
    assert demo_main([str(tmp_path), "--classes", "pill", "--n-train", "2", "--n-test-good", "1",
                      "--n-test-defect", "1", "--size", "48"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path)
    assert (tmp_path / "pill/ground_truth/scratch/000_mask.png").is_file()
    assert demo_main([str(tmp_path), "--classes", "nope"]) == 1
    assert "Error: unknown demo class" in capsys.readouterr().err


def test_data_package_does_not_import_torch():
    from tests.conftest import modules_after

    assert "torch" not in modules_after("import cdo_train.data, cdo_train.training.metrics, cdo_train.training.visualize")
