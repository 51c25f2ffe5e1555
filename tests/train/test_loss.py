"""The CDO loss: gradient signs, OOM weights, empty synthetic set, no batch scaling."""

import pytest
import torch

from cdo_train.model.discrepancy import level_discrepancy
from cdo_train.training.loss import cdo_loss, oom_weights


def _features(seed=0, b=2, c=8, h=8):
    g = torch.Generator().manual_seed(seed)
    fe = [torch.randn(b, c, h, h, generator=g), torch.randn(b, c, h // 2, h // 2, generator=g)]
    fa = [torch.randn(b, c, h, h, generator=g, requires_grad=True), torch.randn(b, c, h // 2, h // 2, generator=g)]
    return fe, fa


def _mask(b=2, h=32):
    m = torch.zeros(b, 1, h, h)
    m[:, :, 4:16, 4:16] = 1.0
    return m


def test_discrepancy_matches_normalised_difference():
    fe, fa = _features()
    ref = ((torch.nn.functional.normalize(fe[0], dim=1) - torch.nn.functional.normalize(fa[0], dim=1)) ** 2).sum(1, keepdim=True)
    assert torch.allclose(level_discrepancy(fe[0], fa[0]), ref, atol=1e-5)


@pytest.mark.parametrize("oom", [True, False])
def test_gradient_pulls_normal_down_and_pushes_synthetic_up(oom):
    fe, fa = _features()
    d = level_discrepancy(fe[0], fa[0]).detach().requires_grad_(True)
    s = torch.nn.functional.interpolate(_mask(), size=d.shape[-2:], mode="area")
    s = (s > 0.5).float()
    if oom:
        w_n, w_s = oom_weights(d, s, 2.0)
    else:
        w_n, w_s = 1 - s, s
    loss = ((w_n * d).sum() - (w_s * d).sum()) / (w_n.sum() + w_s.sum())
    loss.backward()
    assert (d.grad[s == 0] > 0).all(), "minimising must lower d on normal pixels"
    assert (d.grad[s == 1] < 0).all(), "minimising must raise d on synthetic pixels"


def test_oom_weights_follow_definition():
    d = torch.tensor([[[[1.0, 2.0], [3.0, 6.0]]]])
    s = torch.tensor([[[[0.0, 0.0], [1.0, 1.0]]]])
    w_n, w_s = oom_weights(d, s, gamma=2.0)
    mean_n, mean_s = 1.5, 4.5
    assert torch.allclose(w_n[0, 0, 0], torch.tensor([(1 / mean_n) ** 2, (2 / mean_n) ** 2]))
    assert torch.allclose(w_s[0, 0, 1], torch.tensor([(mean_s / 3) ** 2, (mean_s / 6) ** 2]))
    assert float(w_n[s == 1].abs().sum()) == 0 and float(w_s[s == 0].abs().sum()) == 0
    assert not w_n.requires_grad


def test_gamma_reaches_the_loss():
    fe, fa = _features()
    values = {g: float(cdo_loss(fe, fa, _mask(), gamma=g).detach()) for g in (0.0, 1.0, 4.0)}
    assert len({round(v, 6) for v in values.values()}) == 3


def test_gamma_zero_equals_oom_off():
    fe, fa = _features()
    a = cdo_loss(fe, fa, _mask(), gamma=0.0, oom=True)
    b = cdo_loss(fe, fa, _mask(), oom=False)
    assert torch.allclose(a, b, atol=1e-6)


def test_empty_synthetic_set_and_no_mask_work():
    fe, fa = _features()
    empty = cdo_loss(fe, fa, torch.zeros(2, 1, 32, 32))
    none = cdo_loss(fe, fa, None)
    assert torch.isfinite(empty) and torch.allclose(empty, none)
    none.backward()
    assert torch.isfinite(fa[0].grad).all()


def test_identical_features_and_all_synthetic_are_finite():
    fe, _ = _features()
    loss = cdo_loss(fe, [f.clone().requires_grad_(True) for f in fe], torch.ones(2, 1, 32, 32))
    assert torch.isfinite(loss)


def test_no_scaling_by_batch_size():
    fe, fa = _features(b=2)
    fe2 = [torch.cat([f, f]) for f in fe]
    fa2 = [torch.cat([f, f]) for f in fa]
    m = _mask(b=2)
    assert torch.allclose(cdo_loss(fe, fa, m), cdo_loss(fe2, fa2, torch.cat([m, m])), atol=1e-6)
