"""The hard validation suite: hard demo classes and defects, training with realistic anomalies, head study."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from cdo_train.training.config import TrainConfig
from cdo_train.data import list_samples, load_sample, make_demo_dataset
from cdo_train.data.demo import DEFAULT_DEMO_CLASSES, demo_classes
from cdo_train.data.procedural import DEMO_CLASSES, DEMO_DEFECTS
from cdo_train.data.procedural_hard import HARD_DEFECT_TYPES
from cdo_train.training.trainer import train

REPO = Path(__file__).resolve().parents[2]

HARD = ("turf", "cells", "speckle")


def test_hard_classes_are_registered_but_not_generated_by_default():
    assert set(HARD) <= set(demo_classes(hard=True)) and not set(HARD) & set(demo_classes())
    assert DEFAULT_DEMO_CLASSES == ("weave", "grain")
    for name in HARD:
        assert DEMO_CLASSES.get(name).hard and DEMO_CLASSES.get(name).defects == HARD_DEFECT_TYPES
    assert set(HARD_DEFECT_TYPES) <= set(DEMO_DEFECTS)


def test_hard_defects_are_subtle_small_and_exact(tmp_path):
    root = make_demo_dataset(tmp_path, classes=list(HARD), n_train=2, n_test_good=1, n_test_defect=4, size=128)
    for name in HARD:
        defects = sorted(p.name for p in (root / name / "test").iterdir() if p.name != "good")
        assert defects == sorted(HARD_DEFECT_TYPES)
        for s in list_samples("mvtec2d", root, name, "test"):
            if not s.label:
                continue
            image, mask = load_sample(s)
            assert image.shape == (128, 128, 3) and 2 <= mask.sum() < 0.03 * mask.size, s.path


def test_hard_dataset_is_deterministic(tmp_path):
    a = make_demo_dataset(tmp_path / "a", classes=["cells"], n_train=1, n_test_good=0, n_test_defect=4, size=64)
    b = make_demo_dataset(tmp_path / "b", classes=["cells"], n_train=1, n_test_good=0, n_test_defect=4, size=64)
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert files and all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


def test_photo_suite_is_the_clean_suite_through_a_camera(tmp_path):
    kw = dict(classes=["turf"], n_train=2, n_test_good=1, n_test_defect=4, size=64)
    clean = make_demo_dataset(tmp_path / "clean", **kw)
    photo = make_demo_dataset(tmp_path / "photo", photo=True, **kw)
    again = make_demo_dataset(tmp_path / "again", photo=True, **kw)
    images = sorted(p.relative_to(clean) for p in clean.rglob("*.png") if "ground_truth" not in p.parts)
    masks = sorted(p.relative_to(clean) for p in clean.rglob("*_mask.png"))
    assert len(images) == 7 and len(masks) == 4
    for f in masks:  # the defect's pixels, before the camera
        assert (clean / f).read_bytes() == (photo / f).read_bytes()
    for f in images:
        a, b = load_sample_image(clean / f), load_sample_image(photo / f)
        assert a.shape == b.shape and 1.0 < np.abs(a.astype(float) - b).mean() < 40.0, f  # changed, still the part
        assert (photo / f).read_bytes() == (again / f).read_bytes()  # deterministic


def load_sample_image(path):
    import cv2

    return cv2.imread(str(path))


def test_training_with_realistic_anomalies_and_head_study(tmp_path):
    root = make_demo_dataset(tmp_path / "data", classes=["speckle"], n_train=6, n_test_good=2, n_test_defect=4,
                             size=64)
    cfg = TrainConfig(data_root=str(root), output_dir=str(tmp_path / "runs"), class_names=("speckle",),
                      backbone="resnet18", teacher_weights="random", image_size=32, batch_size=4, epochs=2,
                      eval_every=1, device="cpu", progress=False, name="real",
                      synth={"realistic": 1.0, "fill_image": 0.5, "opacity_min": 0.3})
    (run,) = train(cfg)
    assert yaml.safe_load((run.run_dir / "config.yaml").read_text())["synth"]["realistic"] == 1.0
    assert run.last["pixel_auroc"] is not None
    out = tmp_path / "study"
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "head_study.py"), "--logdir", str(tmp_path / "runs"),
                           "--experiment", "real", "-o", str(out), "--sigmas", "2,4", "--topk", "10",
                           "--norms", "none,mean,z,quantile", "--banks", "8,50%"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "study.md").read_text()
    assert "levels=012 norm=none sigma=4 score=max" in text and "score=top10" in text
    assert "levels=012 norm=mean sigma=2 score=max" in text and "levels=012 norm=z sigma=4 score=max" in text
    assert "levels=012 norm=quantile sigma=4 score=max" in text
    assert "bank=8 fuse score=max" in text and "bank=50% knn score=top10" in text


def test_head_study_level_weights_of_one_reproduce_the_head():
    import torch

    from cdo_train.model.discrepancy import DiscrepancyHead
    from tools import head_study as mod

    g = torch.Generator().manual_seed(0)
    fe = [torch.randn(2, c, s, s, generator=g) for c, s in ((8, 16), (12, 8), (16, 4))]
    fa = [torch.randn(2, c, s, s, generator=g) for c, s in ((8, 16), (12, 8), (16, 4))]
    head = DiscrepancyHead((64, 64))
    ref, _ = head(fe, fa)
    assert torch.allclose(mod._amap(head, fe, fa, [0, 1, 2], [1.0, 1.0, 1.0]), ref, atol=1e-6)
    doubled = mod._amap(head, fe, fa, [0, 1, 2], [2.0, 2.0, 2.0])
    assert torch.allclose(doubled, 2 * ref, atol=1e-5)
    assert not torch.allclose(mod._amap(head, fe, fa, [0, 1, 2], [1.0, 0.0, 0.0]), ref, atol=1e-3)


def test_hard_presets_load():
    from cdo_train.training.config import load_config_file

    hard = TrainConfig().merged(load_config_file(REPO / "configs" / "hard.yaml"))
    assert (hard.image_size, hard.epochs, hard.synth) == (128, 60, {})
    real = hard.merged(load_config_file(REPO / "configs" / "realistic.yaml"))
    assert real.synth["realistic"] == 0.5 and real.epochs == 60


def test_head_study_quantile_weights_are_efficientads_scale():
    import torch

    from tools import head_study as mod

    fe = [torch.ones(1, 2, 4, 4)]
    fa = [torch.stack([torch.ones(4, 4), torch.linspace(-1, 1, 16).view(4, 4)])[None]]
    d = torch.cat([x.flatten() for x in mod.level_discrepancies(fe, fa)]).double()
    qa, qb = torch.quantile(d, torch.tensor([0.9, 0.995], dtype=torch.float64)).tolist()
    (mean, std, spread), = mod._level_stats((fe, fa))
    assert spread == pytest.approx(qb - qa) and spread > 0
    assert mean == pytest.approx(float(d.mean())) and std == pytest.approx(float(d.std()))
