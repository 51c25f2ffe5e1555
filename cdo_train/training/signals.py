"""Stopping a training run cleanly: SIGINT / SIGTERM become a flag, the run saves and raises.

Torch-free, so that the CLI can handle :class:`TrainingInterrupted` without
importing PyTorch for a plain option error.

Example:
    >>> with StopSignal() as stop:
    ...     stop.signum is None
    True
    >>> import pickle
    >>> e = pickle.loads(pickle.dumps(TrainingInterrupted(Path("run"), 2, 3, 10)))
    >>> e.signum, e.step, str(e)
    (2, 3, 'SIGINT at step 3 of 10; checkpoint saved, continue with: cdo-train --resume run')
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from pathlib import Path
from typing import Any

from cdo_deploy.errors import CdoError

__all__ = ["StopSignal", "TrainingInterrupted", "notices_held"]

log = logging.getLogger(__name__)


class TrainingInterrupted(CdoError):
    """Training stopped on a signal after saving its checkpoint; ``run_dir`` can be resumed.

    Attributes:
        run_dir: the run folder (``cdo-train --resume run_dir`` continues it).
        signum: the signal number (2 = SIGINT, 15 = SIGTERM).
    """

    def __init__(self, run_dir: Path, signum: int, step: int, total: int) -> None:
        self.run_dir, self.signum, self.step, self.total = Path(run_dir), int(signum), int(step), int(total)
        super().__init__(f"{signal.Signals(signum).name} at step {step} of {total}; checkpoint saved, "
                         f"continue with: cdo-train --resume {run_dir}")

    def __reduce__(self):  # crosses process boundaries (cdo_train.training.distributed.launch pickles results)
        return type(self), (self.run_dir, self.signum, self.step, self.total)


class StopSignal:
    """Turn SIGINT / SIGTERM into a flag the training loop checks after each step.

    The first signal sets :attr:`signum` and logs that training stops after the
    current step; a second one aborts at once (default behaviour). Outside the
    main thread (no signal handlers there) the flag stays unset. Use as a
    context manager: the previous handlers come back on exit.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: Any) -> None:
        self.signum = signum
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C aborts
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        notice = (f"{signal.Signals(signum).name}: stopping after this step and saving a checkpoint (send it again "
                  "to abort without saving)")
        if _held["depth"]:
            _held["notices"].append(notice)  # logged when notices_held() ends
        else:
            log.warning("%s", notice)

    def __enter__(self) -> "StopSignal":
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


_held = {"depth": 0, "notices": []}  # notices_held(): nesting depth and the notices it keeps back


@contextlib.contextmanager
def notices_held():
    """Keep :class:`StopSignal`'s notice back during the block and log it right after.

    For terminal output a notice must not land in: tqdm draws a new bar before it registers it for
    ``tqdm.write``'s clearing, so a Ctrl-C notice logged in that window was glued to the bar. Python
    runs signal handlers in the main thread between bytecodes (whatever thread the OS chose), so the
    handler sees this flag; masking the signal could not help, another thread would take it.
    """
    _held["depth"] += 1
    try:
        yield
    finally:
        _held["depth"] -= 1
        while not _held["depth"] and _held["notices"]:
            log.warning("%s", _held["notices"].pop(0))
