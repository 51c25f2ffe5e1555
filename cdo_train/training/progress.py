"""The progress bar of a training run and the console around it.

One tqdm bar over all steps of the run (its ETA is the run's), on an interactive terminal
only, shown by the writing process when ``progress`` is on. While it is up, log lines (a
Ctrl-C notice, warnings) go through tqdm, which takes the bar off its line first, so no
message is glued to the bar (:meth:`RunProgress.console`).

Example:
    >>> bar = RunProgress(enabled=False, total=10, desc="weave s111")
    >>> bar.start_epoch(step=0, epoch=1, n_epochs=2); bar.advance(); bar.clear(); bar.close()
    >>> bar.console().__class__.__name__
    'nullcontext'
"""

from __future__ import annotations

import contextlib

from .signals import notices_held

__all__ = ["RunProgress"]


class RunProgress:
    """The run's progress bar (built at the first epoch, advanced per step) and its console.

    Args:
        enabled: show a bar at all (the writing process, with ``progress`` on); tqdm still hides
            it when the output is not a terminal.
        total: the run's steps.
        desc: the bar's label (class and seed).
    """

    def __init__(self, enabled: bool, total: int, desc: str) -> None:
        self.enabled, self.total, self.desc = enabled, total, desc
        self._bar = None

    def start_epoch(self, step: int, epoch: int, n_epochs: int) -> None:
        """Show the bar (built at ``step`` the first time) with the epoch in its postfix."""
        if self._bar is None and self.enabled:
            from tqdm import tqdm

            # a Ctrl-C notice is held while tqdm builds the bar (one logged before tqdm registers the bar is
            # glued to it)
            with notices_held():
                self._bar = tqdm(total=self.total, initial=step, leave=False, dynamic_ncols=True,
                                 desc=self.desc, unit="step", disable=None)
        if self._bar is not None:
            self._bar.set_postfix_str(f"epoch {epoch}/{n_epochs}")  # drawn now: once per epoch

    def advance(self) -> None:
        """One step taken."""
        if self._bar is not None:
            self._bar.update(1)

    def clear(self) -> None:
        """Take the bar off its line for a log line of its own (the next step draws it again)."""
        if self._bar is not None:
            self._bar.clear()

    def close(self) -> None:
        """Take the bar off the terminal (before the run's last lines are printed)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def console(self) -> contextlib.AbstractContextManager:
        """While training with a bar: log lines go through tqdm (see the module docstring)."""
        if not self.enabled:
            return contextlib.nullcontext()
        from tqdm.contrib.logging import logging_redirect_tqdm

        return logging_redirect_tqdm()
