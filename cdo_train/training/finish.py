"""The end of a training run: what is computed and written after its last step (or on an interruption).

In this order, into the run folder:

1. ``--level-norm z`` (the default): each level scaled by 1 / its held-out good std
   (:mod:`cdo_train.model.level_norm`) on the final weights; the last evaluation, after the last step,
   set them already, so only final weights no evaluation saw (an interruption, no test images) need it;
2. ``--head cdo+knn``: the memory bank built and attached (:mod:`cdo_train.model.memory_bank`),
   and the fused model's evaluation logged as the last record (the plain head's record stays in
   ``metrics.jsonl`` before it); ``--head cdo+seg``: likewise, the segmentation head trained
   (:mod:`cdo_train.training.seg_training`) and attached, and its model's evaluation logged last;
3. the weights (:func:`~cdo_train.training.saved_model.save_model`) and ``throughput.json``;
4. the thresholds (``calibration.json``, :func:`~cdo_train.training.evaluation.calibrate`);
5. the figures of the test set;
6. ``summary.json`` (:meth:`~cdo_train.training.run_writer.RunWriter.finish`).

An interrupted run gets 1 (its weights moved since its last evaluation), skips 2 (it is saved with the plain head) and
5, and its thresholds come from the held-out good images only.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import torch

from ..model.cdo_model import CDOModel
from .config import TrainConfig
from .evaluation import calibrate, evaluate, predict
from .run_images import RunImages
from .run_writer import RunWriter
from .saved_model import save_model

__all__ = ["attach_bank", "attach_seg_head", "normalise_levels", "write_results"]

log = logging.getLogger(__name__)


def _follow_up(last: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A record after the last epoch's: its epoch, step, loss and lr, and what changed."""
    return {**{k: v for k, v in last.items() if k in ("epoch", "step", "loss", "lr")}, **extra}


def normalise_levels(model: CDOModel, cfg: TrainConfig, images: RunImages, device: torch.device, *,
                     warn: bool = False) -> None:
    """With ``--level-norm z`` (``model.cfg.level_norm``; a ``--head cdo+seg`` model has none, its head makes
    its own map): scale each level of ``model``'s head by 1 / its held-out good std.

    Run before every evaluation (:meth:`cdo_train.training.run.TrainingRun.end_epoch`), so each logged
    evaluation is of the model as it would be deployed at that step, and by :func:`write_results` on final
    weights no evaluation has seen (an interrupted run's, a run without test images). The training loss
    never reads the scales. ``warn``: say so when there are no held-out good images to take the statistics from.
    """
    if model.cfg.level_norm == "none":
        return
    from ..model.level_norm import z_scales

    good = images.held.images if images.held is not None and len(images.held.images) else None
    if good is None:
        if warn:
            log.warning("level normalisation: no held-out good images; the level statistics come from the "
                        "training images, which the student has fitted (hold some images out: holdout_fraction)")
        good = images.train.numpy()
    model.set_level_scales(z_scales(model, good, device, cfg.batch_size))
    log.debug("level normalisation (%s): scales %s from %d good images", cfg.level_norm,
              ", ".join(f"{x:.4g}" for x in model.head.level_scales), len(good))


def attach_bank(model: CDOModel, cfg: TrainConfig, images: RunImages, seed: int, device: torch.device,
                writer: RunWriter, last: dict[str, Any]) -> dict[str, Any]:
    """With ``--head cdo+knn``: build the memory bank, attach it, and log the fused model's evaluation.
    Returns the run's last record."""
    if cfg.head != "cdo+knn":
        return last
    from ..model.memory_bank import build_memory_bank

    held = images.held.images if images.held is not None else None
    model.set_bank(build_memory_bank(model, images.train.numpy(), held, cfg.bank_size, seed, device, cfg.batch_size))
    return _log_head(model, cfg, images, device, writer, last)


def attach_seg_head(model: CDOModel, cfg: TrainConfig, images: RunImages, gen: torch.Generator,
                    device: torch.device, writer: RunWriter, last: dict[str, Any]) -> dict[str, Any]:
    """With ``--head cdo+seg``: train the segmentation head (with the run's generator ``gen``), attach it,
    and log its model's evaluation. Returns the run's last record."""
    if cfg.head != "cdo+seg":
        return last
    from .seg_training import train_seg_head

    seg, loss = train_seg_head(model, images.train, cfg, gen, device)
    model.set_seg_head(seg)
    return _log_head(model, cfg, images, device, writer, last, seg_steps=cfg.seg_steps, seg_loss=loss)


def _log_head(model: CDOModel, cfg: TrainConfig, images: RunImages, device: torch.device, writer: RunWriter,
              last: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Log the evaluation of the model with its new head as the run's last record, and return it."""
    record = _follow_up(last, head=cfg.head, **extra)
    if images.test is not None:
        record.update(evaluate(model, images.test, device, cfg.batch_size))
    writer.log_eval(record)
    return record


def write_results(writer: RunWriter, model: CDOModel, cfg: TrainConfig, images: RunImages, last: dict[str, Any], *,
                  seed: int, gen: torch.Generator, device: torch.device, throughput: dict[str, Any],
                  cost: Callable[[], dict[str, Any]], interrupted: dict[str, Any] | None) -> dict[str, Any]:
    """Finish the run folder (steps 1 to 6 of the module docstring); returns ``summary.json``'s content.

    Args:
        writer: the run folder.
        model: the trained model (changed in place: level scales, memory bank, segmentation head).
        last: the run's last evaluation record.
        gen: the run's generator (the segmentation head's batches and synthetic anomalies).
        throughput: ``throughput.json``'s content.
        cost: the run's cost so far (read when the summary is written, after the work above).
        interrupted: ``None`` for a finished run, else what ``summary.json`` records of the interruption.
    """
    if interrupted or images.test is None:  # else the last evaluation, after the last step, set them
        normalise_levels(model, cfg, images, device, warn=not last)
    if model.head.level_scales:
        log.info("level normalisation (%s): scales %s", cfg.level_norm,
                 ", ".join(f"{x:.4g}" for x in model.head.level_scales))
    if not interrupted:  # an interrupted run is saved with the plain head (no bank, no segmentation head)
        last = attach_bank(model, cfg, images, seed, device, writer, last)
        last = attach_seg_head(model, cfg, images, gen, device, writer, last)
    save_model(model, writer.run_dir)
    writer.write_json("throughput.json", throughput)
    test, tested = (None, {}) if interrupted else (images.test, last)  # thresholds of the weights saved
    calib = calibrate(model, images.held, test, tested, device, cfg.batch_size, images.good_source)
    if calib["warning"]:
        log.warning("%s: %s", writer.run_dir, calib["warning"])
    writer.write_json("calibration.json", calib)
    if images.test is not None and not interrupted:
        writer.figures(predict(model, images.test.images, device, cfg.batch_size), images.test)
    return writer.finish(last, cost(), interrupted)
