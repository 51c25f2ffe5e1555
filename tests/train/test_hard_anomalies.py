"""Realistic synthetic anomalies (``cdo_train.synth.shapes``) and the paper's path staying bit-identical."""

import pytest
import torch

from cdo_deploy.errors import CdoError
from cdo_train.synth.anomalies import SynthParams, synthesize
from cdo_train.synth.shapes import perlin_masks, perlin_noise
from cdo_train.training.config import TrainConfig
from cdo_train.synth.difficulty import resolve_knobs


def _paper_reference(images, generator):
    """The paper's generator as first committed (72fc499), written out independently."""
    b, _, h, w = images.shape
    counts = torch.randint(0, 5, (b,), generator=generator)
    geo = torch.rand(b, 4, 4, generator=generator)
    noise = torch.rand(b, 3, h, w, generator=generator)
    mask = torch.zeros(b, 1, h, w)
    for i in range(b):
        for k in range(int(counts[i])):
            cy, cx, sh, sw = geo[i, k].tolist()
            hh = max(1, int(h * (1 / 40 + (1 / 10 - 1 / 40) * sh)))
            hw = max(1, int(w * (1 / 40 + (1 / 10 - 1 / 40) * sw)))
            y, x = int(cy * h), int(cx * w)
            mask[i, 0, max(0, y - hh) : y + hh, max(0, x - hw) : x + hw] = 1.0
    return images * (1.0 - mask) + noise.clamp(0, 1) * mask, mask


def _loop_rectangles(counts, geo, h, w, lo, hi):
    """The rectangle masks as the per-image loop drew them before the generator was vectorised."""
    mask = torch.zeros(len(counts), 1, h, w)
    for i in range(len(counts)):
        for k in range(int(counts[i])):
            cy, cx, sh, sw = geo[i, k].tolist()
            hh = max(1, int(h * (lo + (hi - lo) * sh)))
            hw = max(1, int(w * (lo + (hi - lo) * sw)))
            y, x = int(cy * h), int(cx * w)
            mask[i, 0, max(0, y - hh) : y + hh, max(0, x - hw) : x + hw] = 1.0
    return mask


@pytest.mark.parametrize("params,hw", [
    (SynthParams(count_min=2, half_max=0.3, opacity=0.5), (40, 48)),
    (SynthParams(count_max=8, half_min=0.01, half_max=0.6), (37, 91)),
    (SynthParams(cutoff=0.1, amplitude=0.5), (64, 64)),
    (SynthParams(count_min=0, count_max=0), (32, 32)),
])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_vectorised_rectangles_are_the_loops_pixels(params, hw, seed):
    x = torch.rand(7, 3, *hw, generator=torch.Generator().manual_seed(seed))
    got_x, got_m = synthesize(x, params, torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(params.count_min, params.count_max + 1, (7,), generator=g)
    geo = torch.rand(7, max(params.count_max, 1), 4, generator=g)
    assert torch.equal(got_m, _loop_rectangles(counts, geo, *hw, params.half_min, params.half_max))
    keep = got_m == 0
    assert torch.equal(got_x.masked_select(keep), x.masked_select(keep))  # untouched outside the rectangles
    assert float(got_x.min()) >= 0.0 and float(got_x.max()) <= 1.0


def _images(n=6, size=64, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_default_params_are_the_papers_generator_bit_for_bit():
    x = _images()
    ref = _paper_reference(x, torch.Generator().manual_seed(7))
    got = synthesize(x, SynthParams(), torch.Generator().manual_seed(7))
    assert torch.equal(ref[0], got[0]) and torch.equal(ref[1], got[1]) and ref[1].sum() > 0


def test_new_fields_do_nothing_while_realistic_is_zero():
    x = _images()
    a = synthesize(x, SynthParams(), torch.Generator().manual_seed(3))
    b = synthesize(x, SynthParams(perlin=0.2, fill_image=0.1, fill_tint=0.9, opacity_min=0.9),
                   torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_realistic_anomalies_change_only_masked_pixels_and_are_deterministic():
    x = _images(n=8)
    p = SynthParams(realistic=1.0, opacity_min=0.3)
    y, m = synthesize(x, p, torch.Generator().manual_seed(5))
    y2, m2 = synthesize(x, p, torch.Generator().manual_seed(5))
    assert torch.equal(y, y2) and torch.equal(m, m2)
    assert set(m.unique().tolist()) <= {0.0, 1.0} and m.sum() > 0
    assert torch.equal(y * (1 - m), x * (1 - m))  # nothing outside the mask changes
    assert 0.0 <= float(y.min()) and float(y.max()) <= 1.0
    counts = torch.randint(0, 5, (8,), generator=torch.Generator().manual_seed(5))
    assert all(m[i].sum() == 0 for i in range(8) if counts[i] == 0)  # anomaly-free images stay so


def test_realistic_masks_are_irregular_not_rectangles():
    x = _images(n=8, size=96)
    _, m = synthesize(x, SynthParams(realistic=1.0, perlin=1.0), torch.Generator().manual_seed(2))
    irregular = 0
    for i in range(8):
        ys, xs = torch.nonzero(m[i, 0], as_tuple=True)
        if len(ys):
            box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
            irregular += int(len(ys) < 0.9 * box)
    assert irregular >= 3


def test_fills_tint_and_other_image():
    x = _images(n=4).clamp(0.2, 0.7)  # no clipping by the tint
    tint = SynthParams(realistic=1.0, fill_image=0.0, fill_tint=1.0, opacity_min=1.0, count_min=1)
    y, m = synthesize(x, tint, torch.Generator().manual_seed(1))
    for i in range(4):
        inside = m[i, 0] > 0
        gain = (y[i][:, inside] / x[i][:, inside])  # (3, n): one gain per channel, 20-40 % off 1
        assert torch.allclose(gain, gain[:, :1].expand_as(gain), atol=1e-5)
        assert ((gain[:, 0] - 1).abs() >= 0.2 - 1e-5).all() and ((gain[:, 0] - 1).abs() <= 0.4 + 1e-5).all()
    other = SynthParams(realistic=1.0, fill_image=1.0, fill_tint=0.0, opacity_min=1.0, count_min=1)
    y, m = synthesize(x, other, torch.Generator().manual_seed(1))
    inside = m.expand_as(x) > 0
    # bilinear zoom of other batch images: values stay in the batch's range and differ from the image's own
    assert inside.any() and float(y[inside].min()) >= 0.2 - 1e-6 and float(y[inside].max()) <= 0.7 + 1e-6
    assert not torch.equal(y[inside], x[inside])


def test_perlin_noise_and_mask_area():
    g = torch.Generator().manual_seed(0)
    n = perlin_noise(64, 80, 16.0, g)
    assert n.shape == (64, 80) and float(n.abs().max()) <= 1.5 and float(n.std()) > 0.1
    m = perlin_masks(3, 64, 64, [0.05, 0.1, 0.2], [0.02, 0.1, 0.3], g)
    assert m.shape == (3, 1, 64, 64)
    assert [round(float(v), 2) for v in m.mean((1, 2, 3))] == pytest.approx([0.02, 0.1, 0.3], abs=0.01)


def test_synth_params_validation_and_config():
    with pytest.raises(CdoError, match="did you mean realistic"):
        SynthParams.from_dict({"realistc": 0.5})
    with pytest.raises(CdoError, match="realistic must be in"):
        SynthParams(realistic=1.5)
    with pytest.raises(CdoError, match="fill_image \\+ fill_tint"):
        SynthParams(fill_image=0.8, fill_tint=0.5)
    with pytest.raises(CdoError, match="unknown synth key"):
        TrainConfig(synth={"perlin_share": 1.0})
    assert TrainConfig(synth={"realistic": 0.5}).synth == {"realistic": 0.5}


def test_realism_knob_is_the_paper_at_t0_and_drives_the_share():
    assert resolve_knobs(["realism"], 0.0, SynthParams(), 2.0)[0] == SynthParams()
    assert resolve_knobs(["realism"], 1.0, SynthParams(), 2.0)[0].realistic == 1.0
    half = resolve_knobs(["realism", "blending"], 0.5, SynthParams(), 2.0, {"realism": {"hard": 0.6}})[0]
    assert half.realistic == pytest.approx(0.3) and half.opacity == pytest.approx(0.75)
