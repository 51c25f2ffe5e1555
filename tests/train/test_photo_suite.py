"""The photo suite: real photographs from installed packages, MVTec layout, exact masks, held-out images unused."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from cdo_deploy.errors import CdoError
from cdo_train.data import list_classes, list_samples
from cdo_train.data import photo_suite
from cdo_train.data.photo_suite import PHOTO_CLASSES, SOURCES, _view, make_photo_suite

pytest.importorskip("skimage")

REPO = Path(__file__).resolve().parents[2]

HELD_OUT = ("brick", "grass", "gravel", "immunohistochemistry", "ihc", "coffee", "coins")
"""scikit-image images kept out of the suite to check the work built on it: never load them."""

SMALL = dict(n_train=2, n_test_good=1, size=64)


def _read(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_sources_contain_no_held_out_image():
    names = set(SOURCES) | {c.source for c in PHOTO_CLASSES.values()} | {c.donor for c in PHOTO_CLASSES.values()}
    assert names <= set(SOURCES)
    assert not {n for n in names if any(h in n.lower() for h in HELD_OUT)}
    text = Path(photo_suite.__file__).read_text().lower()
    assert not [h for h in HELD_OUT if f'"{h}' in text or f"data.{h}" in text]
    for c in PHOTO_CLASSES.values():
        assert c.donor != c.source
    kinds = {c.centre is None for c in PHOTO_CLASSES.values()}
    assert len(PHOTO_CLASSES) >= 6 and kinds == {True, False}  # textures and aligned objects


def test_layout_and_exact_masks(tmp_path):
    root = make_photo_suite(tmp_path, classes=["fur", "rocket"], n_test_defect=10, **SMALL)
    assert list_classes("mvtec2d", root) == ["fur", "rocket"]
    for name in ("fur", "rocket"):
        folder = root / name
        defects = PHOTO_CLASSES[name].defects
        assert sorted(p.name for p in (folder / "test").iterdir()) == sorted(("good",) + defects)
        assert sorted(p.name for p in (folder / "ground_truth").iterdir()) == sorted(defects)
        assert len(list((folder / "train" / "good").glob("*.png"))) == 2
        samples = list_samples("mvtec2d", root, name, "test")
        assert len(samples) == 11 and sum(s.label for s in samples) == 10
        for defect in defects:
            for image_path in sorted((folder / "test" / defect).glob("*.png")):
                j = int(image_path.stem)
                image, mask = _read(image_path), _read(folder / "ground_truth" / defect / f"{j:03d}_mask.png")
                assert image.shape == (64, 64, 3) and mask.shape == (64, 64) and set(np.unique(mask)) == {0, 255}
                # the good image the defect was drawn on: the same view of the same generator state
                good, _ = _view(name, photo_suite._rng(0, name, "test", defect, j), 64)
                changed = np.any(image[:, :, ::-1] != good, axis=2)
                assert np.array_equal(changed, mask > 0), image_path
                assert changed.sum() >= 4


def test_deterministic_for_a_seed_and_skips_up_to_date_classes(tmp_path):
    kw = dict(classes=["lunar", "flower"], n_test_defect=5, **SMALL)
    a, b = make_photo_suite(tmp_path / "a", **kw), make_photo_suite(tmp_path / "b", **kw)
    c = make_photo_suite(tmp_path / "c", seed=1, **kw)
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert len(files) == 2 * (2 + 1 + 5 + 5)
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert any((a / f).read_bytes() != (c / f).read_bytes() for f in files)
    marker = a / "lunar" / ".cdo_photo_suite.json"
    assert json.loads(marker.read_text())["class"] == "lunar"
    stamp = (a / "lunar" / "train" / "good" / "000.png").stat().st_mtime_ns
    make_photo_suite(tmp_path / "a", **kw)  # up to date: nothing rewritten
    assert (a / "lunar" / "train" / "good" / "000.png").stat().st_mtime_ns == stamp
    with pytest.raises(CdoError, match="other content"):
        make_photo_suite(tmp_path / "a", **{**kw, "n_test_defect": 4})
    with pytest.raises(CdoError, match="unknown photo suite class"):
        make_photo_suite(tmp_path / "d", classes=["gravel"])


def test_nuisance_stays_within_a_controlled_line(tmp_path):
    """Aligned objects: good images differ from each other by a few percent in brightness and a few px in place."""
    views = [_view("flower", photo_suite._rng(0, "flower", "train", i), 64)[0].astype(np.float32) for i in range(6)]
    means = np.array([v.mean() for v in views])
    assert means.max() / means.min() < 1.08
    ref = views[0].mean(axis=2)
    for v in views[1:]:
        shift, _ = cv2.phaseCorrelate(ref, v.mean(axis=2))
        assert np.hypot(*shift) < 2 * 0.03 * np.sqrt(2) * 64  # each view is shifted by <= 3 % per axis


def test_cli_runs_as_a_subprocess(tmp_path):
    cmd = [sys.executable, "-m", "cdo_train.data.photo_suite", str(tmp_path / "out"), "--classes", "stars",
           "--seed", "3", "--n-train", "1", "--n-test-good", "1", "--n-test-defect", "4", "--size", "64"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "out" / "stars" / "ground_truth").rglob("*_mask.png"))) == 4
    listed = subprocess.run([sys.executable, "-m", "cdo_train.data.photo_suite", "--list"], capture_output=True,
                            text=True, cwd=REPO, timeout=60)
    assert listed.returncode == 0 and all(name in listed.stdout for name in PHOTO_CLASSES)
    bad = subprocess.run([sys.executable, "-m", "cdo_train.data.photo_suite", str(tmp_path / "x"), "--size", "8"],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert bad.returncode == 1 and "size must be" in bad.stderr


def test_photo_suite_script_generates_then_trains_and_skips(tmp_path):
    import os

    env = {**os.environ, "PY": sys.executable, "TRAIN": str(Path(sys.executable).parent / "cdo-train"),
           "DATA": str(tmp_path / "data"), "OUT": str(tmp_path / "photo"), "SEEDS": "1", "CLASSES": "flower",
           "DATA_CLASSES": "flower", "EXPERIMENTS": "levels2", "N_TRAIN": "4", "N_TEST_GOOD": "1",
           "N_TEST_DEFECT": "5", "SIZE": "32", "OMP_NUM_THREADS": "1",
           "EXTRA": "--backbone resnet18 --teacher-weights random --image-size 32 --batch-size 4 --steps 1 "
                    "--eval-every 1 --device cpu"}
    script = str(REPO / "tools" / "photo_suite.sh")
    r = subprocess.run(["bash", script], env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().split("\n")[-1] == "done levels2 flower 111", r.stdout
    assert (tmp_path / "data" / "flower" / ".cdo_photo_suite.json").is_file()
    config = (tmp_path / "photo" / "levels2" / "flower" / "seed_111" / "config.yaml").read_text()
    assert "score_levels: 2" in config
    again = subprocess.run(["bash", script], env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert again.returncode == 0 and "done" not in again.stdout and "FAILED" not in again.stdout


def test_docstring_example():
    import doctest

    result = doctest.testmod(photo_suite, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0
