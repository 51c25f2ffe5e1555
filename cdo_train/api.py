"""Python API: rebuild a trained model from its run folder and compute anomaly maps.

Example:
    >>> from cdo_train.api import load_run
    >>> run = load_run("result/exp/weave/seed_111")            # doctest: +SKIP
    >>> maps, scores = run.predict(images_uint8_nhwc)           # doctest: +SKIP
    >>> maps.shape, scores.shape                                # doctest: +SKIP
    ((8, 1, 256, 256), (8,))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cdo_deploy.errors import CdoError

from .models import CDOModel
from .runio import load_model

__all__ = ["TrainedRun", "load_run"]


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

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 RGB images (B,H,W,3) at model resolution -> maps (B,1,H,W), scores (B,)."""
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
        if images.dtype != np.uint8 or images.shape[1:3] != self.image_size or images.shape[3] != 3:
            raise CdoError(f"predict takes uint8 (B,{self.image_size[0]},{self.image_size[1]},3), got "
                           f"{images.dtype} {images.shape}")
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
        amap, score = self.anomaly_maps(x)
        return amap.float().cpu().numpy(), score.float().cpu().numpy()


def load_run(run_dir: str | Path, device: str = "cpu") -> TrainedRun:
    """Load a finished ``cdo-train`` run folder (``.../<class>/seed_<n>``).

    ``device``: ``auto`` (first CUDA GPU, else CPU), ``cpu`` or ``cuda:N``, as ``--device``.
    """
    from .trainer import resolve_device

    dev = resolve_device(device)
    return TrainedRun(Path(run_dir), load_model(run_dir, dev), dev)
