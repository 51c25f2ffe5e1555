"""One sweep trial, decided by its run folder: skip it, resume it or start it.

The run folder is the source of truth (:func:`cdo_train.training.run_folder.run_status`),
so a sweep restarted after any kind of stop does the right thing whatever
Ray remembers: a finished run is skipped, an interrupted one (a
``checkpoint.pt``: periodic, or written on SIGINT / SIGTERM) continues with
``cdo_train.training.trainer.resume`` (as ``cdo-train --resume``), and one that died
before its first checkpoint starts again (the dead folder is replaced, as
``--exist-ok``). A trial holds an exclusive lock on ``.seed_<n>.lock``
beside its run folder while it decides and trains, so a worker of a killed
sweep that is still winding down never shares a folder with its successor.

``collect`` copies the small result files of finished runs (no weights) to
a results folder, keeping the ``<experiment>/<class>/seed_<n>`` layout that
``tools/comparison.py`` reads.

Example:
    >>> action(Path("no/such/run"))
    'start'
"""

from __future__ import annotations

import fcntl
import logging
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..training.checkpoint import CHECKPOINT
from ..training.run_folder import run_status
from .spec import Trial

__all__ = ["RESULT_FILES", "TrialResult", "action", "collect", "finished_result", "run_trial"]

log = logging.getLogger(__name__)

#: what ``collect`` copies from a finished run folder: metrics, summary and the config (no weights, no figures)
RESULT_FILES = ("config.yaml", "metrics.jsonl", "summary.json", "throughput.json", "calibration.json",
                "discrepancy_stats.json")


@dataclass
class TrialResult:
    """What one trial did: ``action`` skip / resume / start, the run's status and last metrics after it."""

    key: str
    action: str
    status: str | None
    last: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None


def action(run_dir: Path) -> str:
    """``skip`` (finished), ``resume`` (a checkpoint to continue) or ``start`` (nothing, or a dead run)."""
    if run_status(run_dir) == "finished":
        return "skip"
    return "resume" if (run_dir / CHECKPOINT).is_file() else "start"


@contextmanager
def _run_lock(run_dir: Path) -> Iterator[None]:
    """Exclusive lock on ``<class>/.seed_<n>.lock`` (released when the holder exits, even on SIGKILL)."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(run_dir.parent / f".{run_dir.name}.lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("%s is in use (a worker of a stopped sweep?): waiting for it", run_dir)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _last(run_dir: Path) -> dict[str, Any]:
    import json

    try:
        return dict(json.loads((run_dir / "summary.json").read_text()).get("last") or {})
    except (OSError, ValueError):
        return {}


def finished_result(trial: Trial) -> TrialResult:
    """The result of a trial found finished (skipped): its last metrics from ``summary.json``."""
    return TrialResult(trial.key, "skip", "finished", _last(trial.run_dir))


def run_trial(trial: Trial, threads: int | None = None, device: str | None = None) -> TrialResult:
    """Run one trial in this process: skip, resume or start it (see the module docstring).

    Args:
        trial: the trial.
        threads: ``torch.set_num_threads`` for the run (None: leave torch's).
        device: replaces the trial's device (``cpu``, ``cuda:N``, ``auto``), for a resume too.

    Raises:
        CdoError: as ``cdo-train`` (bad data, a folder that is not a run folder).
        TrainingInterrupted: SIGINT / SIGTERM in this process; the run can be resumed.
    """
    import torch

    from ..training.trainer import resume, train_one

    if threads:
        torch.set_num_threads(threads)
    run_dir, t0 = trial.run_dir, time.perf_counter()
    with _run_lock(run_dir):
        todo = action(run_dir)
        log.info("%s: %s", trial.key, todo)
        if todo == "resume":
            resume(run_dir, device=device, progress=False)
        elif todo == "start":
            cfg = trial.train_config(device=device, progress=False)
            train_one(cfg, trial.class_name, trial.seed, exist_ok=True)
    return TrialResult(trial.key, todo, run_status(run_dir), _last(run_dir), round(time.perf_counter() - t0, 2))


def collect(trials: tuple[Trial, ...] | list[Trial], dest: str | Path) -> list[Path]:
    """Copy the small result files (:data:`RESULT_FILES`) of the finished trials to ``dest``.

    Returns the run folders written (``dest/<experiment>/<class>/seed_<n>``); unfinished trials are
    left out (logged). Files already there are replaced.
    """
    dest, written = Path(dest), []
    for trial in trials:
        if run_status(trial.run_dir) != "finished":
            log.info("not collected (not finished): %s", trial.key)
            continue
        out = dest / trial.key
        out.mkdir(parents=True, exist_ok=True)
        for name in RESULT_FILES:
            if (trial.run_dir / name).is_file():
                shutil.copy2(trial.run_dir / name, out / name)
        written.append(out)
    return written
