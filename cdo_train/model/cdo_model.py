"""The CDO model: frozen pretrained teacher, trainable student, discrepancy head.

``CDOModel.forward`` takes RGB images in [0, 1], (B, 3, H, W) float, and
returns ``(anomaly_map (B,1,H,W), score (B,))``. Normalisation lives inside
the model so that training, evaluation and the exported graph agree.

Example:
    >>> import torch
    >>> m = CDOModel(ModelConfig("resnet18", image_size=64, teacher_weights="random"))
    >>> amap, score = m(torch.rand(2, 3, 64, 64))
    >>> tuple(amap.shape), tuple(score.shape)
    ((2, 1, 64, 64), (2,))
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from cdo_deploy.errors import CdoError

from .backbones import BACKBONES
from .discrepancy import DiscrepancyHead, LevelSum
from .memory_bank import KNN_LEVELS, MemoryBank
from .seg_head import SEG_WIDTH, SegHead
from .students import build_student
from .weights import load_teacher_state

__all__ = ["CDOModel", "ModelConfig", "build_feature_extractor", "load_features_state"]


@dataclass(frozen=True)
class ModelConfig:
    """What is needed to rebuild a model (saved with every run)."""

    backbone: str = "tf_efficientnet_lite0"
    image_size: int = 256
    blur_sigma: float = 4.0
    score_rule: str = "max"
    topk: int = 100
    teacher_weights: str | None = None
    bank_size: int = 0  # > 0: the memory-bank head (``cdo_train.model.memory_bank``) with this many patches
    student: str = "same"  # "same": the teacher's architecture; "light": ``cdo_train.model.students``
    score_levels: int = 0  # the image score reads the first N levels' map; 0 = all (runs saved before it)
    level_norm: str = "none"  # "z": levels scaled by 1 / their held-out good std (cdo_train.model.level_norm)
    level_scales: tuple[float, ...] = ()  # the per-level factors the head applies; () = all 1
    seg_width: int = 0  # > 0: the segmentation head (``cdo_train.model.seg_head``) with this many hidden channels

    def __post_init__(self) -> None:
        object.__setattr__(self, "level_scales", tuple(float(x) for x in self.level_scales))  # JSON gives a list
        if self.bank_size > 0 and self.seg_width > 0:
            raise CdoError("a model has one extra head: bank_size and seg_width cannot both be set")

    @property
    def head(self) -> str:
        """``"cdo"`` (teacher/student discrepancy), ``"cdo+knn"`` (fused with the memory bank) or
        ``"cdo+seg"`` (the segmentation head's map and score)."""
        return "cdo+seg" if self.seg_width > 0 else "cdo+knn" if self.bank_size > 0 else "cdo"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def build_feature_extractor(backbone: str, state: dict[str, torch.Tensor] | None) -> nn.Module:
    """timm ``features_only`` network at the spec's levels, optionally with weights."""
    import timm

    spec = BACKBONES.get(backbone)
    net = timm.create_model(spec.timm_name, pretrained=False, features_only=True, out_indices=spec.out_indices)
    strides = tuple(net.feature_info.reduction())
    if strides != (4, 8, 16):
        raise CdoError(f"backbone {backbone} levels {spec.out_indices} have strides {strides}, need (4, 8, 16)")
    _drop_unused_stages(net)
    if state is not None:
        load_features_state(net, state, backbone)
    return net


def _drop_unused_stages(net: nn.Module) -> None:
    """timm's EfficientNet feature extractor runs every stage, also those past the last level used
    (stride 32 for lite0: about a fifth of its work, in training and in every forward pass); drop them.
    The exported ONNX graph never had them (the exporter prunes unused outputs)."""
    last = max(getattr(net, "_stage_out_idx", ()) or (0,))
    blocks = getattr(net, "blocks", None)
    if last and isinstance(blocks, nn.Sequential) and len(blocks) > last:
        net.blocks = blocks[:last]


def load_features_state(net: nn.Module, state: dict[str, torch.Tensor], backbone: str) -> None:
    """Load a full-classifier state dict into a timm ``features_only`` network.

    The classifier's extra tensors (head, later stages) are ignored; every tensor the
    network has must be in ``state``.

    Raises:
        CdoError: ``state`` lacks tensors the network needs.
    """
    missing, _unexpected = net.load_state_dict(state, strict=False)
    if missing:
        raise CdoError(f"teacher weights for {backbone} lack {len(missing)} tensors, e.g. {missing[:3]}")


class CDOModel(nn.Module):
    """Teacher + student + :class:`DiscrepancyHead` (with a memory bank), or + :class:`SegHead`.

    Args:
        cfg: the model configuration.
        teacher_state: full-classifier state dict; loaded from ``cfg.teacher_weights`` when omitted.
        load_teacher: False to skip loading (the caller loads a saved state dict afterwards).
    """

    def __init__(
        self,
        cfg: ModelConfig,
        teacher_state: dict[str, torch.Tensor] | None = None,
        load_teacher: bool = True,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        spec = BACKBONES.get(cfg.backbone)
        if load_teacher and teacher_state is None:
            teacher_state = load_teacher_state(cfg.backbone, cfg.teacher_weights)
        self.teacher = build_feature_extractor(cfg.backbone, teacher_state if load_teacher else None)
        if cfg.student == "same":
            self.student = build_feature_extractor(cfg.backbone, None)
        else:
            self.student = build_student(cfg.student, tuple(self.teacher.feature_info.channels()))
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.teacher.eval()
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1))
        size = (cfg.image_size, cfg.image_size)
        self.head = DiscrepancyHead(size, cfg.blur_sigma, cfg.score_rule, cfg.topk, score_levels=cfg.score_levels,
                                    level_scales=cfg.level_scales)
        self.bank: MemoryBank | None = None
        if cfg.bank_size > 0:  # shape only: the trainer fills it (set_bank), load_model loads it
            channels = sum(self.teacher.feature_info.channels()[i] for i in KNN_LEVELS)
            self.bank = MemoryBank.empty(cfg.bank_size, channels)
        self.seg_head: SegHead | None = None
        if cfg.seg_width > 0:  # untrained: the trainer trains one (set_seg_head), load_model loads it
            self.seg_head = self.new_seg_head(cfg.seg_width)

    def set_bank(self, bank: MemoryBank | None) -> None:
        """Attach (or with None, detach) the memory-bank head; ``cfg.bank_size`` follows."""
        self.bank = bank
        self.cfg = dataclasses.replace(self.cfg, bank_size=0 if bank is None else int(bank.bank.shape[0]))

    def new_seg_head(self, width: int = SEG_WIDTH) -> SegHead:
        """An untrained segmentation head that fits this model's features, input size and ``cfg.topk``."""
        return SegHead(self.teacher.feature_info.channels(), self.head.image_size, self.cfg.topk, width)

    def set_seg_head(self, seg: SegHead | None) -> None:
        """Attach (or with None, detach) the segmentation head; ``cfg.seg_width`` follows."""
        self.seg_head = seg
        self.cfg = dataclasses.replace(self.cfg, seg_width=0 if seg is None else seg.width)

    def set_level_scales(self, scales: tuple[float, ...]) -> None:
        """Set the head's per-level factors (level normalisation); ``cfg.level_scales`` follows."""
        self.head.set_level_scales(scales)
        self.cfg = dataclasses.replace(self.cfg, level_scales=self.head.level_scales)

    def train(self, mode: bool = True) -> "CDOModel":
        super().train(mode)
        self.teacher.eval()  # the teacher is frozen, BatchNorm statistics included
        return self

    def features(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Teacher and student feature lists for RGB images in [0, 1], (B, 3, H, W)."""
        x = (x - self.mean) / self.std
        with torch.no_grad():
            fe = self.teacher(x)
        fa = self.student(x)
        return list(fe), list(fa)

    @torch.no_grad()
    def teacher_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The teacher's feature list for RGB images in [0, 1], (B, 3, H, W)."""
        return list(self.teacher((x - self.mean) / self.std))

    def head_outputs(self, fe: list[torch.Tensor], fa: list[torch.Tensor],
                     level_sum: LevelSum | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(anomaly_map, score)`` of teacher and student features: the segmentation head's when one is
        attached, else the discrepancy head's (fused with the memory bank when there is one; ``level_sum``:
        :meth:`DiscrepancyHead.low_res_maps`)."""
        if self.seg_head is not None:
            return self.seg_head(fe, fa)
        return self.head(fe, fa, self.bank, level_sum=level_sum)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fe, fa = self.features(x)
        return self.head_outputs(fe, fa)
