"""Run a sweep's trials on Ray Tune: N at a time, a set number of threads (or a GPU fraction) each.

Only the trials whose run folder is not finished go to Ray; each one decides
again in its worker (:func:`cdo_train.sweep.trial.run_trial`), so the run
folders stay the source of truth and a restarted sweep needs nothing from
Ray's own state. Ray is the optional extra ``cdo[sweep]`` and is imported
only when there is something to run. By default Ray starts on this machine
with ``concurrent * threads`` CPUs (no dashboard, no usage statistics, the
workers' output kept out of the terminal); ``address`` joins an existing
cluster instead (every node must see the same data and output paths and
have cdo installed). Ray Tune's own files go to
``<output_dir>/_ray/<sweep name>``.

Stopping: SIGINT or SIGTERM (raised as ``KeyboardInterrupt`` while Ray
runs, and Ray is shut down on the way out), or SIGKILL to the command's
process group, end the workers at once: a run keeps its last periodic
checkpoint (``save_every`` epochs) and the same command continues it; a
worker still winding down holds its run folder's lock until it exits.

Example:
    >>> from cdo_train.sweep import load_sweep
    >>> report = run_sweep(load_sweep("configs/sweeps/curriculum.yaml"), concurrent=2)  # doctest: +SKIP
    >>> report.failed                                                                     # doctest: +SKIP
    []
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import dataclass, field
from typing import Any

from cdo_deploy.errors import CdoError

from .spec import Sweep, Trial
from .trial import TrialResult, action, finished_result, run_trial

__all__ = ["RAY_HINT", "SweepInterrupted", "SweepReport", "plan", "run_sweep"]

log = logging.getLogger(__name__)

RAY_HINT = "Ray is not installed: pip install 'cdo[sweep]' (Ray Tune runs the sweep's trials)"
# quiet and offline: no usage statistics, no progress tables; Ctrl-C stops the sweep (Tune's own handler
# would end fit() normally, with the running trials left as if they had failed)
_RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AIR_NEW_OUTPUT": "0", "TUNE_RESULT_BUFFER_LENGTH": "1",
            "TUNE_DISABLE_SIGINT_HANDLER": "1"}


@dataclass
class SweepReport:
    """What a sweep did: one result per trial, in grid order (``skip`` for those finished before)."""

    results: list[TrialResult] = field(default_factory=list)

    @property
    def failed(self) -> list[TrialResult]:
        return [r for r in self.results if r.status != "finished"]


def plan(sweep: Sweep) -> list[tuple[Trial, str]]:
    """Every trial with what it will do now: ``skip``, ``resume`` or ``start``."""
    return [(t, action(t.run_dir)) for t in sweep.trials]


def _import_ray():
    try:
        import ray
        from ray import tune
    except ImportError:
        raise CdoError(RAY_HINT) from None
    return ray, tune


def _tune_trial(config: dict[str, Any], trials: dict[str, Trial], threads: int, device: str | None) -> None:
    """Ray Tune's function trainable: one trial, its outcome reported once."""
    from ray import tune

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        res = run_trial(trials[config["trial"]], threads=threads, device=device)
    except CdoError as e:  # a user error (bad data, ...): reported, not a Ray traceback
        tune.report({"trial": config["trial"], "action": "error", "status": "error", "error": str(e)})
        return
    tune.report({"trial": res.key, "action": res.action, "status": res.status or "none", "seconds": res.seconds,
                 **{k: v for k, v in res.last.items() if isinstance(v, (int, float))}})


class SweepInterrupted(KeyboardInterrupt):
    """The sweep stopped on SIGINT (``signum`` 2) or SIGTERM (15); Ray is shut down, the runs can continue."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _Signals:
    """While Ray runs: SIGTERM raises KeyboardInterrupt as Ctrl-C does (Ray's own handler would abort the process
    with a stack dump), and the signal received is remembered (Ray may re-raise a plain KeyboardInterrupt)."""

    def __init__(self) -> None:
        self.signum = int(signal.SIGINT)
        self._old: Any = None

    def _handle(self, signum: int, _frame: Any) -> None:
        self.signum = signum
        raise KeyboardInterrupt

    def __enter__(self) -> "_Signals":
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)


def _result(key: str, metrics: dict[str, Any], error: Exception | None, path: str | None) -> TrialResult:
    if error is not None:  # a bug, not a CdoError: the exception's last line, and where Ray kept the traceback
        lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()] or [type(error).__name__]
        return TrialResult(key, "error", None, error=f"{lines[-1]} (traceback in {path}/error.txt)")
    last = {k: v for k, v in metrics.items() if k in ("image_auroc", "pixel_auroc", "pixel_ap", "aupro")}
    status = metrics.get("status")
    return TrialResult(key, metrics.get("action", "error"), None if status in (None, "none", "error") else status,
                       last, float(metrics.get("seconds", 0.0)), metrics.get("error"))


def _run_on_ray(ray, tune, name: str, output_dir, todo: dict[str, Trial], concurrent: int, threads: int,
                gpus: float) -> dict[str, TrialResult]:
    have = ray.cluster_resources().get("GPU", 0.0)
    if gpus > have:
        raise CdoError(f"--gpus-per-trial {gpus:g}, but the Ray cluster has {have:g} GPU(s)")
    device = None if gpus else "cpu"
    fn = tune.with_parameters(_tune_trial, trials=todo, threads=threads, device=device)
    tuner = tune.Tuner(
        tune.with_resources(fn, {"cpu": threads, "gpu": gpus}),
        param_space={"trial": tune.grid_search(list(todo))},
        tune_config=tune.TuneConfig(max_concurrent_trials=concurrent, reuse_actors=True),
        run_config=tune.RunConfig(name=name, storage_path=str(output_dir.resolve() / "_ray"), verbose=0),
    )
    results = {}
    for res in tuner.fit():
        key = (res.config or {}).get("trial")
        if key in todo:
            results[key] = _result(key, res.metrics or {}, res.error, res.path)
    return results


def run_sweep(sweep: Sweep, *, concurrent: int | None = None, threads: int = 1, gpus: float = 0.0,
              address: str | None = None) -> SweepReport:
    """Run every unfinished trial of ``sweep`` on Ray Tune; finished ones are skipped without Ray.

    Args:
        sweep: the loaded sweep (:func:`cdo_train.sweep.load_sweep`).
        concurrent: trials at a time (default: this machine's CPUs // ``threads``).
        threads: torch threads (and Ray CPUs) per trial.
        gpus: GPU fraction per trial (0: CPU trials, run on ``cpu`` whatever their ``device``; > 0: the
            GPU Ray assigns).
        address: a Ray cluster's address (``auto``, ``HOST:PORT``, ``ray://...``); None: a local Ray.

    Raises:
        CdoError: Ray not installed (the install line), bad resources.
        SweepInterrupted: SIGINT or SIGTERM (a ``KeyboardInterrupt``); Ray is shut down first.
    """
    if threads < 1 or gpus < 0 or (concurrent is not None and concurrent < 1):
        raise CdoError("--threads-per-trial and --concurrent must be >= 1, --gpus-per-trial >= 0")
    concurrent = concurrent or max(1, (os.cpu_count() or 1) // threads)
    todo = {t.key: t for t, act in plan(sweep) if act != "skip"}
    results = {t.key: finished_result(t) for t in sweep.trials if t.key not in todo}
    if todo:
        ray, tune = _import_ray()
        for key, value in _RAY_ENV.items():
            os.environ.setdefault(key, value)
        local = {} if address else {"num_cpus": concurrent * threads}  # "local": a new Ray, never one running here
        try:
            ray.init(address=address or "local", include_dashboard=False, log_to_driver=False,
                     logging_level=logging.ERROR, **local)
        except (ConnectionError, RuntimeError, ValueError) as e:  # the cause says why (e.g. a missing auth token)
            last = [ln.strip() for ln in str(e.__cause__ or e).splitlines() if ln.strip()] or [type(e).__name__]
            raise CdoError(f"cannot {'join the Ray cluster at ' + address if address else 'start Ray here'}: "
                           f"{last[-1]}") from None
        log.info("Ray at %s: %d trial(s) to run, %d at a time, %d thread(s) and %g GPU each",
                 address or "this machine", len(todo), concurrent, threads, gpus)
        try:
            with _Signals() as sig:
                try:
                    results.update(_run_on_ray(ray, tune, sweep.name, sweep.output_dir, todo, concurrent, threads,
                                               gpus))
                except KeyboardInterrupt:
                    raise SweepInterrupted(int(sig.signum)) from None
        finally:
            ray.shutdown()
    return SweepReport([results.get(t.key) or TrialResult(t.key, "error", None, error="no result from Ray")
                        for t in sweep.trials])
