"""What the exporter reads from a ``cdo-train`` run folder besides the weights.

``config.yaml``, ``calibration.json`` and ``summary.json`` through the one run-folder
reader (:func:`cdo_train.training.run_folder.read_run_info`, re-exported here), and the run's
data split as the trainer split it (:func:`run_splits`): good training images for int8
calibration (the hold-out images that calibrated the thresholds are never used for it),
the held-out good images and the test set the int8 variant is checked on. Images are read
by :func:`cdo_train.data.load_sample`, i.e. by the line's :mod:`cdo_deploy.preprocess`.

Example:
    >>> info = read_run_info("result/exp/weave/seed_111")     # doctest: +SKIP
    >>> info.calibration["image_threshold"]                   # doctest: +SKIP
    2.71
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cdo_deploy.errors import CdoError

from ..training.run_folder import RunInfo, read_run_info

__all__ = ["RunInfo", "RunSplits", "check_run_folder", "good_images", "load_split", "read_run_info", "run_splits",
           "weak_run_warnings"]

log = logging.getLogger(__name__)


#: image AUROC below this on the run's test set: close to chance (0.5), the model cannot tell parts apart
CHANCE_AUROC = 0.6
#: a run shorter than this share of the default length is far too short to trust
SHORT_RUN_SHARE = 0.25


def check_run_folder(run: Path) -> None:
    """Refuse a folder that is no ``cdo-train`` run, naming the run folders below it when there are some.

    Raises:
        CdoError: ``run`` holds neither ``config.yaml`` nor the weights.
    """
    from ..training.run_folder import WEIGHTS

    if (run / "config.yaml").is_file() or (run / WEIGHTS).is_file():
        return
    found = sorted(p.parent for p in run.glob(f"**/{WEIGHTS}"))[:3]
    hint = (f"; run folders below it: {', '.join(map(str, found))}" if found else
            "; give the folder cdo-train printed last (<output-dir>/<backbone>-<curriculum>/<class>/seed_<n>)")
    raise CdoError(f"{run} is not a cdo-train run folder (no config.yaml, no {WEIGHTS}){hint}")


def weak_run_warnings(info: RunInfo) -> list[str]:
    """Reasons not to trust a run: its test image AUROC is near chance, or it trained far fewer steps
    than the default.

    Example:
        >>> [w[:16] for w in weak_run_warnings(RunInfo(Path("r"), summary={"last": {"step": 2, "image_auroc": 0.43}}))]
        ['image AUROC 0.43', 'the run trained ']
    """
    from ..training.config import DEFAULT_STEPS

    last = info.summary.get("last") or {}
    out = []
    auroc = last.get("image_auroc")
    if isinstance(auroc, (int, float)) and auroc < CHANCE_AUROC:
        out.append(f"image AUROC {auroc:.2f} on the run's test set is close to chance (0.5): this model will not "
                   "tell good from defective parts; train longer or with more good images before deploying it")
    step = last.get("step")
    if isinstance(step, int) and step < SHORT_RUN_SHARE * DEFAULT_STEPS:
        out.append(f"the run trained {step} steps, far below the default {DEFAULT_STEPS}: its thresholds and "
                   "decisions are unlikely to hold on the line (cdo-train without --steps/--epochs trains the default)")
    return out


@dataclass(frozen=True)
class RunSplits:
    """The run's samples as the trainer split them: good training images, held-out good, test."""

    train: list[Any]
    holdout: list[Any]
    test: list[Any]


def run_splits(info: RunInfo) -> RunSplits | None:
    """The trainer's split of the run's data (:func:`cdo_train.data.splits.train_split`, the same config).

    ``holdout`` holds the good images that calibrated the thresholds (the hold-out, or the run's
    ``--calibration-dir`` images).

    Returns:
        The splits, or ``None`` when the training data is not reachable from here.
    """
    from ..training.config import TrainConfig
    from ..data.splits import calibration_samples, samples, train_split

    cfg = info.config
    root = cfg.get("data_root")
    if not root or not Path(root).is_dir():
        return None
    try:
        train_cfg = TrainConfig().merged(cfg)
        classes = list(train_cfg.class_names)
        cls = classes[0] if classes else "all"
        train, holdout = train_split(train_cfg, cls, train_cfg.seed)
        calib = calibration_samples(train_cfg, holdout)
    except CdoError as e:
        log.warning("training images of %s are not usable: %s", info.run_dir, e)
        return None
    try:
        test = samples(train_cfg, cls, "test")
    except CdoError as e:
        log.warning("test images of %s are not usable: %s", info.run_dir, e)
        test = []
    return RunSplits(train, calib, test)


def good_images(info: RunInfo, size: int, n: int, folder: Path | None = None
                ) -> tuple[np.ndarray, list[str]] | tuple[None, list[str]]:
    """Up to ``n`` good training images, uint8 (N, size, size, 3) RGB, spread over the set, and their paths.

    Args:
        info: the run (its ``config.yaml`` names the dataset, class and split).
        size: model resolution.
        n: how many images at most.
        folder: a folder of good images to use instead of the run's training set.

    Returns:
        ``(images, absolute paths)``, or ``(None, [])`` when the training data is not
        reachable (and no ``folder``). Held-out images are never among them.

    Raises:
        CdoError: ``folder`` is given but holds no images.
    """
    from ..data import list_samples, load_sample

    if folder is not None:
        samples = list_samples("folder", folder, None, "train")
    else:
        splits = run_splits(info)
        samples = splits.train if splits is not None else []
    if not samples:
        return None, []
    pick = np.unique(np.linspace(0, len(samples) - 1, min(n, len(samples))).round().astype(int))
    return (np.stack([load_sample(samples[i], size)[0] for i in pick]),
            [str(Path(samples[i].path).resolve()) for i in pick])


def load_split(samples: list[Any], size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Samples -> (images (N, size, size, 3) uint8, masks (N, size, size) bool, labels (N,), names)."""
    from ..data import load_sample

    pairs = [load_sample(s, size) for s in samples]
    return (np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]),
            np.array([s.label for s in samples], np.int64), [f"{s.defect_type}/{Path(s.path).name}" for s in samples])
