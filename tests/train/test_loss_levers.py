"""The loss options of the accuracy issue: the hard-feature loss (``--hard-quantile``) and the
off-distribution penalty (``--penalty-dir``), in the loss, in the one training step and through ``cdo-train``."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
import torch

from cdo_train.model.cdo_model import CDOModel, ModelConfig
from cdo_train.training.loss import cdo_loss, hard_normal, penalty_loss
from cdo_train.training.step import StepPrecision, batch_loss
from tests.conftest import TRAIN_ARGS, run_cli


def _features(seed=0, b=2):
    g = torch.Generator().manual_seed(seed)
    fe = [torch.randn(b, 6, 16, 16, generator=g), torch.randn(b, 8, 8, 8, generator=g)]
    fa = [(e + 0.3 * torch.randn(e.shape, generator=g)).requires_grad_() for e in fe]
    return fe, fa


def test_hard_normal_keeps_the_top_quantile_of_normal_pixels_only():
    g = torch.Generator().manual_seed(1)
    d = torch.rand(2, 1, 16, 16, generator=g)
    s = torch.zeros_like(d)
    s[0, 0, :4, :4] = 1.0  # synthetic pixels stay synthetic, whatever their discrepancy
    hard = 1.0 - hard_normal(d, s, 0.9)
    assert torch.all(hard[s > 0.5] == 0)
    normal = d[s < 0.5]
    kept = d[hard > 0.5]
    assert 0.08 * normal.numel() <= kept.numel() <= 0.12 * normal.numel()
    assert kept.min() >= normal[(hard < 0.5)[s < 0.5]].max()


def test_hard_quantile_trains_only_the_hard_normal_pixels():
    fe, fa = _features()
    cdo_loss(fe, fa, None, hard_quantile=0.95).backward()
    grad = fa[0].grad.abs().sum(1)  # (B, h, w) at level 0's own resolution
    easy = grad == 0
    assert easy.float().mean() > 0.8  # most normal pixels no longer reach the student
    assert grad.sum() > 0
    # without the option every pixel is trained
    fe, fa = _features()
    cdo_loss(fe, fa, None).backward()
    assert (fa[0].grad.abs().sum(1) > 0).all()


def test_penalty_pushes_the_student_away_from_the_teacher():
    fe, fa = _features()
    before = -float(penalty_loss(fe, fa).detach())
    loss = penalty_loss(fe, fa)
    loss.backward()
    with torch.no_grad():
        moved = [a - 0.5 * a.grad for a in fa]
    assert -float(penalty_loss(fe, moved)) > before  # a gradient step raises the discrepancy


def test_batch_loss_adds_the_penalty_of_images_run_in_the_same_pass():
    torch.manual_seed(0)
    m = CDOModel(ModelConfig("resnet18", image_size=64, teacher_weights="random")).eval()
    p = StepPrecision(autocast=None, channels_last=False)
    x, pen = torch.rand(2, 3, 64, 64), torch.rand(1, 3, 64, 64)
    plain = batch_loss(m, x, None, gamma=2.0, oom=True, precision=p)
    both = batch_loss(m, x, None, gamma=2.0, oom=True, precision=p, penalty=pen, penalty_weight=0.5)
    with torch.no_grad():
        xn = (pen - m.mean) / m.std
        pen_term = penalty_loss(list(m.teacher(xn)), list(m.student(xn)))
    torch.testing.assert_close(both, plain + 0.5 * pen_term, atol=1e-5, rtol=1e-5)


@pytest.fixture()
def penalty_folder(tmp_path):
    folder = tmp_path / "penalty"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        cv2.imwrite(str(folder / f"p{i}.png"), rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))
    return folder


def test_cdo_train_with_both_options_trains_and_records_them(tiny_demo_root, tmp_path, penalty_folder):
    out = tmp_path / "runs"
    r = run_cli("cdo-train", "--data-root", tiny_demo_root, "--output-dir", out, *TRAIN_ARGS,
                "--hard-quantile", "0.9", "--penalty-dir", penalty_folder, "--penalty-batch", "2")
    assert r.returncode == 0, r.stderr
    run = out / "resnet18-none" / "weave" / "seed_111"
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"
    cfg = (run / "config.yaml").read_text()
    assert "hard_quantile: 0.9" in cfg and "penalty_batch: 2" in cfg and str(penalty_folder) in cfg


def test_bad_values_are_one_line_errors(tiny_demo_root, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, words in ((("--hard-quantile", "1.5"), "hard_quantile"),
                        (("--penalty-dir", empty), "penalty")):
        r = run_cli("cdo-train", "--data-root", tiny_demo_root, "--output-dir", tmp_path / "o", *TRAIN_ARGS, *args)
        assert r.returncode != 0
        assert "Traceback" not in r.stderr and words in r.stderr.lower(), r.stderr
