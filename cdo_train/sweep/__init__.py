"""Sweeps: a grid of ``cdo-train`` runs from one YAML, run N at a time on Ray Tune, resumable.

``load_sweep`` expands a sweep file into trials (one per grid point, class
and seed; :mod:`.spec`), ``run_sweep`` runs the unfinished ones on Ray
(:mod:`.runner`), each trial skips, resumes or starts its run folder
(:mod:`.trial`), and ``collect`` copies finished runs' small result files
to a results folder. ``cdo-sweep`` (:mod:`.cli`) is the command. Ray is
imported only by ``run_sweep`` and only when a trial is left to run.

Example:
    >>> from cdo_train.sweep import collect, load_sweep, run_sweep
    >>> sweep = load_sweep("configs/sweeps/curriculum.yaml", {"data_root": "photos"})  # doctest: +SKIP
    >>> report = run_sweep(sweep, concurrent=2, threads=1)                              # doctest: +SKIP
    >>> collect(sweep.trials, "docs/results/curriculum")                                # doctest: +SKIP
"""

from .runner import RAY_HINT, SweepInterrupted, SweepReport, plan, run_sweep
from .spec import Sweep, Trial, load_sweep
from .trial import TrialResult, collect, run_trial

__all__ = ["RAY_HINT", "Sweep", "SweepInterrupted", "SweepReport", "Trial", "TrialResult", "collect", "load_sweep", "plan", "run_sweep",
           "run_trial"]
