"""Curriculum schedules: training progress p in [0, 1] -> difficulty t in [0, 1].

A schedule is a small class behind the ``SCHEDULES`` registry. ``difficulty``
is called once per training step with the progress so far; ``observe`` gets
the step's loss (only self-paced schedules use it).

Example:
    >>> SCHEDULES.get("none")().difficulty(0.7)
    0.0
"""

from __future__ import annotations

from typing import Any

from cdo_deploy.errors import CdoError
from cdo_deploy.registry import Registry

__all__ = ["SCHEDULES", "Schedule", "build_schedule"]


class Schedule:
    """Base class: maps progress p in [0, 1] to difficulty t in [0, 1]."""

    def __init__(self, **params: Any) -> None:
        if params:
            raise CdoError(f"schedule {type(self).__name__} takes no parameters, got {sorted(params)}")

    def difficulty(self, progress: float) -> float:
        raise NotImplementedError

    def observe(self, loss: float) -> None:
        """Feedback after each step (the training loss at the current difficulty)."""

    def state(self) -> dict[str, Any]:
        """Extra values logged next to the metrics."""
        return {}


SCHEDULES: Registry[type[Schedule]] = Registry("curriculum schedule")


@SCHEDULES.register("none")
class Fixed(Schedule):
    """No curriculum: fixed difficulty ``t`` (default 0, the paper's generator)."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = float(t)

    def difficulty(self, progress: float) -> float:
        return self.t


def build_schedule(name: str, params: dict[str, Any] | None = None) -> Schedule:
    """Instantiate a registered schedule with its YAML/CLI parameters."""
    cls = SCHEDULES.get(name)
    try:
        return cls(**(params or {}))
    except TypeError as e:
        raise CdoError(f"bad parameters for curriculum {name!r}: {e}") from None
