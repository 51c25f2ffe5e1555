"""Curriculum schedules: shape (monotone, endpoints, bounds), parameters, self-paced rule."""

import math

import pytest

from cdo_deploy.errors import CdoError
from cdo_train.training.curriculum import PACING_FUNCTIONS, SCHEDULES, Schedule, build_schedule

GRID = [i / 200 for i in range(201)]
RISING = ["linear", "quadratic", "root", "exponential", "logarithmic", "step", "function-step"]


def _curve(name, **params):
    s = build_schedule(name, params, seed=0)
    return [s.difficulty(p) for p in GRID]


def test_every_registered_schedule_stays_in_unit_interval():
    assert {"none", "linear", "step", "function-step", "root", "quadratic", "exponential", "logarithmic",
            "random", "anti", "self-paced"} <= set(SCHEDULES)
    for name in SCHEDULES:
        s = build_schedule(name, seed=1)
        for p in GRID:
            t = s.difficulty(p)
            s.observe(1.0)
            assert 0.0 <= t <= 1.0, (name, p, t)
        assert isinstance(s.state(), dict)


@pytest.mark.parametrize("name", RISING)
def test_rising_schedules_are_monotone_from_0_to_1(name):
    ts = _curve(name)
    assert ts[0] == 0.0 and ts[-1] == pytest.approx(1.0)
    assert all(b >= a for a, b in zip(ts, ts[1:])), name


def test_anti_is_monotone_from_hard_to_easy_and_none_is_constant():
    ts = _curve("anti")
    assert ts[0] == 1.0 and ts[-1] == pytest.approx(0.0)
    assert all(b <= a for a, b in zip(ts, ts[1:]))
    assert set(_curve("none")) == {0.0}
    assert set(_curve("none", t=0.4)) == {0.4}


def test_pacing_families_match_wu_dyer_neyshabur():
    for p, expect in [(0.25, 0.25), (0.5, 0.5)]:
        assert build_schedule("linear").difficulty(p) == pytest.approx(expect)
    assert build_schedule("quadratic").difficulty(0.5) == pytest.approx(0.25)
    assert build_schedule("root").difficulty(0.25) == pytest.approx(0.5)
    assert build_schedule("exponential").difficulty(0.5) == pytest.approx((math.exp(5) - 1) / (math.exp(10) - 1))
    assert build_schedule("logarithmic").difficulty(0.5) == pytest.approx(1 + math.log(0.5 + math.exp(-10)) / 10)
    for f in PACING_FUNCTIONS.values():
        assert f(0.0) == pytest.approx(0.0, abs=1e-4) and f(1.0) == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["linear", "quadratic", "root", "exponential", "logarithmic"])
def test_start_level_and_saturation_point(name):
    s = build_schedule(name, {"start": 0.2, "saturation": 0.6})
    assert s.difficulty(0.0) == pytest.approx(0.2)
    for p in (0.6, 0.8, 1.0):
        assert s.difficulty(p) == pytest.approx(1.0)
    assert 0.2 <= s.difficulty(0.3) <= 1.0
    assert build_schedule(name, {"end": 0.5}).difficulty(1.0) == pytest.approx(0.5)


def test_step_has_k_equal_stages_and_function_step_follows_the_function():
    ts = _curve("step", stages=3)
    assert sorted(set(ts)) == pytest.approx([0.0, 0.5, 1.0])
    assert ts[GRID.index(0.33)] == 0.0 and ts[GRID.index(0.34)] == 0.5 and ts[GRID.index(0.67)] == 1.0
    levels = sorted(set(_curve("function-step", stages=4, function="quadratic")))
    assert levels == pytest.approx([0.0, 1 / 9, 4 / 9, 1.0])
    assert sorted(set(_curve("function-step", stages=3, function="root"))) == pytest.approx([0, math.sqrt(0.5), 1])


def test_anti_takes_a_pacing_function():
    assert build_schedule("anti", {"function": "quadratic"}).difficulty(0.5) == pytest.approx(0.75)


def test_random_is_uniform_within_bounds_and_seeded():
    a = _curve("random", low=0.2, high=0.6, seed=3)
    assert all(0.2 <= t <= 0.6 for t in a) and len(set(a)) > 100
    assert a == _curve("random", low=0.2, high=0.6, seed=3)
    assert a != _curve("random", low=0.2, high=0.6, seed=4)
    run1 = build_schedule("random", seed=111)
    run2 = build_schedule("random", seed=112)
    assert [run1.difficulty(0) for _ in range(5)] != [run2.difficulty(0) for _ in range(5)]
    assert abs(sum(_curve("random", seed=0)) / len(GRID) - 0.5) < 0.08


def _feed(s, losses):
    ts = []
    for loss in losses:
        ts.append(s.difficulty(0.0))
        s.observe(loss)
    return ts + [s.difficulty(1.0)]


def test_self_paced_advances_only_when_the_loss_stops_improving():
    s = build_schedule("self-paced", {"window": 2, "patience": 1, "increment": 0.25, "min_delta": 0.01})
    improving = [10.0 - 0.5 * i for i in range(20)]
    assert set(_feed(s, improving)) == {0.0}
    s = build_schedule("self-paced", {"window": 2, "patience": 1, "increment": 0.25, "min_delta": 0.01})
    ts = _feed(s, [1.0] * 4)  # window 1 sets the best, window 2 is no better -> advance
    assert ts[-1] == 0.25 and s.state() == {"stale_windows": 0}
    ts = _feed(s, [1.0] * 40)
    assert ts[-1] == 1.0 and max(ts) == 1.0


def test_self_paced_never_runs_backwards_and_respects_patience_and_end():
    s = build_schedule("self-paced", {"window": 1, "patience": 3, "increment": 0.5, "end": 0.5})
    noisy = [1.0, 5.0, 0.2, 9.0, 9.0, 9.0, 0.1, 3.0, 3.0, 3.0] * 4
    ts = _feed(s, noisy)
    assert all(b >= a for a, b in zip(ts, ts[1:]))
    assert ts[-1] == 0.5 and ts[5] == 0.0  # needs 3 stale windows in a row


def test_bad_parameters_are_user_errors_that_list_what_is_accepted():
    with pytest.raises(CdoError, match="accepts: stages, start, saturation, end"):
        build_schedule("step", {"stagez": 3})
    with pytest.raises(CdoError, match="did you mean linear"):
        build_schedule("lineer")
    for name, params, needle in [("linear", {"saturation": 0}, "saturation"), ("step", {"stages": 1}, "stages"),
                                 ("random", {"low": 0.8, "high": 0.2}, "low <= high"),
                                 ("function-step", {"function": "cubic"}, "quadratic"),
                                 ("self-paced", {"window": 0}, "window"), ("none", {"t": 2}, "[0, 1]")]:
        with pytest.raises(CdoError, match=needle):
            build_schedule(name, params)


def test_a_new_schedule_is_a_few_lines():
    from cdo_train.training.curriculum import Pacing

    @SCHEDULES.register("test-cubic")
    class Cubic(Pacing):
        def shape(self, x):
            return x**3

    assert build_schedule("test-cubic", {"start": 0.5}).difficulty(0.5) == pytest.approx(0.5625)
    assert issubclass(Cubic, Schedule)
    with pytest.raises(ValueError):
        SCHEDULES.register("linear")(Cubic)
