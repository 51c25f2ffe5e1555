"""Drift alarm on the scores of good parts: has the line moved away from the calibration set?

A lamp ages, a camera is bumped, a new material batch arrives: the scores of
good parts creep towards the threshold and false rejects rise long before
anyone looks. :class:`DriftMonitor` keeps a rolling window of the image scores
of parts judged **OK** and compares it with the held-out good scores the bundle
was calibrated on (``model.json`` ``normal_stats``: n, mean, std, p50, p95, p99,
max; a variant's own ``normal_stats`` when it has them). It never changes a
decision.

Every ``check_every`` OK parts, once the window holds ``min_parts``:

1. ``shift = (window mean - calibration mean) / calibration std``: how far the
   good parts moved, in calibration standard deviations (signed: a darker image
   may raise or lower the score, both matter);
2. a two-sample z-test of the two means under the hypothesis that the window
   is drawn from the calibration distribution (so with its std),
   ``z = (window mean - calibration mean) / (std * sqrt(1 / n_window + 1 / n))``,
   and its two-sided p-value: a shift only counts when it is not noise of a
   small window or a small calibration set (``n`` calibration scores; a bundle
   without ``n`` counts the window's noise only);
3. the state: ``alarm`` when ``|shift| >= alarm_shift`` and ``p < max_p``,
   ``warn`` when ``|shift| >= warn_shift`` and ``p < max_p``, else ``ok``. It
   rises one step per check (an alarm always follows a warn, one check later at
   the earliest, so a consumer always gets the warning first), and is left
   downwards only once ``|shift|`` is ``clear_margin`` below its level (no
   flapping at the border).

Also reported (informational, not part of the state): the window's p50/p95,
``p95_shift = (window p95 - calibration p95) / std`` and ``ks``: the
Kolmogorov-Smirnov distance between the window and the calibration
distribution, evaluated at the stored quantiles (p50, p95, p99; the raw
calibration scores are not in the bundle, so this is a lower bound of the full
KS statistic).

Defaults (:class:`DriftConfig`): window 500 OK parts, judged from 100, checked
every 10, warn at 1.0 std, alarm at 2.0 std, p < 0.001. A sudden shift of
``d`` standard deviations in a full window raises warn after about
``500 * 1.0 / d`` and alarm after about ``max(500 * 2.0 / d, warn + 10)`` OK
parts (each plus up to ``check_every``); a shift below 1 std never warns. States: ``off`` (the bundle
has no calibration mean/std), ``collecting`` (fewer than ``min_parts``),
``ok``, ``warn``, ``alarm``.

Example:
    >>> mon = DriftMonitor({"n": 50, "mean": 0.40, "std": 0.02, "p50": 0.40, "p95": 0.43, "p99": 0.45},
    ...                    DriftConfig(window=100, min_parts=20, check_every=1))
    >>> [mon.add(0.40 + 0.002 * (i % 5 - 2)) for i in range(30)][-1] is None
    True
    >>> mon.status().state
    'ok'
    >>> changes = [mon.add(0.50) for _ in range(100)]
    >>> [c for c in changes if c]
    [('ok', 'warn'), ('warn', 'alarm')]
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from pydantic import Field, model_validator

import numpy as np

from .errors import CdoError
from .schema import Float, Int, Schema

__all__ = ["DRIFT_STATES", "DriftConfig", "DriftMonitor", "DriftStatus"]

#: every state, in order of severity (``off`` and ``collecting`` judge nothing)
DRIFT_STATES = ("off", "collecting", "ok", "warn", "alarm")
_QUANTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))


class DriftConfig(Schema):
    """Drift monitor settings (see the module docstring for what each does)."""

    _what = "drift option"

    window: Int = Field(500, ge=1, description="OK parts in the rolling window compared with the bundle's "
                        "good-score statistics.")
    min_parts: Int = Field(100, ge=1, description="OK parts needed before the monitor judges (<= window).")
    check_every: Int = Field(10, ge=1, description="Judge every N OK parts.")
    warn_shift: Float = Field(1.0, gt=0, description="Shift of the score distribution, in good-score standard "
                              "deviations, that warns.")
    alarm_shift: Float = Field(2.0, gt=0, description="Shift that raises the alarm (>= warn_shift).")
    max_p: Float = Field(1e-3, gt=0, le=1, description="The shift must also be significant at this p-value.")
    clear_margin: Float = Field(0.25, ge=0, description="Hysteresis: a state clears this far below its threshold.")

    @model_validator(mode="after")
    def _ordered(self) -> "DriftConfig":
        if self.min_parts > self.window:
            raise CdoError(f"drift: min_parts ({self.min_parts}) must be <= window ({self.window})")
        if self.warn_shift > self.alarm_shift:
            raise CdoError(f"drift: warn_shift ({self.warn_shift}) must be <= alarm_shift ({self.alarm_shift})")
        return self


@dataclass
class DriftStatus:
    """The drift monitor's last judgement (``None``: not computed yet)."""

    state: str = "off"
    parts: int = 0
    seen: int = 0
    shift: float | None = None
    z: float | None = None
    p_value: float | None = None
    p95_shift: float | None = None
    ks: float | None = None
    window_mean: float | None = None
    window_p50: float | None = None
    window_p95: float | None = None
    ref_mean: float | None = None
    ref_std: float | None = None
    since_part: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    def format(self) -> str:
        """``drift ok (+0.3 sd)``, ``drift collecting 12/100``... for the status line."""
        if self.state in ("ok", "warn", "alarm") and self.shift is not None:
            return f"drift {self.state} ({self.shift:+.1f} sd)"
        return f"drift {self.state}"


def _reference(stats: Mapping[str, Any]) -> tuple[float, float, float | None] | None:
    """(mean, std, n) of the calibration scores; ``None`` without a usable mean and spread."""
    mean, std = stats.get("mean"), stats.get("std")
    if (std is None or not std > 0) and stats.get("p95") is not None and stats.get("p50") is not None:
        std = (float(stats["p95"]) - float(stats["p50"])) / 1.645  # normal approximation
    if mean is None or std is None or not float(std) > 0 or not math.isfinite(float(mean)):
        return None
    n = stats.get("n")
    return float(mean), float(std), (float(n) if n and n > 1 else None)


class DriftMonitor:
    """Rolling window of OK scores vs the bundle's calibration scores (not thread-safe: one feeder).

    Args:
        stats: ``normal_stats`` of the bundle (or of the variant that runs).
        config: window, levels and minimum parts.
    """

    def __init__(self, stats: Mapping[str, Any] | None, config: DriftConfig = DriftConfig()) -> None:
        self.config = config
        self.stats = dict(stats or {})
        self._ref = _reference(self.stats)
        self._window: deque[float] = deque(maxlen=config.window)
        self._status = DriftStatus(state="off" if self._ref is None else "collecting")
        if self._ref is not None:
            self._status.ref_mean, self._status.ref_std = self._ref[0], self._ref[1]
        self._since_check = 0

    @property
    def enabled(self) -> bool:
        return self._ref is not None

    def add(self, score: float) -> tuple[str, str] | None:
        """Add the score of an OK part; returns ``(old, new)`` when the state changed."""
        if self._ref is None or not math.isfinite(score):
            return None
        self._window.append(float(score))
        st = self._status
        st.seen += 1
        st.parts = len(self._window)
        self._since_check += 1
        if st.parts < self.config.min_parts or self._since_check < self.config.check_every:
            return None
        self._since_check = 0
        return self._judge()

    def _judge(self) -> tuple[str, str] | None:
        cfg, st = self.config, self._status
        mean_ref, std_ref, n_ref = self._ref  # type: ignore[misc]
        w = np.fromiter(self._window, dtype=np.float64, count=len(self._window))
        mean = float(w.mean())
        se = std_ref * math.sqrt(1.0 / w.size + (1.0 / n_ref if n_ref else 0.0))
        st.window_mean = mean
        st.window_p50, st.window_p95 = (float(v) for v in np.percentile(w, [50, 95]))
        st.shift = (mean - mean_ref) / std_ref
        st.z = (mean - mean_ref) / se
        st.p_value = math.erfc(abs(st.z) / math.sqrt(2.0))
        p95 = self.stats.get("p95")
        st.p95_shift = None if p95 is None else (st.window_p95 - float(p95)) / std_ref
        dists = [abs(float(np.mean(w <= float(self.stats[k]))) - q)
                 for k, q in _QUANTILES if self.stats.get(k) is not None]
        st.ks = max(dists) if dists else None
        size = abs(st.shift)
        significant = st.p_value < cfg.max_p
        new = "ok"
        if significant and size >= cfg.warn_shift:
            new = "alarm" if size >= cfg.alarm_shift else "warn"
        levels = {"warn": cfg.warn_shift, "alarm": cfg.alarm_shift}
        old = st.state
        if new == "alarm" and old in ("collecting", "ok"):
            new = "warn"  # one step per check: the warning always comes first
        if old in levels and DRIFT_STATES.index(new) < DRIFT_STATES.index(old):
            if size > levels[old] - cfg.clear_margin:
                new = old  # hysteresis: stay until clearly below the level
            elif new == "ok" and old == "alarm" and size > cfg.warn_shift - cfg.clear_margin:
                new = "warn"
        if new == old:
            return None
        st.state, st.since_part = new, st.seen
        return old, new

    def status(self) -> DriftStatus:
        """A copy of the current judgement."""
        return DriftStatus(**asdict(self._status))
