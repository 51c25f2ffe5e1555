"""Difficulty knobs: turn the curriculum's t in [0, 1] into synthetic-anomaly parameters.

Each knob moves one quantity from its easy end (t = 0) to its hard end
(t = 1). Knobs combine: each edits the ``SynthParams`` fields (or the OOM
gamma) it owns, multiplicatively where two knobs share a field (``size`` and
``count`` both scale the patch sizes). With the default easy ends every
generator knob reproduces the paper's generator at t = 0.

=========  ===================================  ======  ======  ===============================
knob       quantity                             easy    hard    t = 0 is the paper's
=========  ===================================  ======  ======  ===============================
amplitude  noise band around mid-grey           1.0     0.3     yes
frequency  Butterworth cutoff, cycles/pixel     white   0.03    yes (white = no filter)
blending   anomaly opacity                      1.0     0.5     yes
size       patch-size factor                    1.0     0.5     yes
count      max patches per image (area-kept)    4       16      yes
gamma      OOM focusing exponent                0.0     config  no: gamma 0 at t = 0 (loss knob)
realism    share of realistic anomalies         0.0     1.0     yes (0 = the paper's rectangles)
=========  ===================================  ======  ======  ===============================

``frequency`` interpolates the cutoff geometrically from 0.5 (Nyquist, about
white) to ``hard``; an easy end of ``null`` means "no filter at t = 0".
``count`` shrinks patch sides by sqrt(easy / count) so the anomalous area
stays about the same. ``gamma``'s hard end ``null`` means the configured
``gamma``. Ranges are overridden per knob in YAML::

    knob_ranges: {amplitude: {easy: 1.0, hard: 0.2}, frequency: {hard: 0.05}}

Example:
    >>> from cdo_train.synth.anomalies import SynthParams
    >>> p, g = resolve_knobs([], 0.5, SynthParams(), gamma=2.0)
    >>> p == SynthParams(), g
    (True, 2.0)
    >>> p, g = resolve_knobs(["amplitude", "blending"], 1.0, SynthParams(), gamma=2.0)
    >>> p.amplitude, p.opacity
    (0.3, 0.5)
"""

from __future__ import annotations

import math
from typing import Any, Callable

from cdo_deploy.errors import CdoError
from cdo_deploy.registry import Registry

from .anomalies import SynthParams

__all__ = ["KNOBS", "Knob", "knob", "resolve_knobs", "validate_knobs"]

# A knob: (t, params, gamma, easy, hard) -> (params, gamma)
Knob = Callable[[float, SynthParams, float, Any, Any], "tuple[SynthParams, float]"]
KNOBS: Registry[dict[str, Any]] = Registry("difficulty knob")
_NYQUIST = 0.5


def knob(name: str, easy: Any, hard: Any, bounds: tuple[float, float], nullable: str = "") -> Callable[[Knob], Knob]:
    """Register ``fn`` as knob ``name`` with default ends and the bounds valid ends must lie in.

    Args:
        name: knob name (``--knobs`` value).
        easy: default value at t = 0.
        hard: default value at t = 1.
        bounds: inclusive (low, high) range for configured ends.
        nullable: which ends may be ``None`` ("easy", "hard" or "").
    """

    def deco(fn: Knob) -> Knob:
        KNOBS.register(name)({"easy": easy, "hard": hard, "apply": fn, "bounds": bounds, "nullable": nullable})
        return fn

    return deco


def _lerp(a: float, b: float, t: float) -> float:
    return (1.0 - t) * a + t * b  # exact at both ends


@knob("amplitude", 1.0, 0.3, (0.0, 1.0))
def _amplitude(t, p, gamma, easy, hard):
    return p.replace(amplitude=p.amplitude * _lerp(easy, hard, t)), gamma


@knob("frequency", None, 0.03, (1e-3, _NYQUIST), nullable="easy")
def _frequency(t, p, gamma, easy, hard):
    if easy is None and t == 0.0:
        return p, gamma
    lo = math.log(_NYQUIST if easy is None else easy)
    return p.replace(cutoff=math.exp(_lerp(lo, math.log(hard), t))), gamma


@knob("blending", 1.0, 0.5, (0.0, 1.0))
def _blending(t, p, gamma, easy, hard):
    return p.replace(opacity=p.opacity * _lerp(easy, hard, t)), gamma


@knob("size", 1.0, 0.5, (0.05, 4.0))
def _size(t, p, gamma, easy, hard):
    f = _lerp(easy, hard, t)
    return p.replace(half_min=p.half_min * f, half_max=p.half_max * f), gamma


@knob("count", 4, 16, (1, 64))
def _count(t, p, gamma, easy, hard):
    n = max(1, int(round(_lerp(easy, hard, t))))
    f = math.sqrt(easy / n)
    return p.replace(count_max=n, half_min=p.half_min * f, half_max=p.half_max * f), gamma


@knob("gamma", 0.0, None, (0.0, 16.0), nullable="hard")
def _gamma(t, p, gamma, easy, hard):
    return p, _lerp(easy, gamma if hard is None else hard, t)


@knob("realism", 0.0, 1.0, (0.0, 1.0))
def _realism(t, p, gamma, easy, hard):
    # Perlin masks, fills from the training data, opacity range: cdo_train.synth.shapes
    return p.replace(realistic=_lerp(easy, hard, t)), gamma


def validate_knobs(knobs: list[str] | tuple[str, ...], ranges: dict[str, Any] | None = None) -> None:
    """Check knob names and configured ranges; raises ``CdoError`` saying what to fix."""
    for name in knobs:
        KNOBS.get(name)
    if not isinstance(ranges or {}, dict):
        raise CdoError("knob_ranges must map knob -> {easy: ..., hard: ...}")
    for name, r in (ranges or {}).items():
        entry = KNOBS.get(name)
        if not isinstance(r, dict) or set(r) - {"easy", "hard"}:
            raise CdoError(f"knob_ranges.{name} must be a mapping with keys easy and/or hard, got {r!r}")
        lo, hi = entry["bounds"]
        for end, value in r.items():
            if value is None and end == entry["nullable"]:
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not lo <= value <= hi:
                raise CdoError(f"knob_ranges.{name}.{end} must be a number in [{lo}, {hi}], got {value!r}")


def resolve_knobs(
    knobs: list[str] | tuple[str, ...],
    t: float,
    base: SynthParams,
    gamma: float,
    ranges: dict[str, Any] | None = None,
) -> tuple[SynthParams, float]:
    """Apply every knob at difficulty ``t`` to the baseline parameters and gamma.

    Args:
        knobs: knob names, applied in order.
        t: difficulty in [0, 1].
        base: parameters before any knob (normally the paper's ``SynthParams()``).
        gamma: the configured OOM exponent.
        ranges: per-knob ``{easy, hard}`` overrides.

    Returns:
        ``(params, gamma)`` to use at this step.
    """
    ranges = ranges or {}
    params = base
    for name in knobs:
        entry = KNOBS.get(name)
        r = ranges.get(name, {})
        easy = r.get("easy", entry["easy"])
        hard = r.get("hard", entry["hard"])
        params, gamma = entry["apply"](t, params, gamma, easy, hard)
    return params, gamma
