"""Training configuration: one frozen dataclass, loaded from YAML, overridden by flags.

Training length is counted in optimiser steps (``steps``), whatever the
dataset size; ``epochs`` is the alternative way to say it (passes over the
training images). Whichever was given last wins; neither given means
``DEFAULT_STEPS``. The learning rate decays exponentially per step from ``lr``
to ``lr * lr_final`` at the last step, so a run's schedule depends on its
length, not on the dataset size. MOM and OOM are on with gamma 2 (the paper's);
``configs/paper.yaml`` restores the paper's optimisation settings.

Every field is type-checked when the config is built (from YAML, flags or the
Python API): a wrong type fails with one line naming the key and the type it
takes. Paths are stored absolute (``config.yaml`` works from any directory);
the folder-dataset directories are relative to ``data_root``, as anomalib's
``Folder(root=...)``.

Example:
    >>> cfg = TrainConfig().merged({"epochs": 3, "class_names": ["tiles"]})
    >>> cfg.epochs, cfg.steps, cfg.class_names
    (3, None, ('tiles',))
    >>> cfg.merged({"steps": 500}).epochs is None
    True
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cdo_deploy.errors import CdoError

__all__ = ["DATASETS", "DEFAULT_STEPS", "HEADS", "LEVEL_NORM", "LEVEL_NORMS", "SCORE_LEVELS", "TrainConfig",
           "load_config_file"]

DATASETS = ("mvtec2d", "mvtec3d", "folder")
DEFAULT_STEPS = 1000  # optimiser steps when neither steps nor epochs is given (docs/results/hard_surfaces.md)
SCORE_LEVELS = 0  # the image score reads all levels; 2 (strides 4 + 8) helps stochastic surfaces, costs others
                  # (docs/results/hard_surfaces.md, "Image score")
LEVEL_NORM = "none"  # the paper's plain sum of the levels; "z" scales each by 1 / its held-out good std
LEVEL_NORMS = ("none", "z")  # cdo_train.level_norm
_LENGTH_KEYS = ("steps", "epochs")
STUDENTS = ("same", "light")  # cdo_train.students
HEADS = ("cdo", "cdo+knn")  # cdo+knn: fused with the memory bank (cdo_train.memory_bank)
_PATH_KEYS = ("data_root", "output_dir", "calibration_dir")
_FOLDER_KEYS = ("normal_dir", "abnormal_dir", "mask_dir", "normal_test_dir")  # relative to data_root


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; written to ``config.yaml`` in the run folder."""

    dataset: str = "mvtec2d"
    data_root: str | None = None
    class_names: tuple[str, ...] = ("all",)
    normal_dir: str | None = None
    abnormal_dir: str | None = None
    mask_dir: str | None = None
    normal_test_dir: str | None = None
    test_split_ratio: float = 0.2
    recursive: bool = False
    calibration_dir: str | None = None
    backbone: str = "tf_efficientnet_lite0"
    teacher_weights: str | None = None
    mom: bool = True
    oom: bool = True
    gamma: float = 2.0
    steps: int | None = None
    epochs: int | None = None
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    lr_final: float = 0.05
    image_size: int = 256
    seed: int = 111
    seeds: int = 1
    eval_every: int = 250
    device: str = "auto"
    amp: bool = True  # CUDA: fp16 autocast + GradScaler (cdo_train.step)
    cpu_bf16: bool = True  # CPU: bf16 autocast where the CPU has native bf16 (cdo_train.step); else fp32
    channels_last: bool | None = None  # NHWC model and batches; None: on CUDA only (slower on CPU, measured)
    output_dir: str = "./result"
    name: str | None = None
    blur_sigma: float = 4.0
    score_rule: str = "max"
    topk: int = 100
    score_levels: int = SCORE_LEVELS
    level_norm: str = LEVEL_NORM
    head: str = "cdo"
    bank_size: int = 1024
    student: str = "same"
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
    save_every: int = 10

    def __post_init__(self) -> None:
        self._check_types()
        self._absolute_paths()
        if self.dataset not in DATASETS:
            raise CdoError(f"--dataset must be one of {', '.join(DATASETS)}, got {self.dataset!r}")
        checks = [
            (self.steps is None or self.steps >= 1, "--steps must be >= 1"),
            (self.epochs is None or self.epochs >= 1, "--epochs must be >= 1"),
            (self.steps is None or self.epochs is None, "give --steps or --epochs, not both"),
            (0.0 < self.lr_final <= 1.0, "lr_final (the fraction of --lr reached at the last step) must be in (0, 1]"),
            (self.batch_size >= 1, "--batch-size must be >= 1"),
            (self.lr > 0, "--lr must be > 0"),
            (self.image_size >= 32 and self.image_size % 16 == 0, "--image-size must be a multiple of 16, >= 32"),
            (self.eval_every >= 1, "--eval-every (optimiser steps) must be >= 1"),
            (self.seeds >= 1, "--seeds must be >= 1"),
            (self.gamma >= 0, "--gamma must be >= 0"),
            (0.0 <= self.holdout_fraction < 1.0, "holdout_fraction must be in [0, 1)"),
            (self.score_rule in ("max", "topk_mean"), "score_rule must be max or topk_mean"),
            (0 <= self.score_levels <= 3, "--score-levels must be 0 (all levels), 1, 2 or 3"),
            (self.level_norm in LEVEL_NORMS, f"--level-norm must be one of {', '.join(LEVEL_NORMS)}"),
            (self.head in HEADS, f"--head must be one of {', '.join(HEADS)}"),
            (self.bank_size >= 1, "--bank-size must be >= 1"),
            (self.student in STUDENTS, f"--student must be one of {', '.join(STUDENTS)}"),
            (self.save_every >= 0, "--save-every (epochs between checkpoints; 0 = only when interrupted) must be >= 0"),
            (0.0 <= self.test_split_ratio < 1.0, "test_split_ratio must be in [0, 1)"),
            (self.dataset == "folder" or not (self.recursive or any(getattr(self, k) for k in _FOLDER_KEYS)),
             "--normal-dir, --abnormal-dir, --mask-dir, --normal-test-dir and --recursive apply to --dataset folder"),
            (self.mask_dir is None or self.abnormal_dir is not None, "--mask-dir needs --abnormal-dir (masks of the "
             "abnormal images)"),
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

    def _check_types(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            checked = _checked(f.name, value, hints[f.name])
            if checked is not value:
                object.__setattr__(self, f.name, checked)

    def _absolute_paths(self) -> None:
        for key in _PATH_KEYS:
            value = getattr(self, key)
            if value is not None:
                object.__setattr__(self, key, os.path.abspath(os.path.expanduser(value)))
        if self.teacher_weights not in (None, "random"):
            object.__setattr__(self, "teacher_weights", os.path.abspath(os.path.expanduser(self.teacher_weights)))

    def folder(self, key: str) -> str | None:
        """``normal_dir``, ``abnormal_dir``, ``mask_dir`` or ``normal_test_dir`` as an absolute path
        (relative values are taken under ``data_root``, as anomalib's ``root``)."""
        value = getattr(self, key)
        if value is None or self.data_root is None:
            return value
        return os.path.join(self.data_root, os.path.expanduser(value))

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
        """A copy with ``overrides`` applied; unknown keys fail with suggestions; None is ignored.

        ``steps`` and ``epochs`` say the same thing: the one in ``overrides`` replaces the other."""
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
        given = [k for k in _LENGTH_KEYS if k in clean]
        if len(given) == 2:
            raise CdoError("give steps or epochs, not both (they are two ways to set the training length)")
        for key in given:
            clean[_LENGTH_KEYS[1 - _LENGTH_KEYS.index(key)]] = None
        return dataclasses.replace(self, **clean)

    def total_steps(self, n_train: int) -> int:
        """Optimiser steps of a run on ``n_train`` training images."""
        if self.steps is not None:
            return self.steps
        if self.epochs is not None:
            return self.epochs * math.ceil(n_train / self.batch_size)
        return DEFAULT_STEPS

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["class_names"] = list(self.class_names)
        d["knobs"] = list(self.knobs)
        d.update({k: self.folder(k) for k in _FOLDER_KEYS})  # absolute: config.yaml works from anywhere
        return d


def _describe(hint: Any) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if hint in names:
        return names[hint]
    origin = typing.get_origin(hint)
    if origin is tuple:
        return "a list of strings"
    if origin is dict:
        return "a mapping of name: value"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint) if a is not type(None)) + " or null"
    return str(hint)


def _checked(key: str, value: Any, hint: Any) -> Any:
    """``value`` if it has the type ``hint`` describes (coerced where lossless), else a one-line CdoError."""
    declared, origin = hint, typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
        origin = typing.get_origin(hint)
    ok = False
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        if isinstance(value, str):  # YAML 1.1 reads 2e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            return value if isinstance(value, float) else float(value)
    elif hint is str:
        if isinstance(value, Path):
            return str(value)
        ok = isinstance(value, str)
    elif origin is tuple:
        if isinstance(value, str):
            return (value,)
        if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            return value if isinstance(value, tuple) else tuple(value)
    elif origin is dict:
        ok = isinstance(value, dict)
    if not ok:
        raise CdoError(f"config key {key!r} must be {_describe(declared)}, got {value!r} ({type(value).__name__})")
    return value


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
