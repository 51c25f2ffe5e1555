"""Training configuration: one frozen pydantic model, loaded from YAML, overridden by flags.

Training length is counted in optimiser steps (``steps``), whatever the
dataset size; ``epochs`` is the alternative way to say it (passes over the
training images). Whichever was given last wins; neither given means
``DEFAULT_STEPS``. The learning rate decays exponentially per step from ``lr``
to ``lr * lr_final`` at the last step, so a run's schedule depends on its
length, not on the dataset size. MOM and OOM are on with gamma 2 (the paper's);
``configs/paper.yaml`` restores the paper's optimisation settings.

:class:`TrainConfig` is the one schema of a run: each field's type, choices
(``Literal``), range and description are declared once, and ``cdo-train``'s
options take their choices, defaults and help from it. Every value is checked
when the config is built (from YAML, flags or the Python API): a wrong type, a
value out of range or an unknown key fails with one line naming the key and
what it takes. Paths are stored absolute (``config.yaml`` works from any
directory); the folder-dataset directories are relative to ``data_root``, as
anomalib's ``Folder(root=...)``.

Example:
    >>> cfg = TrainConfig().merged({"epochs": 3, "class_names": ["tiles"]})
    >>> cfg.epochs, cfg.steps, cfg.class_names
    (3, None, ('tiles',))
    >>> cfg.merged({"steps": 500}).epochs is None
    True
    >>> cfg.merged({"batch_size": 0})
    Traceback (most recent call last):
    ...
    cdo_deploy.errors.CdoError: config key 'batch_size' must be an integer >= 1, got 0
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import AfterValidator, Field, field_validator, model_validator

from cdo_deploy.errors import CdoError
from cdo_deploy.schema import Bool, Float, Int, Names, Schema, Text

from ..model.students import STUDENTS, Student

__all__ = ["DATASETS", "DEFAULT_STEPS", "HEADS", "LEVEL_NORM", "LEVEL_NORMS", "RESUME_OVERRIDES", "SCORE_LEVELS",
           "STUDENTS", "TrainConfig", "load_config_file"]

Dataset = Literal["mvtec2d", "mvtec3d", "folder"]
# cdo+knn: fused with the memory bank (cdo_train.model.memory_bank); cdo+seg: a segmentation head trained on the
# synthetic anomalies after the student (cdo_train.model.seg_head, cdo_train.training.seg_training)
Head = Literal["cdo", "cdo+knn", "cdo+seg"]
ScoreRule = Literal["max", "topk_mean"]
LevelNorm = Literal["none", "z"]  # cdo_train.model.level_norm
DATASETS: tuple[str, ...] = get_args(Dataset)
HEADS: tuple[str, ...] = get_args(Head)
LEVEL_NORMS: tuple[str, ...] = get_args(LevelNorm)
DEFAULT_STEPS = 1000  # optimiser steps when neither steps nor epochs is given (docs/results/hard_surfaces.md)
SCORE_LEVELS = 0  # the image score reads all levels; 2 (strides 4 + 8) helps stochastic surfaces, costs others
                  # (docs/results/hard_surfaces.md, "Image score")
# "z" scales each level by 1 / its held-out good std before the sum ("none": the paper's plain sum). The default
# since it won three seeds on the real-photo suite: image AUROC +.025 +- .005 (paired), pixel AUROC and AUPRO up,
# no class-seed pair down by more than .004, no measurable latency (docs/results/photo_suite.md)
LEVEL_NORM = "z"
_LENGTH_KEYS = ("steps", "epochs")
_FOLDER_KEYS = ("normal_dir", "abnormal_dir", "mask_dir", "normal_test_dir")  # relative to data_root
_RESUME = {"resume": True}  # a field --resume may change: it does not change what is computed (except the device)


def _absolute(value: str | None) -> str | None:
    return None if value is None else os.path.abspath(os.path.expanduser(value))


def _weights(value: str | None) -> str | None:
    return value if value in (None, "random") else _absolute(value)


AbsPath = Annotated[Text, AfterValidator(_absolute)]


class TrainConfig(Schema):
    """Everything a training run needs; written to ``config.yaml`` in the run folder."""

    _what = "config key"

    dataset: Dataset = Field("mvtec2d", description="Data layout; folder: good images, or anomalib-style labelled "
                             "folders.")
    data_root: AbsPath | None = Field(None, description="Dataset root folder (required, here or in a --config).")
    class_names: Names = Field(("all",), description="Classes to train, or 'all'; a folder dataset's class is named "
                               "after its folder.")
    normal_dir: Text | None = Field(None, description="--dataset folder: good training images (under --data-root).")
    abnormal_dir: Text | None = Field(None, description="--dataset folder: defective test images (anomalib's name).")
    mask_dir: Text | None = Field(None, description="--dataset folder: masks of the abnormal images, matched by "
                                  "file name.")
    normal_test_dir: Text | None = Field(None, description="--dataset folder: good test images (default: "
                                         "test_split_ratio of --normal-dir, as anomalib).")
    test_split_ratio: Float = Field(0.2, ge=0, lt=1, description="--dataset folder without --normal-test-dir: "
                                    "the share of the good images tested.")
    recursive: Bool = Field(False, description="--dataset folder: find good images in sub-folders too.")
    calibration_dir: AbsPath | None = Field(None, description="Folder of good images (>= 10) that set the "
                                            "thresholds, instead of a hold-out of the training images.")
    backbone: Text = Field("tf_efficientnet_lite0", description="Teacher/student network.")
    teacher_weights: Annotated[Text, AfterValidator(_weights)] | None = Field(
        None, description="PATH (.pth/.safetensors) or 'random'; default: packaged/cached.")
    mom: Bool = Field(True, description="Synthetic anomalies (multi-objective optimisation).")
    oom: Bool = Field(True, description="Pixel reweighting (overlap optimisation).")
    gamma: Float = Field(2.0, ge=0, description="OOM focusing exponent.")
    hard_quantile: Float | None = Field(None, gt=0, lt=1, description="Hard-feature loss (EfficientAD's): on "
                                        "normal pixels only the discrepancies above this quantile of the batch's "
                                        "normal pixels (per level) are trained on; default off (docs/results/"
                                        "photo_suite.md).")
    penalty_dir: AbsPath | None = Field(None, description="Off-distribution penalty: a folder of natural images that "
                                        "are not the part; each step the student is also pushed away from the "
                                        "teacher on penalty_batch of them. Default off.")
    penalty_weight: Float = Field(1.0, gt=0, description="Weight of the off-distribution penalty (with penalty_dir).")
    penalty_batch: Int = Field(1, ge=1, description="Off-distribution images per step (with penalty_dir).")
    steps: Int | None = Field(None, ge=1, description=f"Training length in optimiser steps, whatever the dataset "
                              f"size (default {DEFAULT_STEPS}).")
    epochs: Int | None = Field(None, ge=1, description="Training length in passes over the data (instead of "
                               "--steps).")
    batch_size: Int = Field(8, ge=1, description="Training batch size.")
    lr: Float = Field(2e-3, gt=0, description="Learning rate at the first step (AdamW).")
    weight_decay: Float = Field(1e-4, ge=0, description="AdamW weight decay.")
    lr_final: Float = Field(0.05, gt=0, le=1, description="The fraction of lr reached at the last step "
                            "(exponential decay per step).")
    image_size: Int = Field(256, ge=32, multiple_of=16, description="Side of the square training images, px.")
    seed: Int = Field(111, description="Random seed (weights, batches, synthetic anomalies).")
    seeds: Int = Field(1, ge=1, description="Run N seeds: seed, seed+1, ...")
    eval_every: Int = Field(250, ge=1, description="Evaluate every N optimiser steps and at the end.")
    device: Text = Field("auto", description="auto, cpu or cuda:N.", json_schema_extra=_RESUME)
    amp: Bool = Field(True, description="CUDA: fp16 autocast with a GradScaler.")
    cpu_bf16: Bool = Field(True, description="CPU: bf16 autocast in the training step where the CPU has native bf16 "
                           "(AVX512-BF16, AMX; elsewhere fp32, as bf16 would be slower); evaluation stays fp32.")
    channels_last: Bool | None = Field(None, description="Channels-last (NHWC) model and batches in training; "
                                       "default: on CUDA, off on CPU (slower there, measured).")
    output_dir: AbsPath = Field("./result", description="Where run folders go.")
    name: Text | None = Field(None, description="Experiment name (default <backbone>-<curriculum>).")
    blur_sigma: Float = Field(4.0, ge=0, description="Gaussian blur of the anomaly map, px.")
    score_rule: ScoreRule = Field("max", description="Image score: the map's max or the mean of its topk largest "
                                  "values.")
    topk: Int = Field(100, ge=1, description="Pixels averaged by score_rule topk_mean.")
    score_levels: Int = Field(SCORE_LEVELS, ge=0, le=3, description="The image score reads the map of the first N "
                              "feature levels (strides 4, 8, 16); 0 = all three, the paper's. 2 raised image AUROC "
                              "on stochastic hard surfaces but lowered it on others (docs/results/hard_surfaces.md). "
                              "The anomaly map always sums all three; with --head cdo+knn the score is the fused "
                              "map's.")
    level_norm: LevelNorm = Field(LEVEL_NORM, description="z: each level's discrepancy is first divided by its "
                                  "standard deviation over the held-out good images, so no level drowns the "
                                  "others (docs/results/photo_suite.md); none: the levels are summed as they are "
                                  "(the paper's). The discrepancy head's: --head cdo+seg makes its own map.")
    head: Head = Field("cdo", description="cdo: teacher/student discrepancy; cdo+knn: fused with a memory bank of "
                       "normal teacher patches; cdo+seg: a segmentation head on the teacher x student features, "
                       "trained on the synthetic anomalies after the student (DeSTSeg), scoring the mean of its "
                       "topk largest pixels.")
    bank_size: Int = Field(1024, ge=1, description="Memory-bank patches for --head cdo+knn.")
    seg_steps: Int = Field(200, ge=1, description="Optimiser steps of the segmentation head (--head cdo+seg), "
                           "after the student's.")
    student: Student = Field("same", description="same: the teacher's architecture (the paper's); light: a small "
                             "asymmetric student.")
    holdout_fraction: Float = Field(0.1, ge=0, lt=1, description="Share of the good training images held out "
                                    "to calibrate the thresholds (without calibration_dir).")
    foreground_only: Bool = Field(False, description="Keep synthetic anomalies on the object (object classes on a "
                                 "plain background).")
    max_train_images: Int | None = Field(None, ge=0, description="Train on at most N images (0 or null: all).")
    curriculum: Text = Field("none", description="Curriculum schedule.")
    knobs: Names = Field((), description="Difficulty knobs driven by the curriculum.")
    curriculum_params: dict[str, Any] = Field(default_factory=dict, description="Schedule parameters, e.g. "
                                              "stages: 3.")
    knob_ranges: dict[str, Any] = Field(default_factory=dict, description="Per knob, its easy and/or hard value.")
    synth: dict[str, Any] = Field(default_factory=dict, description="Synthetic-anomaly parameters "
                                  "(cdo_train.synth.anomalies.SynthParams).")
    ordering: Text | None = Field(None, description="Per-sample ordering curriculum scorer.")
    ordering_params: dict[str, Any] = Field(default_factory=dict, description="Ordering parameters: start (fraction "
                                            "of images at t=0), warmup_steps.")
    progress: Bool = Field(True, description="Progress bars.", json_schema_extra=_RESUME)
    save_every: Int = Field(10, ge=0, description="Save a checkpoint every N epochs (0: only on Ctrl-C / SIGTERM).",
                            json_schema_extra=_RESUME)

    @field_validator("backbone")
    @classmethod
    def _known_backbone(cls, value: str) -> str:
        from ..model.backbones import BACKBONES

        BACKBONES.get(value)  # unknown names fail early, with suggestions
        return value

    @field_validator("synth")
    @classmethod
    def _synth(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value:
            from ..synth.anomalies import SynthParams

            SynthParams.from_dict(value)  # unknown keys / bad values fail here
        return value

    @model_validator(mode="after")
    def _combinations(self) -> "TrainConfig":
        checks = [
            (self.steps is None or self.epochs is None, "give --steps or --epochs, not both"),
            (self.dataset == "folder" or not (self.recursive or any(getattr(self, k) for k in _FOLDER_KEYS)),
             "--normal-dir, --abnormal-dir, --mask-dir, --normal-test-dir and --recursive apply to --dataset folder"),
            (self.mask_dir is None or self.abnormal_dir is not None, "--mask-dir needs --abnormal-dir (masks of the "
             "abnormal images)"),
            (self.head != "cdo+seg" or self.score_levels == 0, f"--head cdo+seg scores its own map, which has no "
             f"levels to choose: it takes --score-levels 0, not {self.score_levels}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise CdoError(msg)
        if self.curriculum != "none" or self.knobs or self.curriculum_params or self.knob_ranges or self.ordering:
            from .curriculum import build_schedule
            from ..synth.difficulty import validate_knobs
            from .ordering import check_ordering

            build_schedule(self.curriculum, self.curriculum_params, seed=self.seed)
            validate_knobs(self.knobs, self.knob_ranges)
            if self.ordering is not None:
                check_ordering(self.ordering, self.ordering_params)
        return self

    def folder(self, key: str) -> str | None:
        """``normal_dir``, ``abnormal_dir``, ``mask_dir`` or ``normal_test_dir`` as an absolute path
        (relative values are taken under ``data_root``, as anomalib's ``root``)."""
        value = getattr(self, key)
        if value is None or self.data_root is None:
            return value
        return os.path.join(self.data_root, os.path.expanduser(value))

    @property
    def experiment(self) -> str:
        """Experiment name: ``--name`` or ``<backbone>-<curriculum>[-<knobs>][-order_<ordering>]``."""
        if self.name:
            return self.name
        knobs = "+".join(self.knobs)
        order = f"-order_{self.ordering}" if self.ordering else ""
        return f"{self.backbone}-{self.curriculum}" + (f"-{knobs}" if knobs else "") + order

    def merged(self, overrides: dict[str, Any]) -> "TrainConfig":
        """A validated copy with ``overrides`` applied; unknown keys fail with suggestions; None is ignored.

        ``steps`` and ``epochs`` say the same thing: the one in ``overrides`` replaces the other."""
        clean = {key.replace("-", "_"): value for key, value in overrides.items()}
        clean = {key: value for key, value in clean.items() if value is not None or key not in type(self).model_fields}
        given = [k for k in _LENGTH_KEYS if k in clean]
        if len(given) == 2:
            raise CdoError("give steps or epochs, not both (they are two ways to set the training length)")
        for key in given:
            clean[_LENGTH_KEYS[1 - _LENGTH_KEYS.index(key)]] = None
        return type(self)(**{**dict(self), **clean})  # validated as a new config (model_copy would not check)

    def total_steps(self, n_train: int) -> int:
        """Optimiser steps of a run on ``n_train`` training images."""
        if self.steps is not None:
            return self.steps
        if self.epochs is not None:
            return self.epochs * math.ceil(n_train / self.batch_size)
        return DEFAULT_STEPS

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain YAML/JSON values (lists, absolute folders): ``merged`` takes it back."""
        d = self.model_dump()
        d["class_names"] = list(self.class_names)
        d["knobs"] = list(self.knobs)
        d.update({k: self.folder(k) for k in _FOLDER_KEYS})  # absolute: config.yaml works from anywhere
        return d


#: the fields ``--resume`` accepts next to it (they do not change what is computed, except the device)
RESUME_OVERRIDES: tuple[str, ...] = tuple(k for k, f in TrainConfig.model_fields.items()
                                          if f.json_schema_extra == _RESUME)


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
