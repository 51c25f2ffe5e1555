"""Meters of a training run: the loss summed on its device, and training images/s per epoch.

Example:
    >>> import torch
    >>> m = LossMeter()
    >>> for v in (1.0, 3.0):
    ...     m.add(torch.tensor(v))
    >>> m.check(step=2, reduce=None); m.epoch_mean(steps=2, reduce=None)
    2.0
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, Callable

import torch

from cdo_deploy.errors import CdoError

__all__ = ["LOSS_CHECK_EVERY", "LossMeter", "Reduce", "Throughput", "cpu_seconds", "diverged"]

LOSS_CHECK_EVERY = 50  # steps between host reads of the loss (non-finite check) when the schedule needs none
Reduce = Callable[[torch.Tensor], torch.Tensor]  # a value -> its mean over the run's processes


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (all its threads: core-seconds)."""
    t = os.times()
    return t.user + t.system


def diverged(first: int, last: int, value: float) -> CdoError:
    """The error for a loss that became non-finite between steps ``first`` and ``last``."""
    where = f"at step {last}" if first >= last else f"between steps {first} and {last}"
    return CdoError(f"training diverged {where} (loss {value}); lower --lr or --gamma")


class LossMeter:
    """Step losses summed on their device in float64: the epoch's sum and the current check window's."""

    def __init__(self) -> None:
        self.epoch_sum: torch.Tensor | None = None
        self.window_sum: torch.Tensor | None = None
        self.window_start = 0

    def add(self, loss: torch.Tensor) -> None:
        v = loss.detach().to(torch.float64)
        self.epoch_sum = v if self.epoch_sum is None else self.epoch_sum + v
        self.window_sum = v if self.window_sum is None else self.window_sum + v

    def check(self, step: int, reduce: Reduce | None) -> None:
        """Read the window's sum on the host; a non-finite loss since the last check is a user error."""
        if self.window_sum is None:
            return
        value = float(reduce(self.window_sum) if reduce else self.window_sum)
        if not math.isfinite(value):
            raise diverged(self.window_start + 1, step, value)
        self.window_sum, self.window_start = None, step

    def epoch_mean(self, steps: int, reduce: Reduce | None) -> float:
        total = self.epoch_sum if self.epoch_sum is not None else torch.zeros((), dtype=torch.float64)
        value = float(reduce(total) if reduce else total) / max(1, steps)
        self.epoch_sum = None
        return value

    def state_dict(self) -> dict[str, Any]:
        cpu = {k: (None if v is None else v.cpu()) for k, v in (("epoch", self.epoch_sum), ("window", self.window_sum))}
        return {**cpu, "window_start": self.window_start}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        self.epoch_sum = None if state["epoch"] is None else state["epoch"].to(device)
        self.window_sum = None if state["window"] is None else state["window"].to(device)
        self.window_start = state["window_start"]


class Throughput:
    """Training images/s per epoch; the first epoch timed in this process is ``cold`` and kept apart."""

    def __init__(self, device: torch.device, epochs: list[dict[str, Any]] | None = None) -> None:
        self.device = device
        self.epochs: list[dict[str, Any]] = list(epochs or [])
        self._cold = True
        self._t = 0.0

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def start(self) -> None:
        self._sync()
        self._t = time.perf_counter()

    def stop(self, epoch: int, images: int) -> float:
        """End the epoch's timing; returns its images/s."""
        self._sync()
        seconds = time.perf_counter() - self._t
        ips = round(images / max(seconds, 1e-9), 1)
        self.epochs.append({"epoch": epoch, "images": images, "seconds": round(seconds, 4), "images_per_s": ips,
                            "cold": self._cold})
        self._cold = False
        return ips

    def summary(self) -> dict[str, Any]:
        """``images_per_s`` over the warm epochs (all epochs when every one was cold), the cold ones apart."""
        warm = [e for e in self.epochs if not e["cold"]] or self.epochs
        seconds, images = sum(e["seconds"] for e in warm), sum(e["images"] for e in warm)
        return {"images_per_s": round(images / max(seconds, 1e-9), 1), "warm_epochs": len(warm),
                "cold_epoch_images_per_s": [e["images_per_s"] for e in self.epochs if e["cold"]],
                "per_epoch_images_per_s": [e["images_per_s"] for e in self.epochs],
                "train_seconds": round(sum(e["seconds"] for e in self.epochs), 3),
                "images": sum(e["images"] for e in self.epochs), "epochs": self.epochs}
