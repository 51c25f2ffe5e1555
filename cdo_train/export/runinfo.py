"""What the exporter reads from a ``cdo-train`` run folder besides the weights.

``config.yaml`` (training config), ``calibration.json`` (thresholds and
normal-score statistics, see :mod:`cdo_train.evaluation`), ``summary.json``
(metrics), and the run's good training images for int8 calibration: the same
list, ``max_train_images`` cut and hold-out split as the trainer, so the
hold-out images that calibrated the thresholds are never used.

Example:
    >>> info = read_run_info("result/exp/weave/seed_111")     # doctest: +SKIP
    >>> info.calibration["image_threshold"]                   # doctest: +SKIP
    2.71
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cdo_deploy.errors import CdoError

__all__ = ["RunInfo", "good_images", "read_run_info"]

log = logging.getLogger(__name__)


@dataclass
class RunInfo:
    """The run folder's config, calibration and summary (empty dicts when absent)."""

    run_dir: Path
    config: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


def _read(path: Path, loader: Any) -> dict[str, Any]:
    if not path.is_file():
        log.warning("%s is missing: exporting without it", path)
        return {}
    try:
        data = loader(path.read_text())
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise CdoError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise CdoError(f"{path} does not hold a mapping")
    return data


def read_run_info(run_dir: str | Path) -> RunInfo:
    """Read ``config.yaml``, ``calibration.json`` and ``summary.json`` of a run."""
    run = Path(run_dir)
    return RunInfo(run, _read(run / "config.yaml", yaml.safe_load), _read(run / "calibration.json", json.loads),
                   _read(run / "summary.json", json.loads))


def good_images(info: RunInfo, size: int, n: int, folder: Path | None = None) -> np.ndarray | None:
    """Up to ``n`` good training images, uint8 (N, size, size, 3) RGB, spread over the set.

    Args:
        info: the run (its ``config.yaml`` names the dataset, class and split).
        size: model resolution.
        n: how many images at most.
        folder: a folder of good images to use instead of the run's training set.

    Returns:
        The images, or ``None`` when the training data is not reachable (and no ``folder``).

    Raises:
        CdoError: ``folder`` is given but holds no images.
    """
    from ..config import TrainConfig
    from ..data import list_samples, load_sample
    from ..data.splits import train_split

    if folder is not None:
        samples = list_samples("folder", folder, None, "train")
    else:
        cfg = info.config
        root = cfg.get("data_root")
        if not root or not Path(root).is_dir():
            return None
        try:
            train_cfg = TrainConfig().merged(cfg)
            classes = list(train_cfg.class_names)
            samples, _holdout = train_split(train_cfg, classes[0] if classes else "all", train_cfg.seed)
        except CdoError as e:
            log.warning("training images of %s are not usable: %s", info.run_dir, e)
            return None
    if not samples:
        return None
    pick = np.unique(np.linspace(0, len(samples) - 1, min(n, len(samples))).round().astype(int))
    return np.stack([load_sample(samples[i], size)[0] for i in pick])
