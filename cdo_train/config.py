"""Training configuration: one frozen dataclass, loaded from YAML, overridden by flags.

Defaults are the paper's: AdamW lr 4e-4, weight decay 1e-4, exponential LR
decay 0.95 per epoch, 50 epochs, batch 16, 256 px, seed 111, evaluation every
5 epochs and at the end, MOM and OOM on with gamma 2.

Example:
    >>> cfg = TrainConfig().merged({"epochs": 3, "class_names": ["tiles"]})
    >>> cfg.epochs, cfg.class_names, cfg.lr
    (3, ('tiles',), 0.0004)
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cdo_deploy.errors import CdoError

__all__ = ["DATASETS", "TrainConfig", "load_config_file"]

DATASETS = ("mvtec2d", "mvtec3d", "folder")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; written to ``config.yaml`` in the run folder."""

    dataset: str = "mvtec2d"
    data_root: str = "./data"
    class_names: tuple[str, ...] = ("all",)
    backbone: str = "tf_efficientnet_lite0"
    teacher_weights: str | None = None
    mom: bool = True
    oom: bool = True
    gamma: float = 2.0
    epochs: int = 50
    batch_size: int = 16
    lr: float = 4e-4
    weight_decay: float = 1e-4
    lr_decay: float = 0.95
    image_size: int = 256
    seed: int = 111
    seeds: int = 1
    eval_every: int = 5
    device: str = "auto"
    amp: bool = True
    output_dir: str = "./result"
    name: str | None = None
    blur_sigma: float = 4.0
    score_rule: str = "max"
    topk: int = 100
    holdout_fraction: float = 0.1
    foreground_only: bool = False
    max_train_images: int | None = None
    curriculum: str = "none"
    knobs: tuple[str, ...] = ()
    curriculum_params: dict[str, Any] = field(default_factory=dict)
    knob_ranges: dict[str, Any] = field(default_factory=dict)
    synth: dict[str, Any] = field(default_factory=dict)
    ordering: str | None = None
    ordering_params: dict[str, Any] = field(default_factory=dict)
    progress: bool = True

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise CdoError(f"--dataset must be one of {', '.join(DATASETS)}, got {self.dataset!r}")
        checks = [
            (self.epochs >= 1, "--epochs must be >= 1"),
            (self.batch_size >= 1, "--batch-size must be >= 1"),
            (self.lr > 0, "--lr must be > 0"),
            (self.image_size >= 32 and self.image_size % 16 == 0, "--image-size must be a multiple of 16, >= 32"),
            (self.eval_every >= 1, "--eval-every must be >= 1"),
            (self.seeds >= 1, "--seeds must be >= 1"),
            (self.gamma >= 0, "--gamma must be >= 0"),
            (0.0 <= self.holdout_fraction < 1.0, "holdout_fraction must be in [0, 1)"),
            (self.score_rule in ("max", "topk_mean"), "score_rule must be max or topk_mean"),
        ]
        for ok, msg in checks:
            if not ok:
                raise CdoError(msg)
        from .backbones import BACKBONES

        BACKBONES.get(self.backbone)  # unknown names fail early, with suggestions
        if self.synth:
            from .anomalies import SynthParams

            SynthParams.from_dict(self.synth)  # unknown keys / bad values fail here
        if self.curriculum != "none" or self.knobs or self.curriculum_params or self.knob_ranges or self.ordering:
            self._check_curriculum()

    def _check_curriculum(self) -> None:
        from .curriculum import build_schedule
        from .difficulty import validate_knobs
        from .ordering import check_ordering

        for key in ("curriculum_params", "knob_ranges", "ordering_params"):
            if not isinstance(getattr(self, key), dict):
                raise CdoError(f"{key} must be a mapping of name: value, got {getattr(self, key)!r}")
        build_schedule(self.curriculum, self.curriculum_params, seed=self.seed)
        validate_knobs(self.knobs, self.knob_ranges)
        if self.ordering is not None:
            check_ordering(self.ordering, self.ordering_params)

    @property
    def experiment(self) -> str:
        """Experiment name: ``--name`` or ``<backbone>-<curriculum>[-<knobs>][-order_<ordering>]``."""
        if self.name:
            return self.name
        knobs = "+".join(self.knobs)
        order = f"-order_{self.ordering}" if self.ordering else ""
        return f"{self.backbone}-{self.curriculum}" + (f"-{knobs}" if knobs else "") + order

    def merged(self, overrides: dict[str, Any]) -> "TrainConfig":
        """A copy with ``overrides`` applied; unknown keys fail with suggestions; None is ignored."""
        names = {f.name for f in dataclasses.fields(self)}
        clean: dict[str, Any] = {}
        for key, value in overrides.items():
            key = key.replace("-", "_")
            if key not in names:
                close = difflib.get_close_matches(key, sorted(names), n=3)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise CdoError(f"unknown config key {key!r}{hint}")
            if value is None:
                continue
            if key in ("class_names", "knobs"):
                value = (value,) if isinstance(value, str) else tuple(value)
            clean[key] = value
        return dataclasses.replace(self, **clean)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["class_names"] = list(self.class_names)
        d["knobs"] = list(self.knobs)
        return d


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML preset into a dict (validated when merged)."""
    p = Path(path)
    if not p.is_file():
        raise CdoError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise CdoError(f"cannot parse {p}: {e}") from None
    if not isinstance(data, dict):
        raise CdoError(f"{p} must hold a mapping of option: value")
    return data
