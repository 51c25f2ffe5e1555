"""anomalib's PatchCore and PaDiM on the project's teacher: fit on good images, predict maps.

Both peers are anomalib 2.7's own torch models (``PatchcoreModel``, ``PadimModel``), not
re-implementations. Two things differ from anomalib's out-of-the-box setup, both so that
the peers see exactly what ``cdo-train`` sees:

* the backbone is the project's teacher (``tf_efficientnet_lite0`` by default), built by
  anomalib's ``TimmFeatureExtractor`` with ``pre_trained=False`` (nothing is downloaded)
  and then given the project's offline ImageNet weights (``cdo_train.model.weights``);
* inputs are normalised with the teacher's own statistics (mean = std = 0.5 for lite0),
  from the same uint8 images ``cdo_train.training.evaluation.load_images`` gives CDO.

PatchCore: features at strides 8 and 16 (timm ``out_indices`` 2, 3), anomalib's 3x3
average pooling, stride-16 features upsampled to stride 8 and concatenated, k-center-greedy
coreset of 10 % of the training patches (seeded), 1-NN patch distances, anomalib's image
score re-weighting over ``num_neighbors`` = 9 bank neighbours (its default), anomalib's map
generator (nearest upsampling, Gaussian blur sigma 4). PaDiM: strides 4/8/16, 100 random
channels (seeded), one Gaussian per position, Mahalanobis distance, anomalib's map generator.

anomalib is optional (``make peers-venv``); it is imported only when a peer is built.

Example:
    >>> out = fit_predict("patchcore", PeerConfig(), train_images, test_images, seed=111)  # doctest: +SKIP
    >>> out.maps.shape, out.scores.shape, round(out.fit.wall)                       # doctest: +SKIP
    ((24, 256, 256), (24,), 95)
"""

from __future__ import annotations

import dataclasses
import random
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from cdo_deploy.errors import CdoError
from cdo_deploy.registry import Registry
from cdo_train.model.backbones import BACKBONES
from cdo_train.model.cdo_model import load_features_state
from cdo_train.model.weights import load_teacher_state

__all__ = ["PEERS", "Clock", "PeerConfig", "PeerOutput", "anomalib_metrics", "build_peer", "fit_predict",
           "require_anomalib"]

INSTALL_HINT = "run `make peers-venv`, then `.venv-peers/bin/python tools/peers.py ...`"


@dataclass(frozen=True)
class PeerConfig:
    """How the peers are built and run (written into every result JSON).

    Attributes:
        backbone: a registered cdo backbone; its teacher weights and normalisation are used.
        image_size: square input side in pixels.
        patchcore_layers: timm ``out_indices`` PatchCore uses (2, 3 = strides 8, 16 for lite0).
        coreset_ratio: share of training patches kept in PatchCore's memory bank.
        num_neighbors: bank neighbours for PatchCore's image-score re-weighting (anomalib's 9).
        padim_layers: timm ``out_indices`` PaDiM uses (1, 2, 3 = strides 4, 8, 16).
        padim_features: channels PaDiM keeps (random subset).
        batch_size: images per forward pass.
        device: ``cpu`` or ``cuda:N``.
    """

    backbone: str = "tf_efficientnet_lite0"
    image_size: int = 256
    patchcore_layers: tuple[int, ...] = (2, 3)
    coreset_ratio: float = 0.1
    num_neighbors: int = 9
    padim_layers: tuple[int, ...] = (1, 2, 3)
    padim_features: int = 100
    batch_size: int = 8
    device: str = "cpu"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class Clock:
    """Wall and CPU (this process, all threads) seconds of a ``with`` block; waits for the GPU at the end.

    Example:
        >>> with Clock() as c:
        ...     _ = sum(range(1000))
        >>> c.wall >= 0.0 and c.cpu >= 0.0
        True
    """

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self.wall = self.cpu = 0.0

    def __enter__(self) -> "Clock":
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu


@dataclass
class PeerOutput:
    """One peer fitted on one class and run on its test images.

    Attributes:
        maps: ``(N, H, W)`` float32 anomaly maps at the input size.
        scores: ``(N,)`` float32 image scores.
        fit: wall / CPU seconds of the fit (features of the training images plus coreset
            selection or Gaussian fit).
        infer: wall / CPU seconds of the test images' inference (all of them).
        kept_mb: size of what the fitted model keeps (memory bank or Gaussians), MB.
    """

    maps: np.ndarray
    scores: np.ndarray
    fit: Clock
    infer: Clock
    kept_mb: float


@dataclass(frozen=True)
class _Peer:
    build: Callable[[PeerConfig], nn.Module]  # an unfitted anomalib torch model
    fit: Callable[[nn.Module, PeerConfig], None]  # called once the training images have passed through
    kept: Callable[[nn.Module], list[torch.Tensor]]  # what the fitted model stores


PEERS: Registry[_Peer] = Registry("peer")


def require_anomalib() -> str:
    """anomalib's version; a one-line ``CdoError`` naming the install step when it is missing."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            import anomalib
            import anomalib.models  # noqa: F401  (the torch models; fails without lightning etc.)
    except ImportError as e:
        raise CdoError(f"anomalib is not installed in this Python ({e.name or e}): {INSTALL_HINT}") from None
    return str(anomalib.__version__)


def _patchcore(cfg: PeerConfig) -> nn.Module:
    from anomalib.models.image.patchcore.torch_model import PatchcoreModel

    return PatchcoreModel(layers=list(cfg.patchcore_layers), backbone=BACKBONES.get(cfg.backbone).timm_name,
                          pre_trained=False, num_neighbors=cfg.num_neighbors)


def _padim(cfg: PeerConfig) -> nn.Module:
    from anomalib.models.image.padim.torch_model import PadimModel

    return PadimModel(backbone=BACKBONES.get(cfg.backbone).timm_name, layers=list(cfg.padim_layers),
                      pre_trained=False, n_features=cfg.padim_features)


PEERS.register("patchcore")(_Peer(_patchcore, lambda m, cfg: m.subsample_embedding(cfg.coreset_ratio),
                                  lambda m: [m.memory_bank]))
PEERS.register("padim")(_Peer(_padim, lambda m, cfg: m.fit(), lambda m: [m.gaussian.mean, m.gaussian.inv_covariance]))


def build_peer(name: str, cfg: PeerConfig) -> nn.Module:
    """An unfitted anomalib model whose timm backbone holds the project's teacher weights.

    Raises:
        CdoError: unknown peer, anomalib missing, or weights that do not fit.
    """
    peer = PEERS.get(name)
    require_anomalib()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = peer.build(cfg)
    load_features_state(model.feature_extractor.feature_extractor, load_teacher_state(cfg.backbone), cfg.backbone)
    return model.to(cfg.device)


def _seed(seed: int) -> None:
    """Seed every generator anomalib's samplers draw from (torch, numpy's global state, random)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _batches(images: np.ndarray, cfg: PeerConfig) -> Iterator[torch.Tensor]:
    """uint8 RGB ``(N, H, W, 3)`` -> normalised float ``(B, 3, H, W)`` batches on ``cfg.device``."""
    spec = BACKBONES.get(cfg.backbone)
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    for i in range(0, len(images), cfg.batch_size):
        x = torch.from_numpy(np.ascontiguousarray(images[i : i + cfg.batch_size])).permute(0, 3, 1, 2).float() / 255.0
        yield ((x - mean) / std).to(cfg.device)


@torch.no_grad()
def fit_predict(name: str, cfg: PeerConfig, train_images: np.ndarray, test_images: np.ndarray,
                seed: int) -> PeerOutput:
    """Fit peer ``name`` on good images and compute the test images' maps and scores.

    Args:
        name: a registered peer (``patchcore``, ``padim``).
        cfg: the configuration.
        train_images: ``(N_train, H, W, 3)`` uint8 RGB good images at ``cfg.image_size``.
        test_images: ``(N, H, W, 3)`` uint8 RGB test images at ``cfg.image_size``.
        seed: seeds the coreset sampler (PatchCore) or channel subset (PaDiM).

    Returns:
        The maps, scores, fit and inference times and the fitted model's size.
    """
    _seed(seed)
    peer, model = PEERS.get(name), build_peer(name, cfg)
    model.train()  # anomalib's models collect embeddings in training mode
    with Clock(cfg.device) as fit:
        for x in _batches(train_images, cfg):
            model(x)
        peer.fit(model, cfg)
    model.eval()
    maps, scores = [], []
    with Clock(cfg.device) as infer:
        for x in _batches(test_images, cfg):
            out = model(x)
            maps.append(out.anomaly_map[:, 0].float().cpu().numpy())
            scores.append(out.pred_score.reshape(-1).float().cpu().numpy())
    kept = sum(t.numel() * t.element_size() for t in peer.kept(model)) / 2**20
    return PeerOutput(np.concatenate(maps), np.concatenate(scores), fit, infer, kept)


def _unit(x: np.ndarray) -> torch.Tensor:
    """Min-max scaled to [0, 1] (order kept): torchmetrics applies a sigmoid to scores outside [0, 1]."""
    x = np.asarray(x, dtype=np.float64)
    span = float(x.max() - x.min()) or 1.0
    return torch.from_numpy((x - x.min()) / span)


def anomalib_metrics(labels: np.ndarray, scores: np.ndarray, masks: np.ndarray,
                     maps: np.ndarray) -> dict[str, float]:
    """anomalib's own image AUROC, pixel AUROC and ``_AUPRO`` (FPR limit 0.3), plus scikit-learn's AUROCs.

    A cross-check of ``cdo_train.training.metrics`` on the same maps; not used for the tables. Scores
    and maps are min-max scaled first, as anomalib's post-processor does before its metrics.

    Args:
        labels: ``(N,)`` 0 = good, 1 = defective.
        scores: ``(N,)`` image scores.
        masks: ``(N, H, W)`` bool ground truth.
        maps: ``(N, H, W)`` anomaly maps.

    Returns:
        ``image_auroc``, ``pixel_auroc``, ``aupro`` (anomalib) and ``sklearn_image_auroc``,
        ``sklearn_pixel_auroc``.
    """
    require_anomalib()
    from anomalib.metrics.aupro import _AUPRO
    from anomalib.metrics.auroc import _AUROC
    from sklearn.metrics import roc_auc_score

    def auroc(preds: np.ndarray, target: np.ndarray) -> float:
        metric = _AUROC()
        metric.update(_unit(preds), torch.from_numpy(np.asarray(target).astype(np.int64)))
        return float(metric.compute())

    aupro = _AUPRO(fpr_limit=0.3)
    aupro.update(_unit(maps), torch.from_numpy(masks.astype(np.int64)))
    return {
        "image_auroc": auroc(scores, labels),
        "pixel_auroc": auroc(maps, masks),
        "aupro": float(aupro.compute()),
        "sklearn_image_auroc": float(roc_auc_score(labels, scores)),
        "sklearn_pixel_auroc": float(roc_auc_score(masks.ravel(), maps.ravel())),
    }
