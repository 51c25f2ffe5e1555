"""Student architectures: the teacher's own (``same``, the paper's) or a light, asymmetric one.

CDO's student is a randomly initialised copy of the teacher. A smaller student
of a different shape (as asymmetric student-teacher methods use) imitates the
teacher on normal patches but has less capacity to also reproduce it on
anomalies, and it is the cheap half of the graph: it sets most of the training
time (its forward and backward passes) and half of the inference time.

``light``: an EfficientNet-Lite-style network (timm's builder) with one
inverted-residual block per stage, expansion 6, kernels 3/5/3, whose stages end
at strides 4, 8 and 16 with exactly the teacher's channel counts, so the
discrepancy head is unchanged::

    stem 3x3/2 (32) -> ds 3x3 (16) -> ir 3x3/2 (C4) -> ir 5x5/2 (C8) -> ir 3x3/2 (C16)

Example:
    >>> import torch
    >>> net = build_student("light", (24, 40, 112))
    >>> [tuple(f.shape) for f in net(torch.zeros(1, 3, 64, 64))]
    [(1, 24, 16, 16), (1, 40, 8, 8), (1, 112, 4, 4)]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, get_args

from cdo_deploy.errors import CdoError

if TYPE_CHECKING:
    from torch import nn

__all__ = ["STUDENTS", "Student", "build_student"]

# the choices of TrainConfig.student; torch is imported by build_student only, so the config stays torch-free
Student = Literal["same", "light"]
STUDENTS: tuple[str, ...] = get_args(Student)


def build_student(name: str, channels: tuple[int, int, int]) -> nn.Module:
    """The ``name`` student for a teacher whose levels have ``channels`` (strides 4, 8, 16).

    ``same`` is built by the caller (the teacher's architecture); this builds the others.
    """
    if name != "light":
        raise CdoError(f"unknown student {name!r}: choose one of {', '.join(STUDENTS)}")
    from timm.models._efficientnet_builder import decode_arch_def
    from torch import nn
    from timm.models.efficientnet import EfficientNetFeatures

    c4, c8, c16 = channels
    arch = [["ds_r1_k3_s1_e1_c16"], [f"ir_r1_k3_s2_e6_c{c4}"], [f"ir_r1_k5_s2_e6_c{c8}"],
            [f"ir_r1_k3_s2_e6_c{c16}"]]
    return EfficientNetFeatures(decode_arch_def(arch), out_indices=(1, 2, 3), stem_size=32, fix_stem=True,
                                act_layer=nn.ReLU6, norm_layer=nn.BatchNorm2d, round_chs_fn=lambda c: c)
