"""CDO training loop: one run per (class, seed), each in its own folder.

Run folder ``<output_dir>/<experiment>/<class>/seed_<seed>/`` holds
``config.yaml``, ``metrics.jsonl`` (one line per evaluation: epoch, loss,
difficulty t at the epoch's last step and its epoch mean, the knob values and
schedule state of that step, every metric), ``tb/`` (TensorBoard scalars),
``model.safetensors`` + ``model_config.json`` (teacher and student weights and
what rebuilds the model), ``calibration.json`` (normal-score statistics and
thresholds), ``summary.json`` (last and best metrics) and the figures
``qualitative.png`` and ``discrepancy_hist.png``.

Model selection: the weights saved are the LAST epoch's. ``best`` in the
summary is reported for comparison only and never chooses a checkpoint.

Example:
    >>> from cdo_train.config import TrainConfig
    >>> runs = train(TrainConfig(data_root="demo_data", class_names=("weave",)))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cdo_deploy.errors import CdoError

from .anomalies import SynthParams, synthesize
from .config import TrainConfig
from .curriculum import Schedule, build_schedule
from .data import Sample, list_classes, list_samples, split_holdout
from .difficulty import resolve_knobs
from .evaluation import EvalSet, calibrate, evaluate, load_images, predict
from .loss import cdo_loss
from .memory_bank import build_memory_bank
from .models import CDOModel, ModelConfig
from .runio import RunWriter, save_model

__all__ = ["RunResult", "resolve_device", "train", "train_one"]

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What one (class, seed) run produced."""

    run_dir: Path
    class_name: str
    seed: int
    last: dict[str, Any]
    best: dict[str, Any]
    seconds: float


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


def _class_names(cfg: TrainConfig) -> list[str]:
    if cfg.dataset == "folder":
        return list(cfg.class_names) if cfg.class_names != ("all",) else ["folder"]
    if "all" in cfg.class_names:
        return list_classes(cfg.dataset, cfg.data_root)
    return list(cfg.class_names)


def train(cfg: TrainConfig) -> list[RunResult]:
    """Train every requested class and seed; returns one result per run."""
    results = []
    for class_name in _class_names(cfg):
        for k in range(cfg.seeds):
            results.append(train_one(cfg, class_name, cfg.seed + k))
    return results


def _batches(n: int, batch_size: int, gen: torch.Generator) -> list[torch.Tensor]:
    perm = torch.randperm(n, generator=gen)
    return [perm[i : i + batch_size] for i in range(0, n, batch_size)]


def _ordering(cfg: TrainConfig, model, train_imgs, samples, device, seed: int, writer: RunWriter):
    """The per-sample ordering curriculum of ``cfg.ordering`` (None when off); its scores go to the run folder."""
    if cfg.ordering is None:
        return None
    from .ordering import build_ordering

    cur = build_ordering(cfg.ordering, cfg.ordering_params, model, train_imgs.numpy(), device, cfg.batch_size,
                         lr=cfg.lr, gamma=cfg.gamma, seed=seed, foreground_only=cfg.foreground_only)
    ranked = [{"file": str(samples[i].path), "score": float(cur.scores[i])} for i in cur.order]
    writer.write_json("ordering_scores.json", {"ordering": cfg.ordering, "easiest_first": ranked})
    return cur


def _split_train(cfg: TrainConfig, class_name: str, seed: int) -> tuple[str | None, list[Sample], list[Sample]]:
    """(class folder or None for a plain folder dataset, training samples, held-out good samples)."""
    folder_class = None if (cfg.dataset == "folder" and class_name == "folder") else class_name
    train_samples = list_samples(cfg.dataset, cfg.data_root, folder_class, "train")
    if cfg.max_train_images:
        train_samples = train_samples[: cfg.max_train_images]
    train_samples, holdout = split_holdout(train_samples, cfg.holdout_fraction, seed)
    if not train_samples:
        raise CdoError(f"no training images left for {class_name} after the hold-out split")
    return folder_class, train_samples, holdout


def _difficulty(schedule: Schedule, step: int, total_steps: int) -> float:
    """The schedule's difficulty at ``step`` of ``total_steps``, clamped to [0, 1]."""
    return float(min(1.0, max(0.0, schedule.difficulty(step / max(1, total_steps - 1)))))


def _optimise(opt: torch.optim.Optimizer, loss: torch.Tensor, schedule: Schedule, epoch: int,
              reduce: Callable[[float], float] | None = None) -> float:
    """One optimiser step on ``loss``; returns its value (``reduce``d across processes when given)
    after feeding it to the curriculum schedule. A non-finite loss stops training with a user error."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    lv = float(loss.detach())
    if reduce is not None:
        lv = reduce(lv)
    if not math.isfinite(lv):
        raise CdoError(f"training diverged at epoch {epoch} (loss {lv}); lower --lr or --gamma")
    schedule.observe(lv)
    return lv


def _lr_schedule(opt: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Exponential decay per optimiser step from ``cfg.lr`` to ``cfg.lr * cfg.lr_final`` at the last step."""
    span = max(1, total_steps - 1)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cfg.lr_final ** (min(s, span) / span))


def _epoch_batches(n: int, cfg: TrainConfig, gen: torch.Generator, steps_left: int) -> list[torch.Tensor]:
    """One shuffled pass over ``n`` images in batches, cut to the ``steps_left`` steps of the run."""
    return _batches(n, cfg.batch_size, gen)[:steps_left]


def _log_epoch(cfg: TrainConfig, writer: RunWriter, epoch: int, steps: tuple[int, int], losses: list[float],
               ts: list[float], state: dict[str, Any], sched: torch.optim.lr_scheduler.LRScheduler,
               model: torch.nn.Module, test: EvalSet | None, device: torch.device, **extra: Any) -> dict[str, Any] | None:
    """Log the epoch's record (mean loss, ``sched``'s lr, curriculum state, ``extra``). ``steps`` is
    (steps done, steps of the run): when the epoch crossed a multiple of ``eval_every`` steps, and after
    the last step, evaluate on the test set first. Returns the record when evaluated."""
    done, total = steps
    record: dict[str, Any] = {"epoch": epoch, "step": done, "loss": float(np.mean(losses)),
                              "lr": sched.get_last_lr()[0], **state, "difficulty_mean": float(np.mean(ts)), **extra}
    evaluated = done // cfg.eval_every > (done - len(losses)) // cfg.eval_every or done >= total
    if evaluated:
        if test is not None:
            record.update(evaluate(model, test, device, cfg.batch_size))
        writer.log_eval(record)
    writer.log_scalars(record)
    return record if evaluated else None


def _attach_bank(cfg: TrainConfig, writer: RunWriter, model: CDOModel, train_imgs: torch.Tensor,
                 held: EvalSet | None, test: EvalSet | None, device: torch.device, seed: int,
                 last: dict[str, Any]) -> dict[str, Any]:
    """With ``--head cdo+knn``: build the memory bank, attach it, and log the fused model's evaluation
    as the run's last record (the plain head's last record stays in ``metrics.jsonl`` before it)."""
    if cfg.head != "cdo+knn":
        return last
    bank = build_memory_bank(model, train_imgs.numpy(), held.images if held is not None else None,
                             cfg.bank_size, seed, device, cfg.batch_size)
    model.set_bank(bank)
    record = {k: v for k, v in last.items() if k in ("epoch", "step", "loss", "lr")}
    record["head"] = cfg.head
    if test is not None:
        record.update(evaluate(model, test, device, cfg.batch_size))
    writer.log_eval(record)
    return record


def train_one(cfg: TrainConfig, class_name: str, seed: int) -> RunResult:
    """Train one class with one seed; writes the run folder and returns its result."""
    t_start = time.time()
    device = resolve_device(cfg.device)
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    folder_class, train_samples, holdout = _split_train(cfg, class_name, seed)
    test_samples = list_samples(cfg.dataset, cfg.data_root, folder_class, "test")
    size = cfg.image_size
    train_imgs = torch.from_numpy(load_images(train_samples, size).images)  # (N,H,W,3) uint8
    test = load_images(test_samples, size) if test_samples else None
    held = load_images(holdout, size) if holdout else None

    mcfg = ModelConfig(cfg.backbone, size, cfg.blur_sigma, cfg.score_rule, cfg.topk, cfg.teacher_weights,
                       student=cfg.student)
    model = CDOModel(mcfg).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train_imgs) / cfg.batch_size)
    total_steps = cfg.total_steps(len(train_imgs))
    n_epochs = math.ceil(total_steps / steps_per_epoch)
    sched = _lr_schedule(opt, cfg, total_steps)
    schedule = build_schedule(cfg.curriculum, cfg.curriculum_params, seed=seed)
    use_amp = cfg.amp and device.type == "cuda"
    gen = torch.Generator().manual_seed(seed)
    writer = RunWriter(cfg, class_name, seed)
    log.info("run %s: %d train, %d hold-out, %d test images on %s; %d steps (%d epochs)", writer.run_dir,
             len(train_samples), len(holdout), len(test_samples), device, total_steps, n_epochs)
    ordering = _ordering(cfg, model, train_imgs, train_samples, device, seed, writer)
    base_params = SynthParams.from_dict(cfg.synth)  # {} = the paper's generator
    step = 0
    last: dict[str, Any] = {}
    state: dict[str, Any] = {}
    for epoch in range(1, n_epochs + 1):
        model.train()
        losses, ts = [], []
        if ordering is None:
            batches = _epoch_batches(len(train_imgs), cfg, gen, total_steps - step)
        else:  # easiest-first subset at this epoch's difficulty, same number of steps
            t_epoch = _difficulty(schedule, step, total_steps)
            batches = ordering.batches(t_epoch, steps_per_epoch, cfg.batch_size, gen)[: total_steps - step]
        bar = writer.progress(len(batches), f"{class_name} s{seed} epoch {epoch}/{n_epochs}")
        for idx in batches:
            t = _difficulty(schedule, step, total_steps)
            params, gamma = resolve_knobs(cfg.knobs, t, base_params, cfg.gamma, cfg.knob_ranges)
            x = train_imgs[idx].permute(0, 3, 1, 2).float().div_(255.0)
            mask = None
            if cfg.mom:
                x, mask = synthesize(x, params, gen, cfg.foreground_only)
            x = x.to(device, non_blocking=True)
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                fe, fa = model.features(x)
            loss = cdo_loss(fe, fa, mask, gamma=gamma, oom=cfg.oom)
            lv = _optimise(opt, loss, schedule, epoch)
            sched.step()
            losses.append(lv)
            ts.append(t)
            state = {"difficulty": t, "gamma": gamma, **params.__dict__, **schedule.state()}
            if ordering is not None:
                state.update(ordering.state())
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{lv:.4f}", t=f"{t:.2f}")
        bar.close()
        last = _log_epoch(cfg, writer, epoch, (step, total_steps), losses, ts, state, sched, model, test,
                          device) or last
    last = _attach_bank(cfg, writer, model, train_imgs, held, test, device, seed, last)
    save_model(model, writer.run_dir)
    calib = calibrate(model, held, test, last, device, cfg.batch_size)
    writer.write_json("calibration.json", calib)
    if test is not None:
        writer.figures(predict(model, test.images, device, cfg.batch_size), test)
    summary = writer.finish(last, time.time() - t_start)
    return RunResult(writer.run_dir, class_name, seed, summary["last"], summary["best"], time.time() - t_start)
