"""CDO training loop: one run per (class, seed), each in its own folder.

Run folder ``<output_dir>/<experiment>/<class>/seed_<seed>/`` holds
``config.yaml``, ``metrics.jsonl`` (one line per evaluation: epoch, step,
loss, lr, difficulty t at the epoch's last step and its epoch mean, the knob
values and schedule state of that step, images/s, every metric), ``tb/``
(TensorBoard scalars, every epoch), ``model.safetensors`` +
``model_config.json`` (teacher and student weights and what rebuilds the
model), ``calibration.json`` (normal-score statistics and thresholds),
``throughput.json`` (training images/s per epoch), ``summary.json`` (status,
last and best metrics), ``discrepancy_stats.json`` and the figures
``qualitative.png`` and ``discrepancy_hist.png``; while training, and after
an interruption, ``checkpoint.pt`` (:mod:`cdo_train.training.checkpoint`).

An existing run is never overwritten unless ``exist_ok``; Ctrl-C / SIGTERM
stop after the current step with a checkpoint that :func:`resume` continues
(bit-exactly on CPU: the resumed run ends with the same weights and metrics
as an uninterrupted one).

Model selection: the weights saved are the LAST epoch's. ``best`` in the
summary is reported for comparison only and never chooses a checkpoint.

Example:
    >>> from cdo_train.training.config import TrainConfig
    >>> runs = train(TrainConfig(data_root="demo_data", class_names=("weave",)))  # doctest: +SKIP
    >>> resume(runs[0].run_dir)                        # after an interruption  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from cdo_deploy.errors import CdoError

from ..synth.anomalies import synthesize
from .checkpoint import load_checkpoint
from .config import RESUME_OVERRIDES, TrainConfig
from ..data.splits import run_classes
from .run import RunResult, TrainingRun
from .run_writer import check_run_dir, run_dir_of
from .signals import StopSignal
from .step import batch_loss, to_float_batch

__all__ = ["RESUME_OVERRIDES", "RunResult", "resolve_device", "resume", "resume_config", "train", "train_one"]

log = logging.getLogger(__name__)


def resolve_device(spec: str) -> torch.device:
    """``auto`` -> first CUDA GPU if any, else CPU; ``cpu``; ``cuda:N``."""
    if spec == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError:
        raise CdoError(f"bad --device {spec!r}: use auto, cpu or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CdoError(f"--device {spec}: no CUDA GPU is available here (use --device cpu)")
    if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
        raise CdoError(f"--device {spec}: only {torch.cuda.device_count()} GPU(s) present")
    return dev


def planned_runs(cfg: TrainConfig, exist_ok: bool = False) -> list[tuple[str, int]]:
    """Every (class, seed) run of ``cfg``; fails before anything trains if one's folder already holds a run."""
    runs = [(c, cfg.seed + k) for c in run_classes(cfg) for k in range(cfg.seeds)]
    for c, s in runs:
        check_run_dir(run_dir_of(cfg, c, s), exist_ok)
    return runs


def train(cfg: TrainConfig, *, exist_ok: bool = False) -> list[RunResult]:
    """Train every requested class and seed; returns one result per run.

    Args:
        cfg: the configuration.
        exist_ok: replace runs already in their folders (deleted first, TensorBoard files included).

    Raises:
        CdoError: bad data or config, a run folder already in use (before anything trains).
        TrainingInterrupted: SIGINT / SIGTERM; the interrupted run can be resumed.
    """
    return [train_one(cfg, c, s, exist_ok=exist_ok) for c, s in planned_runs(cfg, exist_ok)]


def resume_config(run_dir: str | Path, **overrides: Any) -> tuple[TrainConfig, dict[str, Any]]:
    """The config and checkpoint of an interrupted run; ``overrides`` may set ``RESUME_OVERRIDES`` only."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    bad = sorted(k for k in overrides if k not in RESUME_OVERRIDES)
    if bad:
        raise CdoError(f"--resume continues the run with its own config; it does not take {', '.join(bad)} "
                       f"(only {', '.join(RESUME_OVERRIDES)})")
    ckpt = load_checkpoint(run_dir)
    # a checkpoint from before a setting existed keeps what it was started with: the all-level score,
    # fp32 steps on CPU, the plain level sum
    old = {"score_levels": 0, "cpu_bf16": False, "level_norm": "none"}
    return TrainConfig().merged({**old, **ckpt["config"], **overrides}), ckpt


def resume(run_dir: str | Path, **overrides: Any) -> RunResult:
    """Continue an interrupted run from its ``checkpoint.pt`` to the end.

    Args:
        run_dir: the run folder.
        **overrides: ``device``, ``progress``, ``save_every``.

    Raises:
        CdoError: no checkpoint (finished, or stopped before its first one), an unreadable one, or
            another option given.
    """
    cfg, ckpt = resume_config(run_dir, **overrides)
    return train_one(cfg, ckpt["class_name"], ckpt["seed"], resume=(Path(os.path.abspath(run_dir)), ckpt))


def train_one(cfg: TrainConfig, class_name: str, seed: int, *, exist_ok: bool = False,
              resume: tuple[Path, dict[str, Any]] | None = None) -> RunResult:
    """Train one class with one seed (or continue it from ``resume``); writes the run folder."""
    device = resolve_device(cfg.device)
    run = TrainingRun(cfg, class_name, seed, device, exist_ok=exist_ok, resume=resume)
    with run.progress.console(), StopSignal() as stop:
        while not run.done:
            for idx in run.epoch_batches():
                t, params, gamma = run.knobs()
                x = to_float_batch(run.train_imgs[idx].to(device, non_blocking=True))
                mask = None
                if cfg.mom:  # the same anomalies on every device for a seed (cdo_train.synth.anomalies)
                    x, mask = synthesize(x, params, run.gen, cfg.foreground_only)
                loss = batch_loss(run.model, x, mask, gamma=gamma, oom=cfg.oom, precision=run.precision,
                                  hard_quantile=cfg.hard_quantile, penalty=run.penalty_batch(),
                                  penalty_weight=cfg.penalty_weight)
                run.optimise(loss, t, params, gamma, len(idx))
                if stop.signum is not None:
                    run.interrupt(stop.signum)
            run.end_epoch()
    result = run.finish()
    if result is None:  # a single process always writes its run
        raise RuntimeError("train_one: no result")
    return result
