"""Difficulty knobs: turn the curriculum's t in [0, 1] into synthetic-anomaly parameters.

Each knob moves one quantity from its easy end (t = 0, the paper's
generator) to its hard end (t = 1). Knobs combine: each edits the
``SynthParams`` (or the OOM gamma) it owns. Ranges can be overridden per
knob (``knob_ranges: {amplitude: {easy: 1.0, hard: 0.2}}`` in YAML).

Example:
    >>> from cdo_train.anomalies import SynthParams
    >>> p, g = resolve_knobs([], 0.5, SynthParams(), gamma=2.0)
    >>> p == SynthParams(), g
    (True, 2.0)
"""

from __future__ import annotations

from typing import Any, Callable

from cdo_deploy.registry import Registry

from .anomalies import SynthParams

__all__ = ["KNOBS", "Knob", "resolve_knobs"]

# A knob: (t, params, gamma, easy, hard) -> (params, gamma)
Knob = Callable[[float, SynthParams, float, Any, Any], "tuple[SynthParams, float]"]
KNOBS: Registry[dict[str, Any]] = Registry("difficulty knob")


def resolve_knobs(
    knobs: list[str] | tuple[str, ...],
    t: float,
    base: SynthParams,
    gamma: float,
    ranges: dict[str, Any] | None = None,
) -> tuple[SynthParams, float]:
    """Apply every knob at difficulty ``t`` to the baseline parameters and gamma."""
    ranges = ranges or {}
    params = base
    for name in knobs:
        entry = KNOBS.get(name)
        r = ranges.get(name, {})
        easy = r.get("easy", entry["easy"])
        hard = r.get("hard", entry["hard"])
        params, gamma = entry["apply"](t, params, gamma, easy, hard)
    return params, gamma
