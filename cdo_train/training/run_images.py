"""The images of one training run: what it trains on, calibrates its thresholds on and is tested on.

The class's samples are split as :func:`cdo_train.data.splits.train_split` splits them
(the same split the exporter reads back, :mod:`cdo_train.export.run_inputs`); only the
writing process of a run reads the test and calibration images.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from ..data import Sample
from ..data.splits import calibration_samples, penalty_samples, samples, size_warnings, train_split
from .config import TrainConfig
from .evaluation import EvalSet, load_images

__all__ = ["RunImages", "load_run_images"]

log = logging.getLogger(__name__)


@dataclass
class RunImages:
    """The images of a run, in memory at the run's image size.

    Attributes:
        train_samples: the training images' samples.
        train: the training images, ``(N, H, W, 3)`` uint8.
        test: the test set (``None`` without test images, or on a process that does not evaluate).
        held: the good images the thresholds are calibrated on (``None`` without any).
        good_source: where ``held`` comes from, as recorded (``hold-out`` or ``calibration_dir``).
        penalty: the off-distribution penalty's images, ``(P, H, W, 3)`` uint8 (``None`` without ``penalty_dir``).
    """

    train_samples: list[Sample]
    train: torch.Tensor
    test: EvalSet | None
    held: EvalSet | None
    good_source: str
    penalty: torch.Tensor | None = None

    @property
    def held_count(self) -> int:
        return 0 if self.held is None else len(self.held.images)


def load_run_images(cfg: TrainConfig, class_name: str, seed: int, *, main: bool, warn: bool) -> RunImages:
    """Split and read the images of the (``class_name``, ``seed``) run.

    Args:
        main: the process writes the run folder; only it reads the test and calibration images.
        warn: log the image size warnings (a new run's writing process).
    """
    train_samples, holdout = train_split(cfg, class_name, seed)
    for warning in size_warnings(train_samples, cfg.image_size) if warn else []:
        log.warning("%s", warning)
    size = cfg.image_size
    train = torch.from_numpy(load_images(train_samples, size).images)  # (N,H,W,3) uint8
    test = held = None
    if main:  # only the writing process evaluates
        test_samples = samples(cfg, class_name, "test")
        test = load_images(test_samples, size) if test_samples else None
        calib = calibration_samples(cfg, holdout)
        held = load_images(calib, size) if calib else None
    pen = penalty_samples(cfg)
    penalty = torch.from_numpy(load_images(pen, size).images) if pen else None
    return RunImages(train_samples, train, test, held, cfg.calibration_dir or "hold-out", penalty)
