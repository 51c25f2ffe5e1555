"""One training run's state and the steps both trainers share (:mod:`.trainer`, :mod:`.distributed`).

A :class:`TrainingRun` owns the model, optimiser, LR schedule, GradScaler,
curriculum, RNG and counters of one (class, seed) run and does the bookkeeping
around the forward pass: the epoch's batches, the difficulty of each step,
the optimiser step, the epoch's log and evaluation, its checkpoint state and
when the run stops. Its images are :mod:`.run_images`', its progress bar
:mod:`.progress`' and the end of the run (level normalisation, memory bank,
segmentation head, weights, thresholds, figures, summary) is :mod:`.finish`'s. Each trainer only
prepares the batch and runs the forward pass::

    run = TrainingRun(cfg, "weave", 111, device)
    while not run.done:
        for idx in run.epoch_batches():
            t, params, gamma = run.knobs()
            loss = ...                                  # trainer-specific batch and forward pass
            run.optimise(loss, t, params, gamma, len(idx))
        run.end_epoch()
    result = run.finish()

Host syncs: the loss is summed on its device and read on the host at the end
of each epoch and every ``LOSS_CHECK_EVERY`` steps (the non-finite check),
or every step for a schedule that needs each step's loss (``self-paced``).
Precision and memory format of the step: :mod:`.step` (fp16 + ``GradScaler`` on
CUDA, bf16 on CPUs with native bf16, channels-last).
Cost: every epoch's images/s is logged (TensorBoard scalar ``images_per_s`` and
``throughput.json``; not ``metrics.jsonl``, which stays identical between
identical CPU runs); the first epoch of each process (cold caches, kernel
selection) is kept apart from the average. ``summary.json`` records the run's
wall seconds, CPU core-seconds (user + system time of the process while the run
was in it, evaluation included) and training images/s.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..model.cdo_model import CDOModel, ModelConfig
from ..synth.anomalies import SynthParams
from ..synth.difficulty import resolve_knobs
from .checkpoint import rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig
from .curriculum import build_schedule
from .evaluation import evaluate
from .finish import normalise_levels, write_results
from .meters import LOSS_CHECK_EVERY, LossMeter, Reduce, Throughput, cpu_seconds, diverged
from .progress import RunProgress
from .run_folder import CHECKPOINT
from .run_images import RunImages, load_run_images
from .run_writer import RunWriter
from .signals import TrainingInterrupted
from .step import step_precision, to_float_batch

__all__ = ["RunResult", "TrainingRun"]

log = logging.getLogger(__name__)
# the GradScaler skips the steps whose fp16 gradients overflowed (the first ones, while it finds its
# scale); the LR schedule still counts them, as intended
warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before `optimizer.step\\(\\)`")


@dataclass
class RunResult:
    """What one (class, seed) run produced."""

    run_dir: Path
    class_name: str
    seed: int
    last: dict[str, Any]
    best: dict[str, Any]
    seconds: float
    cpu_seconds: float = 0.0
    train_images_per_s: float | None = None


def _lr_schedule(opt: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Exponential decay per optimiser step from ``cfg.lr`` to ``cfg.lr * cfg.lr_final`` at the last step."""
    span = max(1, total_steps - 1)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cfg.lr_final ** (min(s, span) / span))


class TrainingRun:
    """The state of one (class, seed) run and the steps around its forward pass (see the module docstring).

    Args:
        cfg: the run's config.
        class_name, seed: the run.
        device: where to train.
        main: this process writes the run folder, evaluates and calibrates (DDP: the group's first).
        exist_ok: replace a run already in the folder.
        resume: ``(run folder, checkpoint)`` to continue from (:func:`cdo_train.training.checkpoint.load_checkpoint`).
        processes: how many processes train the run (DDP), for ``throughput.json``.
    """

    def __init__(self, cfg: TrainConfig, class_name: str, seed: int, device: torch.device, *, main: bool = True,
                 exist_ok: bool = False, resume: tuple[Path, dict[str, Any]] | None = None,
                 processes: int = 1) -> None:
        self.t0 = time.time()
        self.cpu0 = cpu_seconds()
        self.processes = processes
        self.cfg, self.class_name, self.seed, self.device, self.main = cfg, class_name, seed, device, main
        torch.manual_seed(seed)
        np.random.seed(seed % (2**32))
        self.images: RunImages = load_run_images(cfg, class_name, seed, main=main, warn=main and resume is None)
        mcfg = ModelConfig(cfg.backbone, cfg.image_size, cfg.blur_sigma, cfg.score_rule, cfg.topk, cfg.teacher_weights,
                           student=cfg.student, score_levels=cfg.score_levels,
                           level_norm="none" if cfg.head == "cdo+seg" else cfg.level_norm)  # seg: its own map
        self.precision = step_precision(cfg.amp, cfg.cpu_bf16, cfg.channels_last, device)
        self.model = CDOModel(mcfg).to(device)
        if self.precision.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.opt = torch.optim.AdamW(self.model.student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.steps_per_epoch = math.ceil(len(self.train_imgs) / cfg.batch_size)
        self.total_steps = cfg.total_steps(len(self.train_imgs))
        self.n_epochs = math.ceil(self.total_steps / self.steps_per_epoch)
        self.sched = _lr_schedule(self.opt, cfg, self.total_steps)
        self.schedule = build_schedule(cfg.curriculum, cfg.curriculum_params, seed=seed)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision.grad_scaler)
        self.gen = torch.Generator().manual_seed(seed)
        self.base_params = SynthParams.from_dict(cfg.synth)  # {} = the paper's generator
        self.meter = LossMeter()
        self.throughput = Throughput(device)
        self.step, self.epoch, self.pos = 0, 1, 0
        self.batches: list[torch.Tensor] | None = None
        self.ts: list[float] = []
        self.epoch_images = 0
        self.last: dict[str, Any] = {}
        self.state: dict[str, Any] = {}
        self.seconds_before = 0.0
        self.cpu_before = 0.0
        self.ordering = None
        self.progress = RunProgress(main and cfg.progress, self.total_steps, f"{class_name} s{seed}")
        if resume is None:
            self.writer = RunWriter(cfg, class_name, seed, exist_ok=exist_ok) if main else None
            self.ordering = self._build_ordering()
        else:
            ckpt = resume[1]
            self.writer = RunWriter(cfg, class_name, seed, resume=(resume[0], ckpt["evals"], ckpt["epoch"])) \
                if main else None
            self._restore(ckpt)
        if self.writer is not None:
            images = self.images
            log.info("run %s: %d train, %d calibration (%s), %d test images on %s; %d steps (%d epochs)%s",
                     self.writer.run_dir, len(images.train_samples), images.held_count, images.good_source,
                     0 if images.test is None else len(images.test.images), device, self.total_steps, self.n_epochs,
                     f", resumed at step {self.step}" if resume else "")

    @property
    def done(self) -> bool:
        """Every step taken and the last epoch closed (an interruption can fall between the two)."""
        return self.step >= self.total_steps and self.batches is None

    @property
    def run_dir(self) -> Path | None:
        return None if self.writer is None else self.writer.run_dir

    @property
    def train_imgs(self) -> torch.Tensor:
        """The training images, ``(N, H, W, 3)`` uint8 (what the trainers draw batches from)."""
        return self.images.train

    def _build_ordering(self):
        """The per-sample ordering curriculum of ``cfg.ordering`` (None when off); its scores go to the run folder."""
        if self.cfg.ordering is None:
            return None
        from .ordering import build_ordering

        cfg = self.cfg
        cur = build_ordering(cfg.ordering, cfg.ordering_params, self.model, self.train_imgs.numpy(), self.device,
                             cfg.batch_size, lr=cfg.lr, gamma=cfg.gamma, seed=self.seed,
                             foreground_only=cfg.foreground_only, precision=self.precision)
        if self.writer is not None:
            ranked = [{"file": str(self.images.train_samples[i].path), "score": float(cur.scores[i])} for i in cur.order]
            self.writer.write_json("ordering_scores.json", {"ordering": cfg.ordering, "easiest_first": ranked})
        return cur

    def difficulty(self) -> float:
        """The schedule's difficulty at the current step, clamped to [0, 1]."""
        return float(min(1.0, max(0.0, self.schedule.difficulty(self.step / max(1, self.total_steps - 1)))))

    def epoch_batches(self) -> list[torch.Tensor]:
        """The batches of the current epoch still to train (a resumed epoch continues where it stopped);
        also starts the epoch's timing."""
        if self.batches is None:
            left = self.total_steps - self.step
            if self.ordering is None:
                perm = torch.randperm(len(self.train_imgs), generator=self.gen)
                batches = [perm[i:i + self.cfg.batch_size] for i in range(0, len(perm), self.cfg.batch_size)]
            else:  # easiest-first subset at this epoch's difficulty, same number of steps
                batches = self.ordering.batches(self.difficulty(), self.steps_per_epoch, self.cfg.batch_size, self.gen)
            self.batches, self.pos = batches[:left], 0
        self.model.train()
        self.throughput.start()
        self.progress.start_epoch(self.step, self.epoch, self.n_epochs)
        return self.batches[self.pos:]

    def penalty_batch(self) -> torch.Tensor | None:
        """This step's off-distribution images as float RGB in [0, 1] on the device (None without ``penalty_dir``);
        drawn with the run's generator, so a resumed run draws the same ones."""
        pool = self.images.penalty
        if pool is None:
            return None
        idx = torch.randint(len(pool), (self.cfg.penalty_batch,), generator=self.gen)
        return to_float_batch(pool[idx].to(self.device, non_blocking=True))

    def knobs(self) -> tuple[float, SynthParams, float]:
        """(difficulty t, synthetic-anomaly parameters, OOM gamma) of the current step."""
        t = self.difficulty()
        params, gamma = resolve_knobs(self.cfg.knobs, t, self.base_params, self.cfg.gamma, self.cfg.knob_ranges)
        return t, params, gamma

    def optimise(self, loss: torch.Tensor, t: float, params: SynthParams, gamma: float, images: int,
                 reduce: Reduce | None = None) -> None:
        """One optimiser step on ``loss`` (GradScaler under fp16 autocast), the LR step and the bookkeeping.

        ``reduce`` averages a value over the run's processes (DDP); the loss reaches the host only at
        checks, or every step when the schedule needs it.

        Raises:
            CdoError: the loss became non-finite (training diverged).
        """
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()
        self.meter.add(loss)
        self.step += 1
        self.pos += 1
        if self.schedule.needs_loss:  # the one case that reads every step's loss on the host
            lv = float(reduce(loss.detach().double()) if reduce else loss.detach())
            if not math.isfinite(lv):
                raise diverged(self.step, self.step, lv)
            self.schedule.observe(lv)
        if self.step % LOSS_CHECK_EVERY == 0:
            self.meter.check(self.step, reduce)
        self.ts.append(t)
        self.epoch_images += images
        self.state = {"difficulty": t, "gamma": gamma, **params.__dict__, **self.schedule.state()}
        if self.ordering is not None:
            self.state.update(self.ordering.state())
        self.progress.advance()

    def end_epoch(self, reduce: Reduce | None = None) -> dict[str, Any] | None:
        """Close the epoch: throughput, the loss check, the log record (evaluated when the epoch crossed a
        multiple of ``eval_every`` steps, and after the last step) and the ``save_every`` checkpoint.
        Returns the record when it was evaluated."""
        ips = self.throughput.stop(self.epoch, self.epoch_images)
        steps = len(self.batches or ())
        self.meter.check(self.step, reduce)
        record: dict[str, Any] = {"epoch": self.epoch, "step": self.step, "loss": self.meter.epoch_mean(steps, reduce),
                                  "lr": self.sched.get_last_lr()[0], **self.state,
                                  "difficulty_mean": float(np.mean(self.ts))}
        every = self.cfg.eval_every
        evaluated = self.step // every > (self.step - steps) // every or self.step >= self.total_steps
        if evaluated:
            self.progress.clear()  # the epoch's log line gets a line of its own
        if self.writer is not None:
            if evaluated:
                if self.images.test is not None:
                    normalise_levels(self.model, self.cfg, self.images, self.device,  # the deployed head's scales
                                     warn=not self.last)  # (the run's first evaluation says what is missing)
                    record.update(evaluate(self.model, self.images.test, self.device, self.cfg.batch_size))
                self.writer.log_eval(record)
                self.last = record
            self.writer.log_scalars({**record, "images_per_s": ips})  # wall clock: TensorBoard only
        self.epoch += 1
        self.batches, self.pos, self.ts, self.epoch_images = None, 0, [], 0
        if self.cfg.save_every and (self.epoch - 1) % self.cfg.save_every == 0 and self.step < self.total_steps:
            self.checkpoint()
        return record if evaluated else None

    def state_dict(self) -> dict[str, Any]:
        """The full training state (see :mod:`cdo_train.training.checkpoint`)."""
        ordering = None if self.ordering is None else self.ordering.state_dict()
        cost = self.cost()
        return {
            "config": self.cfg.to_dict(), "class_name": self.class_name, "seed": self.seed,
            "student": {k: v.detach().cpu() for k, v in self.model.student.state_dict().items()},
            "optimizer": self.opt.state_dict(), "lr_scheduler": self.sched.state_dict(),
            "scaler": self.scaler.state_dict(), "schedule": self.schedule.state_dict(), "ordering": ordering,
            "gen": self.gen.get_state(), "rng": rng_state(),
            "step": self.step, "epoch": self.epoch, "pos": self.pos, "batches": self.batches, "ts": list(self.ts),
            "epoch_images": self.epoch_images, "meter": self.meter.state_dict(),
            "evals": list(self.writer.evals) if self.writer is not None else [], "last": self.last,
            "state": self.state, "throughput": self.throughput.epochs,
            "seconds": cost["seconds"], "cpu_seconds": cost["cpu_seconds"],
        }

    def _restore(self, ckpt: dict[str, Any]) -> None:
        self.model.student.load_state_dict(ckpt["student"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.sched.load_state_dict(ckpt["lr_scheduler"])
        if ckpt["scaler"] and self.precision.grad_scaler:
            self.scaler.load_state_dict(ckpt["scaler"])
        self.schedule.load_state_dict(ckpt["schedule"])
        if ckpt["ordering"] is not None:
            from .ordering import DataCurriculum, check_ordering

            start = check_ordering(self.cfg.ordering, self.cfg.ordering_params)["start"]
            self.ordering = DataCurriculum.from_state_dict(ckpt["ordering"], start)
        self.gen.set_state(ckpt["gen"])
        set_rng_state(ckpt["rng"])
        self.step, self.epoch, self.pos, self.batches = ckpt["step"], ckpt["epoch"], ckpt["pos"], ckpt["batches"]
        self.ts, self.epoch_images = list(ckpt["ts"]), ckpt["epoch_images"]
        self.meter.load_state_dict(ckpt["meter"], self.device)
        self.last, self.state = ckpt["last"], ckpt["state"]
        self.throughput = Throughput(self.device, ckpt["throughput"])
        self.seconds_before = ckpt["seconds"]
        self.cpu_before = ckpt.get("cpu_seconds", 0.0)  # not recorded before 0.2

    def checkpoint(self) -> Path | None:
        """Save the full training state to ``checkpoint.pt`` (the writing process only)."""
        if self.writer is None:
            return None
        path = save_checkpoint(self.writer.run_dir, self.state_dict())
        log.debug("checkpoint at step %d: %s", self.step, path)
        return path

    def throughput_record(self) -> dict[str, Any]:
        """``throughput.json``: images/s per epoch and what they were measured on."""
        return {**self.throughput.summary(), "processes": self.processes, "device": str(self.device),
                "amp": self.precision.autocast is not None, "precision": self.precision.name,
                "channels_last": self.precision.channels_last,
                "batch_size": self.cfg.batch_size, "image_size": self.cfg.image_size, "backbone": self.cfg.backbone}

    def _write_results(self, writer: RunWriter, interrupted: dict[str, Any] | None) -> dict[str, Any]:
        """The end of the run into its folder (:func:`cdo_train.training.finish.write_results`)."""
        summary = write_results(writer, self.model, self.cfg, self.images, self.last, seed=self.seed,
                                gen=self.gen, device=self.device, throughput=self.throughput_record(), cost=self.cost,
                                interrupted=interrupted)
        self.last = summary["last"]
        return summary

    def cost(self) -> dict[str, Any]:
        """Wall seconds, CPU core-seconds (this process, also before a resume) and training images/s so far."""
        return {"seconds": self.seconds_before + time.time() - self.t0,
                "cpu_seconds": self.cpu_before + cpu_seconds() - self.cpu0,
                "train_images_per_s": self.throughput.summary().get("images_per_s"), "precision": self.precision.name,
                "channels_last": self.precision.channels_last}

    def interrupt(self, signum: int) -> None:
        """Stop on a signal: checkpoint, then the weights as they are, held-out thresholds and a summary
        marked ``interrupted``.

        Raises:
            TrainingInterrupted: always (on every process of the run).
        """
        self.progress.close()  # the interruption message starts on a line of its own
        if self.writer is not None:
            self.checkpoint()
            self._write_results(self.writer, {"step": self.step, "of": self.total_steps, "epoch": self.epoch, "signal": signum})
        raise TrainingInterrupted(self.run_dir or Path("."), signum, self.step, self.total_steps)

    def finish(self) -> RunResult | None:
        """Save the weights, throughput, thresholds, figures and summary; remove the checkpoint.
        Returns the result on the writing process, ``None`` on the others."""
        self.progress.close()
        if self.writer is None:
            return None
        summary = self._write_results(self.writer, None)
        (self.writer.run_dir / CHECKPOINT).unlink(missing_ok=True)
        return RunResult(self.writer.run_dir, self.class_name, self.seed, summary["last"], summary["best"],
                         summary["seconds"], summary["cpu_seconds"], summary["train_images_per_s"])
