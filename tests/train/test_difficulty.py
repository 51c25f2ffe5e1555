"""Difficulty knobs: endpoints, monotonicity, combination, ranges, and t = 0 == the paper's generator."""

import pytest
import torch

from cdo_deploy.errors import CdoError
from cdo_train.synth.anomalies import SynthParams, synthesize
from cdo_train.synth.difficulty import KNOBS, resolve_knobs, validate_knobs

GENERATOR_KNOBS = ["amplitude", "frequency", "blending", "size", "count"]
TS = [i / 10 for i in range(11)]


def _at(knobs, t, ranges=None, gamma=2.0):
    return resolve_knobs(knobs, t, SynthParams(), gamma, ranges)


def _images(seed=0, n=4, size=64):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_every_generator_knob_is_the_papers_generator_at_t0():
    assert set(GENERATOR_KNOBS + ["gamma"]) <= set(KNOBS)
    for name in GENERATOR_KNOBS:
        assert _at([name], 0.0) == (SynthParams(), 2.0), name
    assert _at(GENERATOR_KNOBS, 0.0) == (SynthParams(), 2.0)


def test_synthesize_at_t0_equals_the_baseline_generator_bit_for_bit():
    x = _images()
    base = synthesize(x, SynthParams(), torch.Generator().manual_seed(7))
    params, _ = _at(GENERATOR_KNOBS, 0.0)
    knobbed = synthesize(x, params, torch.Generator().manual_seed(7))
    assert torch.equal(base[0], knobbed[0]) and torch.equal(base[1], knobbed[1])
    assert base[1].sum() > 0


def test_knob_endpoints_at_t1():
    p, _ = _at(["amplitude"], 1.0)
    assert p.amplitude == KNOBS.get("amplitude")["hard"] < 1.0
    assert _at(["blending"], 1.0)[0].opacity == KNOBS.get("blending")["hard"]
    assert _at(["frequency"], 1.0)[0].cutoff == pytest.approx(KNOBS.get("frequency")["hard"])
    p = _at(["size"], 1.0)[0]
    f = KNOBS.get("size")["hard"]
    assert (p.half_min, p.half_max) == pytest.approx((SynthParams().half_min * f, SynthParams().half_max * f))
    p = _at(["count"], 1.0)[0]
    assert p.count_max == KNOBS.get("count")["hard"] and p.half_max == pytest.approx(0.1 * (4 / p.count_max) ** 0.5)
    assert _at(["gamma"], 0.0)[1] == 0.0 and _at(["gamma"], 1.0, gamma=3.0)[1] == 3.0


@pytest.mark.parametrize("knob,field,direction", [
    ("amplitude", "amplitude", -1), ("blending", "opacity", -1), ("size", "half_max", -1),
    ("count", "count_max", +1), ("count", "half_max", -1), ("frequency", "cutoff", -1)])
def test_knobs_are_monotone_in_t(knob, field, direction):
    values = [getattr(_at([knob], t)[0], field) for t in TS[1:]]  # frequency: t = 0 is "no filter"
    assert all(direction * (b - a) >= 0 for a, b in zip(values, values[1:])), values
    assert values[0] != values[-1]


def test_gamma_knob_ramps_up_and_leaves_the_generator_alone():
    gammas = [_at(["gamma"], t)[1] for t in TS]
    assert gammas == sorted(gammas) and gammas[-1] == 2.0
    assert all(_at(["gamma"], t)[0] == SynthParams() for t in TS)


def test_knobs_combine_and_share_fields_multiplicatively():
    p, _ = _at(["amplitude", "blending"], 1.0)
    assert (p.amplitude, p.opacity) == (KNOBS.get("amplitude")["hard"], KNOBS.get("blending")["hard"])
    both = _at(["size", "count"], 1.0)[0]
    count = _at(["count"], 1.0)[0]
    assert both.half_max == pytest.approx(count.half_max * KNOBS.get("size")["hard"])


def test_ranges_override_the_ends_and_are_validated():
    p, _ = _at(["amplitude"], 1.0, {"amplitude": {"hard": 0.5}})
    assert p.amplitude == 0.5
    p, _ = _at(["frequency"], 0.0, {"frequency": {"easy": 0.25, "hard": 0.05}})
    assert p.cutoff == pytest.approx(0.25)
    validate_knobs(["amplitude", "frequency"], {"amplitude": {"easy": 1.0, "hard": 0.2}, "frequency": {"easy": None}})
    for knobs, ranges, needle in [(["amplitud"], {}, "did you mean amplitude"),
                                  ([], {"amplitude": {"hard": 1.5}}, r"\[0.0, 1.0\]"),
                                  ([], {"blending": {"hardest": 0.1}}, "easy and/or hard"),
                                  ([], {"size": {"easy": None}}, "number"),
                                  ([], {"sizes": {}}, "did you mean size")]:
        with pytest.raises(CdoError, match=needle):
            validate_knobs(knobs, ranges)


def test_harder_anomalies_are_less_visible():
    x = torch.full((4, 3, 64, 64), 0.5) + 0.1 * _images(1)

    def contrast(knobs, t):
        params, _ = _at(knobs, t)
        y, m = synthesize(x, params, torch.Generator().manual_seed(3))
        return float(((y - x).abs() * m).sum() / m.sum().clamp_min(1) / 3)

    for knobs in (["amplitude"], ["blending"], ["amplitude", "blending", "size"]):
        c = [contrast(knobs, t) for t in (0.0, 0.5, 1.0)]
        assert c[0] > c[1] > c[2], (knobs, c)

    def roughness(t):
        params, _ = _at(["frequency"], t)
        y, m = synthesize(torch.zeros(4, 3, 64, 64), params, torch.Generator().manual_seed(3))
        inside = m[..., 1:] * m[..., :-1]
        return float(((y[..., 1:] - y[..., :-1]).abs() * inside).sum() / inside.sum())

    assert roughness(0.0) > roughness(0.5) > roughness(1.0)

    def area(t):
        params, _ = _at(["size"], t)
        return float(synthesize(x, params, torch.Generator().manual_seed(3))[1].sum())

    assert area(0.0) > area(1.0)
