"""The training step's forward pass and loss: ONE definition for every trainer.

The single-process trainer (:mod:`.trainer`), the DDP trainer (:mod:`.distributed`)
and the ordering curriculum's warm-up probe (:mod:`.ordering`) all compute a
step's loss with :func:`batch_loss`; they differ only in where the batch comes
from and which student module (the plain one, or its DDP wrapper) runs.

Speed settings of the step (:class:`StepPrecision`, from the config and the device):

* ``channels_last``: model and batch in NHWC memory format; the arithmetic is the
  same up to summation order. By default on CUDA (cuDNN's fast layout) and off
  on CPU, where it measured 0.94-1.04x of NCHW (docs/results/performance.md).
* autocast: fp16 with a ``GradScaler`` on CUDA (``amp``: fp16 keeps 3 more
  mantissa bits than bf16, the scaler handles its range); bf16 on a CPU with
  native bf16 instructions (``cpu_bf16``: AVX512-BF16 or AMX; on other CPUs
  bf16 is emulated and slower than fp32, so it stays off there). The
  discrepancy and the loss are always computed in fp32 (:mod:`cdo_train.model.discrepancy`).
  Evaluation, calibration and export stay fp32 on CPU: the deployed model is
  the one that is measured.

The passes are labelled for ``torch.profiler`` (``cdo.teacher``, ``cdo.student``, ``cdo.loss``;
``tools/train_speed.py --profile`` prints where a step's time goes); docs/results/performance.md
has the measured effect of each setting.

Example:
    >>> import torch
    >>> from cdo_train.model.cdo_model import CDOModel, ModelConfig
    >>> m = CDOModel(ModelConfig("resnet18", image_size=64, teacher_weights="random"))
    >>> p = StepPrecision(autocast=None, channels_last=False)
    >>> loss = batch_loss(m, torch.rand(2, 3, 64, 64), None, gamma=2.0, oom=True, precision=p)
    >>> loss.dim(), bool(loss.requires_grad)
    (0, True)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.profiler import record_function

from .loss import cdo_loss, penalty_loss

__all__ = ["StepPrecision", "batch_loss", "native_bf16", "step_features", "step_precision", "to_float_batch"]

#: /proc/cpuinfo flags of CPUs that compute bf16 natively (oneDNN uses them for bf16 convolutions)
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class StepPrecision:
    """How a training step runs: the autocast dtype (None = fp32) and the memory format."""

    autocast: torch.dtype | None
    channels_last: bool

    @property
    def grad_scaler(self) -> bool:
        """fp16 needs a GradScaler (its range); bf16 has fp32's range and needs none."""
        return self.autocast is torch.float16

    @property
    def name(self) -> str:
        """``fp32``, ``bf16`` or ``fp16`` (for logs and ``throughput.json``)."""
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.autocast]


@functools.lru_cache(maxsize=1)
def native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when the CPU has bf16 instructions (AVX512-BF16 or AMX-BF16); False where unknown."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return any(f in flags for f in BF16_FLAGS)


def step_precision(amp: bool, cpu_bf16: bool, channels_last: bool | None, device: torch.device) -> StepPrecision:
    """The step's settings for ``device``: fp16 on CUDA with ``amp``, bf16 on a native-bf16 CPU with
    ``cpu_bf16``, else fp32; channels-last as given, or (None) on CUDA only."""
    dtype = None
    if device.type == "cuda" and amp:
        dtype = torch.float16
    elif device.type == "cpu" and cpu_bf16 and native_bf16():
        dtype = torch.bfloat16
    return StepPrecision(dtype, device.type == "cuda" if channels_last is None else channels_last)


def to_float_batch(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (B, H, W, 3) -> float RGB in [0, 1], (B, 3, H, W)."""
    return images.permute(0, 3, 1, 2).float().div_(255.0)


def step_features(model, x: torch.Tensor, precision: StepPrecision, student: torch.nn.Module | None = None
                  ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Teacher (no grad) and student feature lists of a batch, in the step's precision and memory format.

    Args:
        model: the :class:`~cdo_train.model.cdo_model.CDOModel` (its normalisation and teacher).
        x: RGB images in [0, 1], (B, 3, H, W), on the model's device.
        precision: autocast dtype and memory format (:func:`step_precision`).
        student: the student module to run (a DDP wrapper of ``model.student``); default ``model.student``.
    """
    if precision.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast(x.device.type, dtype=precision.autocast or torch.float32,
                        enabled=precision.autocast is not None):
        xn = (x - model.mean) / model.std
        with torch.no_grad(), record_function("cdo.teacher"):
            fe = list(model.teacher(xn))
        with record_function("cdo.student"):
            fa = list((student or model.student)(xn))
    return fe, fa


def batch_loss(model, x: torch.Tensor, mask: torch.Tensor | None, *, gamma: float, oom: bool,
               precision: StepPrecision, student: torch.nn.Module | None = None,
               hard_quantile: float | None = None, penalty: torch.Tensor | None = None,
               penalty_weight: float = 1.0) -> torch.Tensor:
    """The CDO loss of one batch: teacher (no grad) and student forward passes, then :func:`cdo_loss`.

    Args:
        model: the :class:`~cdo_train.model.cdo_model.CDOModel` (its normalisation and teacher).
        x: RGB images in [0, 1] with any synthetic anomalies pasted in, (B, 3, H, W), on the model's device.
        mask: the synthetic-anomaly mask (B, 1, H, W), or None (MOM off).
        gamma, oom: the loss's OOM settings.
        precision: autocast dtype and memory format (:func:`step_precision`).
        student: the student module to run (a DDP wrapper of ``model.student``); default ``model.student``.
        hard_quantile: the hard-feature loss's quantile (:func:`~cdo_train.training.loss.cdo_loss`; None: off).
        penalty: off-distribution images in [0, 1], (P, 3, H, W), run in the same forward passes as ``x``;
            ``penalty_weight`` times :func:`~cdo_train.training.loss.penalty_loss` of them is added.

    Returns:
        The scalar fp32 loss, with a graph to the student's parameters.
    """
    n = len(x)
    if penalty is not None:
        x = torch.cat([x, penalty.to(x.device, x.dtype)])
    fe, fa = step_features(model, x, precision, student)
    with record_function("cdo.loss"):
        if penalty is None:
            return cdo_loss(fe, fa, mask, gamma=gamma, oom=oom, hard_quantile=hard_quantile)
        loss = cdo_loss([f[:n] for f in fe], [f[:n] for f in fa], mask, gamma=gamma, oom=oom,
                        hard_quantile=hard_quantile)
        return loss + penalty_weight * penalty_loss([f[n:] for f in fe], [f[n:] for f in fa])
