"""Python API: train, export and predict as the CLIs do.

``cdo_train.train`` (``cdo-train``), ``cdo_train.export`` (``cdo-export``),
``cdo_train.resume`` (``cdo-train --resume``) and ``cdo_train.load_run``
(the trained model in PyTorch). ``predict`` accepts what
``cdo_deploy.Inspector`` accepts (any size, uint8 / uint16 / float, grey,
RGB, BGR or BGRA, image file paths) through the same pre-processing
(:func:`cdo_deploy.preprocess.to_model_input`).

Example:
    >>> import cdo_train
    >>> runs = cdo_train.train(data_root="my_parts/good", dataset="folder")    # doctest: +SKIP
    >>> res = cdo_train.export(runs[0], "bundle", fp16=True)                  # doctest: +SKIP
    >>> run = cdo_train.load_run(runs[0])                                     # doctest: +SKIP
    >>> maps, scores = run.predict(["part1.png", "part2.png"])                # doctest: +SKIP
    >>> maps.shape, scores.shape                                              # doctest: +SKIP
    ((2, 1, 256, 256), (2,))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cdo_deploy.errors import CdoError
from cdo_deploy.preprocess import image_items, to_model_input

from .training.config import TrainConfig, load_config_file
from .model.cdo_model import CDOModel
from .training.saved_model import load_model

__all__ = ["TrainedRun", "export", "load_run", "resume", "train"]


@dataclass
class TrainedRun:
    """A trained CDO model in eval mode plus where it came from."""

    run_dir: Path
    model: CDOModel
    device: torch.device

    @property
    def image_size(self) -> tuple[int, int]:
        return self.model.head.image_size

    @torch.no_grad()
    def anomaly_maps(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """RGB float images in [0, 1], (B,3,H,W) -> (anomaly_map (B,1,H,W), score (B,))."""
        return self.model(batch.to(self.device))

    def predict(self, images: Any, color_order: str = "RGB") -> tuple[np.ndarray, np.ndarray]:
        """Anomaly maps and scores of images of any size, as ``Inspector`` takes them.

        Args:
            images: one image (H, W[, C]), a batch (B, H, W, C), an image file path, or a list of
                images and paths; uint8, uint16 or float in [0, 1]; grey, 3 or 4 channels.
            color_order: channel order of 3/4-channel arrays, ``RGB`` (default, as ``cdo_train.data``
                reads images) or ``BGR`` (OpenCV's ``imread``); files are always read correctly.

        Returns:
            maps (B, 1, H, W) float32 at model resolution, scores (B,).

        Raises:
            CdoError: unsupported shape, dtype, colour order or unreadable file.
        """
        items, _single = image_items(images)
        h, w = self.image_size
        batch = np.stack([to_model_input(i.image, h, w, i.color_order or color_order) for i in items])
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)
        amap, score = self.anomaly_maps(x)
        return amap.float().cpu().numpy(), score.float().cpu().numpy()


def load_run(run_dir: str | Path, device: str = "cpu") -> TrainedRun:
    """Load a finished ``cdo-train`` run folder (``.../<class>/seed_<n>``).

    ``device``: ``auto`` (first CUDA GPU, else CPU), ``cpu`` or ``cuda:N``, as ``--device``.
    """
    from .training.trainer import resolve_device

    dev = resolve_device(device)
    return TrainedRun(Path(run_dir), load_model(run_dir, dev), dev)


def train(config: TrainConfig | dict[str, Any] | str | Path | None = None, /, *, exist_ok: bool = False,
          **options: Any) -> list[Path]:
    """Train as ``cdo-train`` does; returns the run folders (one per class and seed, in order).

    Args:
        config: a ``TrainConfig``, a dict of its fields, or a YAML preset file (``--config``).
        exist_ok: replace runs already in their folders (``--exist-ok``).
        **options: config fields on top (``data_root="parts", dataset="folder", steps=500``).

    Raises:
        CdoError: as ``cdo-train`` (bad option, data or run folder in use).
        TrainingInterrupted: Ctrl-C / SIGTERM; :func:`resume` continues the run.
    """
    from .training.trainer import train as train_runs

    if isinstance(config, (str, Path)):
        config = load_config_file(config)
    cfg = config if isinstance(config, TrainConfig) else TrainConfig().merged(dict(config or {}))
    cfg = cfg.merged(options)
    if cfg.data_root is None:
        raise CdoError("train() needs data_root (the dataset folder)")
    return [r.run_dir for r in train_runs(cfg, exist_ok=exist_ok)]


def resume(run_dir: str | Path, **options: Any) -> Path:
    """Continue an interrupted run to its end (``cdo-train --resume``); ``options``: ``device``,
    ``progress``, ``save_every``. Returns the run folder."""
    from .training.trainer import resume as resume_run

    return resume_run(run_dir, **options).run_dir


def export(run_dir: str | Path, out: str | Path, **options: Any):
    """Export a run folder to a bundle as ``cdo-export`` does; returns the ``ExportResult``.

    Args:
        run_dir: the run folder.
        out: the bundle folder to write.
        **options: ``ExportOptions`` fields (``fp16=True``, ``int8=True``, ``force=True``,
            ``allow_interrupted=True``, ...).

    Raises:
        CdoError: an unknown option (with suggestions), or as ``cdo-export``.
    """
    from .export import ExportOptions, export_run

    return export_run(run_dir, out, ExportOptions.from_kwargs(**options))
