"""Curriculum schedules: training progress p in [0, 1] -> difficulty t in [0, 1].

A schedule is a small class behind the ``SCHEDULES`` registry. ``difficulty``
is called once per training step with the progress so far; ``observe`` gets
the step's loss (only ``self-paced`` uses it); ``state`` is logged next to the
metrics. A new schedule is a few lines::

    @SCHEDULES.register("cubic")
    class Cubic(Pacing):
        def shape(self, x):
            return x ** 3

Registered schedules:

* ``none``: fixed difficulty ``t`` (default 0: the paper's generator).
* Pacing families of Wu, Dyer and Neyshabur (ICLR 2021), all with start level
  ``start`` (their b), saturation point ``saturation`` (their a: the fraction
  of training after which t stays at ``end``) and ``end`` (default 1):
  ``t = start + (end - start) * f(min(1, p / saturation))`` with f = ``linear``
  x, ``quadratic`` x^2, ``root`` sqrt(x), ``exponential`` (e^(10x) - 1)/(e^10 - 1),
  ``logarithmic`` 1 + ln(x + e^-10)/10.
* ``step``: ``stages`` equal stages with levels 0, 1/(k-1), ..., 1;
  ``function-step``: the same stages with levels f(i/(k-1)) for a named
  ``function`` (default quadratic).
* ``anti``: hard to easy, t = 1 - (a pacing ``function``, default linear).
* ``random``: t drawn uniformly in [low, high] at every step (the control).
* ``self-paced``: see :class:`SelfPaced` for the rule.

Example:
    >>> SCHEDULES.get("none")().difficulty(0.7)
    0.0
    >>> [round(build_schedule("step", {"stages": 3}).difficulty(p), 2) for p in (0.0, 0.5, 1.0)]
    [0.0, 0.5, 1.0]
"""

from __future__ import annotations

import inspect
import math
import random
from typing import Any, Callable

from cdo_deploy.errors import CdoError
from cdo_deploy.registry import Registry

__all__ = ["PACING_FUNCTIONS", "SCHEDULES", "Pacing", "Schedule", "SelfPaced", "build_schedule"]

_E10 = math.exp(10.0)

#: Pacing shapes f: [0, 1] -> [0, 1], f(0) = 0, f(1) = 1, non-decreasing.
PACING_FUNCTIONS: dict[str, Callable[[float], float]] = {
    "linear": lambda x: x,
    "quadratic": lambda x: x * x,
    "root": math.sqrt,
    "exponential": lambda x: (math.exp(10.0 * x) - 1.0) / (_E10 - 1.0),
    "logarithmic": lambda x: min(1.0, 1.0 + math.log(x + math.exp(-10.0)) / 10.0),
}


def _unit(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise CdoError(f"curriculum parameter {name} must be in [0, 1], got {value}")
    return value


def _function(name: str) -> Callable[[float], float]:
    try:
        return PACING_FUNCTIONS[name]
    except KeyError:
        raise CdoError(f"unknown pacing function {name!r} (known: {', '.join(PACING_FUNCTIONS)})") from None


class Schedule:
    """Base class: maps progress p in [0, 1] to difficulty t in [0, 1]."""

    #: whether ``observe`` needs every step's loss (the trainer then syncs it to the host each step)
    needs_loss = False

    def __init__(self, **params: Any) -> None:
        if params:
            raise CdoError(f"schedule {type(self).__name__} takes no parameters, got {sorted(params)}")

    def difficulty(self, progress: float) -> float:
        """Difficulty t in [0, 1] at training progress ``progress`` in [0, 1]."""
        raise NotImplementedError

    def observe(self, loss: float) -> None:
        """Feedback after each step (the training loss at the current difficulty)."""

    def state(self) -> dict[str, Any]:
        """Extra values logged next to the metrics."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Everything that changes while training (numbers, lists, RNG states), for a checkpoint."""
        out: dict[str, Any] = {}
        for key, value in vars(self).items():
            if isinstance(value, random.Random):
                out[key] = {"random_state": value.getstate()}
            elif value is None or isinstance(value, (bool, int, float, str, list)):
                out[key] = list(value) if isinstance(value, list) else value
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s values."""
        for key, value in state.items():
            current = getattr(self, key)
            if isinstance(current, random.Random):
                version, internal, gauss = value["random_state"]
                current.setstate((version, tuple(internal), gauss))
            else:
                setattr(self, key, value)


SCHEDULES: Registry[type[Schedule]] = Registry("curriculum schedule")


@SCHEDULES.register("none")
class Fixed(Schedule):
    """No curriculum: fixed difficulty ``t`` (default 0, the paper's generator)."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = _unit("t", t)

    def difficulty(self, progress: float) -> float:
        return self.t


class Pacing(Schedule):
    """``t = start + (end - start) * shape(min(1, p / saturation))``; subclasses define ``shape``.

    Args:
        start: difficulty at p = 0 (Wu et al.'s b).
        saturation: fraction of training after which t stays at ``end`` (their a), in (0, 1].
        end: difficulty reached at ``saturation``.
    """

    def __init__(self, start: float = 0.0, saturation: float = 1.0, end: float = 1.0) -> None:
        self.start, self.end = _unit("start", start), _unit("end", end)
        self.saturation = float(saturation)
        if not 0.0 < self.saturation <= 1.0:
            raise CdoError(f"curriculum parameter saturation must be in (0, 1], got {saturation}")

    def shape(self, x: float) -> float:
        raise NotImplementedError

    def difficulty(self, progress: float) -> float:
        x = min(1.0, max(0.0, progress) / self.saturation)
        return self.start + (self.end - self.start) * self.shape(x)


def _register_pacing(name: str) -> None:
    fn = PACING_FUNCTIONS[name]
    cls = type(f"Pacing_{name}", (Pacing,), {"shape": lambda self, x: fn(x), "__doc__": f"{name} pacing."})
    SCHEDULES.register(name)(cls)


for _name in PACING_FUNCTIONS:
    _register_pacing(_name)


@SCHEDULES.register("function-step")
class FunctionStep(Pacing):
    """``stages`` equal stages; stage i of k sits at level ``function(i / (k - 1))``."""

    def __init__(self, stages: int = 4, function: str = "quadratic", **pacing: float) -> None:
        super().__init__(**pacing)
        self.stages = int(stages)
        if self.stages < 2:
            raise CdoError(f"curriculum parameter stages must be >= 2, got {stages}")
        self.fn = _function(function)

    def shape(self, x: float) -> float:
        stage = min(self.stages - 1, int(x * self.stages))
        return self.fn(stage / (self.stages - 1))


@SCHEDULES.register("step")
class Step(FunctionStep):
    """``stages`` equal stages with evenly spaced levels 0, 1/(k-1), ..., 1."""

    fixed_params = ("function",)

    def __init__(self, stages: int = 4, **pacing: float) -> None:
        super().__init__(stages=stages, function="linear", **pacing)


@SCHEDULES.register("anti")
class Anti(Pacing):
    """Hard to easy: ``t = 1 - pacing(p)`` (default linear: 1 -> 0)."""

    def __init__(self, function: str = "linear", **pacing: float) -> None:
        super().__init__(**pacing)
        self.fn = _function(function)

    def shape(self, x: float) -> float:
        return self.fn(x)

    def difficulty(self, progress: float) -> float:
        return 1.0 - super().difficulty(progress)


@SCHEDULES.register("random")
class Random(Schedule):
    """The control: t drawn uniformly in [low, high] at every step, from its own seeded RNG."""

    seeded = True

    def __init__(self, low: float = 0.0, high: float = 1.0, seed: int = 0) -> None:
        self.low, self.high = _unit("low", low), _unit("high", high)
        if self.low > self.high:
            raise CdoError(f"curriculum parameters need low <= high, got {low} > {high}")
        self.rng = random.Random(int(seed))

    def difficulty(self, progress: float) -> float:
        return self.rng.uniform(self.low, self.high)


@SCHEDULES.register("self-paced")
class SelfPaced(Schedule):
    """Difficulty advances when the training loss at the current difficulty stops improving.

    Rule: the step losses are averaged over consecutive windows of ``window``
    steps. A window *improves* when its mean is below the best window mean
    seen at the current difficulty by more than ``min_delta * |best|``. After
    ``patience`` consecutive windows without improvement, t rises by
    ``increment`` (capped at ``end``) and the best is forgotten (losses at a new
    difficulty are not comparable with the old ones). t starts at ``start``
    and never decreases; progress p is ignored.

    Args:
        window: steps per averaging window.
        patience: windows without improvement before t advances.
        increment: how much t advances each time.
        min_delta: relative improvement that counts.
        start: initial difficulty.
        end: highest difficulty.
    """

    needs_loss = True

    def __init__(self, window: int = 6, patience: int = 1, increment: float = 0.25, min_delta: float = 0.02,
                 start: float = 0.0, end: float = 1.0) -> None:
        self.window, self.patience = int(window), int(patience)
        if self.window < 1 or self.patience < 1:
            raise CdoError(f"self-paced window and patience must be >= 1, got {window}, {patience}")
        self.increment = float(increment)
        if not 0.0 < self.increment <= 1.0:
            raise CdoError(f"self-paced increment must be in (0, 1], got {increment}")
        self.min_delta = float(min_delta)
        self.t, self.end = _unit("start", start), _unit("end", end)
        self.best: float | None = None
        self.stale = 0
        self._buf: list[float] = []

    def difficulty(self, progress: float) -> float:
        return self.t

    def observe(self, loss: float) -> None:
        self._buf.append(float(loss))
        if len(self._buf) < self.window:
            return
        mean = sum(self._buf) / len(self._buf)
        self._buf = []
        if self.best is None or mean < self.best - self.min_delta * abs(self.best):
            self.best, self.stale = mean, 0
            return
        self.stale += 1
        if self.stale >= self.patience and self.t < self.end:
            self.t = min(self.end, self.t + self.increment)
            self.best, self.stale = None, 0

    def state(self) -> dict[str, Any]:
        return {"stale_windows": self.stale}


def build_schedule(name: str, params: dict[str, Any] | None = None, seed: int | None = None) -> Schedule:
    """Instantiate a registered schedule with its YAML/CLI parameters.

    Args:
        name: registered schedule name.
        params: keyword parameters of the schedule class.
        seed: run seed, passed to stochastic schedules (``seeded = True``) unless ``params`` sets one.

    Raises:
        CdoError: unknown name or bad parameters (the message lists the accepted ones).
    """
    cls = SCHEDULES.get(name)
    params = dict(params or {})
    if getattr(cls, "seeded", False) and seed is not None:
        params.setdefault("seed", seed)
    try:
        return cls(**params)
    except TypeError as e:
        accepted = _accepted(cls)
        raise CdoError(f"bad parameters for curriculum {name!r}: {e}; it accepts: {accepted or 'nothing'}") from None


def _accepted(cls: type) -> str:
    """Comma-separated keyword parameters a schedule class accepts (through its bases)."""
    names: list[str] = []
    for klass in cls.__mro__:
        if klass in (Schedule, object):
            continue
        for p in inspect.signature(klass.__init__).parameters.values():
            if p.name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
                names.append(p.name)
    return ", ".join(n for n in dict.fromkeys(names) if n not in getattr(cls, "fixed_params", ()))
