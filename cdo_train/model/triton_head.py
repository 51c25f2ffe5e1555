"""Fused Triton discrepancy head: the level sum of :mod:`cdo_train.model.discrepancy` in three kernels.

What is fused (``D`` of the discrepancy docstring, before the blur)::

    D[b, 0, y, x] = s_0 d_0(b, y, x) + sum_{l >= 1} bilinear(s_l d_l -> (h0, w0))[b, y, x]
    d_l = max(0, 2 - 2 <fe, fa> / sqrt(max(|fe|^2 |fa|^2, eps)))        fp32
    s_l = the head's per-level scale (level normalisation; 1 without it)

Steps:

1. one launch per coarser level (l >= 1) computes ``d_l`` at its own
   resolution: per pixel the three channel reductions ``<fe,fa>``, ``|fe|^2``,
   ``|fa|^2`` in fp32, whatever the input dtype (fp16/bf16/fp32) and layout
   (NCHW or channels-last: strides are passed, nothing is copied);
2. one launch over the level-0 pixels computes ``d_0`` the same way and adds
   the coarse maps, bilinearly interpolated with PyTorch's
   ``align_corners=False`` rule (half-pixel centres, source index clamped at 0),
   writing the (B, 1, h0, w0) fp32 map.

A coarse map is read 4 times per level-0 pixel instead of recomputing its
channel reductions there, so each feature map is read exactly once. The blur
and the final upsample stay in PyTorch (:class:`DiscrepancyHead`, cheap at
stride 4).

Dispatch of :func:`fused_level_sum` (the reference is
``torch.stack(level_discrepancies(fe, fa)).sum(0)``, always correct):

* CUDA tensors and triton installed: the custom op ``torch.ops.cdo.fused_level_sum``
  (a ``torch.library.triton_op``, so ``torch.compile`` / ``torch.export`` +
  AOTInductor see and embed the kernels);
* CPU tensors with ``TRITON_INTERPRET=1`` set before this module is imported:
  the same kernels in Triton's interpreter (how the tests check them without a GPU);
* otherwise, or when a gradient is needed, under ONNX/TorchScript tracing, or
  with more than 4 levels: the reference.

Example:
    >>> import torch
    >>> fe = [torch.randn(2, 24, 16, 16), torch.randn(2, 40, 8, 8), torch.randn(2, 112, 4, 4)]
    >>> fa = [torch.randn_like(t) for t in fe]
    >>> d = fused_level_sum(fe, fa)            # reference on CPU unless TRITON_INTERPRET=1
    >>> tuple(d.shape), bool((d - reference_level_sum(fe, fa)).abs().max() < 1e-4)
    ((2, 1, 16, 16), True)
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch

from .discrepancy_levels import EPS, level_discrepancies

__all__ = ["MAX_LEVELS", "fused_level_sum", "mode", "reference_level_sum", "triton_available"]

MAX_LEVELS = 4  # level 0 + up to 3 coarser levels in one launch

try:  # triton is optional: without it everything falls back to the reference
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the environment
    triton = None
    tl = None

_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def triton_available() -> bool:
    """Whether the triton package is importable."""
    return triton is not None


def reference_level_sum(fe: list[torch.Tensor], fa: list[torch.Tensor], scales: Sequence[float] = ()) -> torch.Tensor:
    """The definition: per-level discrepancies (each times its ``scales`` entry; empty = 1) upsampled to
    level 0 and summed, (B, 1, h0, w0) fp32."""
    return torch.stack(level_discrepancies(fe, fa, scales), 0).sum(0)


if triton is not None:

    @triton.jit
    def _disc_tile(e_ptr, a_ptr, p, pmask, hw, w, C, esb, esc, esh, esw, asb, asc, ash, asw, eps,
                   BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
        """d for BLOCK_P flattened pixel indices p of one level (fp32)."""
        b = (p // hw).to(tl.int64)
        r = p % hw
        y = (r // w).to(tl.int64)
        x = (r % w).to(tl.int64)
        eoff = b * esb + y * esh + x * esw
        aoff = b * asb + y * ash + x * asw
        dot = tl.zeros((BLOCK_P,), dtype=tl.float32)
        ne = tl.zeros((BLOCK_P,), dtype=tl.float32)
        na = tl.zeros((BLOCK_P,), dtype=tl.float32)
        for c0 in range(0, C, BLOCK_C):
            c = c0 + tl.arange(0, BLOCK_C)
            m = pmask[:, None] & (c < C)[None, :]
            cc = c.to(tl.int64)[None, :]
            e = tl.load(e_ptr + eoff[:, None] + cc * esc, mask=m, other=0.0).to(tl.float32)
            a = tl.load(a_ptr + aoff[:, None] + cc * asc, mask=m, other=0.0).to(tl.float32)
            dot += tl.sum(e * a, axis=1)
            ne += tl.sum(e * e, axis=1)
            na += tl.sum(a * a, axis=1)
        d = 2.0 - 2.0 * dot / tl.sqrt(tl.maximum(ne * na, eps))
        return tl.maximum(d, 0.0)

    @triton.jit
    def _bilerp(src_ptr, b, oy, ox, h_in, w_in, scale_y, scale_x, pmask):
        """PyTorch bilinear, align_corners=False, of a contiguous (B, h_in, w_in) fp32 map."""
        sy = tl.maximum((oy.to(tl.float32) + 0.5) * scale_y - 0.5, 0.0)
        sx = tl.maximum((ox.to(tl.float32) + 0.5) * scale_x - 0.5, 0.0)
        y0 = sy.to(tl.int32)
        x0 = sx.to(tl.int32)
        ly = sy - y0.to(tl.float32)
        lx = sx - x0.to(tl.float32)
        y1 = tl.minimum(y0 + 1, h_in - 1)
        x1 = tl.minimum(x0 + 1, w_in - 1)
        base = src_ptr + b.to(tl.int64) * h_in * w_in
        v00 = tl.load(base + y0 * w_in + x0, mask=pmask, other=0.0)
        v01 = tl.load(base + y0 * w_in + x1, mask=pmask, other=0.0)
        v10 = tl.load(base + y1 * w_in + x0, mask=pmask, other=0.0)
        v11 = tl.load(base + y1 * w_in + x1, mask=pmask, other=0.0)
        return (1.0 - ly) * ((1.0 - lx) * v00 + lx * v01) + ly * ((1.0 - lx) * v10 + lx * v11)

    @triton.jit
    def _level_kernel(e_ptr, a_ptr, out_ptr, n_pix, hw, w, C, esb, esc, esh, esw, asb, asc, ash, asw, eps, scale,
                      BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
        """scale * d of one coarse level at its own resolution -> contiguous (B, h, w) fp32."""
        p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
        pmask = p < n_pix
        d = _disc_tile(e_ptr, a_ptr, p, pmask, hw, w, C, esb, esc, esh, esw, asb, asc, ash, asw, eps,
                       BLOCK_P, BLOCK_C)
        tl.store(out_ptr + p, d * scale, mask=pmask)

    @triton.jit
    def _sum_kernel(e_ptr, a_ptr, out_ptr, n_pix, hw, w, C, esb, esc, esh, esw, asb, asc, ash, asw, eps, scale0,
                    c1_ptr, h1, w1, sy1, sx1, c2_ptr, h2, w2, sy2, sx2, c3_ptr, h3, w3, sy3, sx3,
                    N_COARSE: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
        """scale0 * d_0 plus the upsampled (already scaled) coarse maps -> contiguous (B, 1, h0, w0) fp32."""
        p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
        pmask = p < n_pix
        acc = _disc_tile(e_ptr, a_ptr, p, pmask, hw, w, C, esb, esc, esh, esw, asb, asc, ash, asw, eps,
                         BLOCK_P, BLOCK_C) * scale0
        b = p // hw
        r = p % hw
        oy = r // w
        ox = r % w
        if N_COARSE >= 1:
            acc += _bilerp(c1_ptr, b, oy, ox, h1, w1, sy1, sx1, pmask)
        if N_COARSE >= 2:
            acc += _bilerp(c2_ptr, b, oy, ox, h2, w2, sy2, sx2, pmask)
        if N_COARSE >= 3:
            acc += _bilerp(c3_ptr, b, oy, ox, h3, w3, sy3, sx3, pmask)
        tl.store(out_ptr + p, acc, mask=pmask)


def _blocks(channels: int) -> tuple[int, int]:
    """(BLOCK_P, BLOCK_C): channel chunk <= 128, about 4096 elements per tile."""
    block_c = min(128, max(16, 1 << (int(channels) - 1).bit_length()))
    return max(16, 4096 // block_c), block_c


def _strides(t: torch.Tensor) -> tuple[int, int, int, int]:
    return tuple(int(s) for s in t.stride())  # type: ignore[return-value]


def _scale(n_in: int, n_out: int) -> float:
    # PyTorch's area_pixel_compute_scale for an explicit output size, in fp32 (numpy: no tensor under tracing)
    return float(np.float32(n_in) / np.float32(n_out))


def _launch(fe: list[torch.Tensor], fa: list[torch.Tensor], scales: list[float], wrap) -> torch.Tensor:
    """Run the kernels; ``wrap`` is ``torch.library.wrap_triton`` (compiled) or the identity (interpreter)."""
    b, _, h0, w0 = fe[0].shape
    scales = [float(x) for x in scales] or [1.0] * len(fe)
    coarse: list[tuple[torch.Tensor, int, int, float, float]] = []
    for e, a, scale in zip(fe[1:], fa[1:], scales[1:]):
        _, c, h, w = e.shape
        out = torch.empty((b, h, w), device=e.device, dtype=torch.float32)
        bp, bc = _blocks(c)
        n = b * h * w
        wrap(_level_kernel)[(triton.cdiv(n, bp),)](
            e, a, out, n, h * w, w, c, *_strides(e), *_strides(a), EPS, scale, BLOCK_P=bp, BLOCK_C=bc)
        coarse.append((out, h, w, _scale(h, h0), _scale(w, w0)))
    dummy = (fe[0], 1, 1, 1.0, 1.0)  # never read: N_COARSE masks it out at compile time
    args = [x for lvl in (coarse + [dummy] * (MAX_LEVELS - 1 - len(coarse))) for x in lvl]
    e, a = fe[0], fa[0]
    c0 = e.shape[1]
    out = torch.empty((b, 1, h0, w0), device=e.device, dtype=torch.float32)
    bp, bc = _blocks(c0)
    n = b * h0 * w0
    wrap(_sum_kernel)[(triton.cdiv(n, bp),)](
        e, a, out, n, h0 * w0, w0, c0, *_strides(e), *_strides(a), EPS, scales[0], *args,
        N_COARSE=len(coarse), BLOCK_P=bp, BLOCK_C=bc)
    return out


_OP = None
if triton is not None and not _INTERPRET:

    @torch.library.triton_op("cdo::fused_level_sum", mutates_args=())
    def _fused_level_sum_op(fe: list[torch.Tensor], fa: list[torch.Tensor], scales: list[float]) -> torch.Tensor:
        return _launch(fe, fa, scales, torch.library.wrap_triton)

    _OP = _fused_level_sum_op


def _identity(kernel):
    return kernel


def mode(fe: list[torch.Tensor], fa: list[torch.Tensor]) -> str:
    """Which implementation :func:`fused_level_sum` uses for these inputs.

    Returns:
        ``"triton"`` (compiled kernels, CUDA), ``"interpret"`` (Triton interpreter,
        ``TRITON_INTERPRET=1``) or ``"reference"`` (see the module docstring for when).
    """
    if triton is None:
        return "reference"
    if not fe or len(fe) != len(fa) or len(fe) > MAX_LEVELS:
        return "reference"
    if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export():
        return "reference"
    if torch.is_grad_enabled() and any(t.requires_grad for t in (*fe, *fa)):
        return "reference"  # the kernels have no backward; training uses the reference (autograd)
    devices = {t.device for t in (*fe, *fa)}
    if len(devices) != 1 or any(t.dim() != 4 for t in (*fe, *fa)):
        return "reference"
    b = fe[0].shape[0]
    if any(e.shape != a.shape or e.shape[0] != b for e, a in zip(fe, fa)):
        return "reference"
    dev = next(iter(devices))
    if _INTERPRET:
        return "interpret"
    if dev.type == "cuda":
        return "triton"
    return "reference"


def fused_level_sum(fe: list[torch.Tensor], fa: list[torch.Tensor], scales: Sequence[float] = ()) -> torch.Tensor:
    """Summed per-level discrepancy at level-0 resolution, fused where possible.

    Args:
        fe: teacher maps, level 0 first, each (B, C_l, h_l, w_l), any float dtype and layout.
        fa: student maps of the same shapes.
        scales: one factor per level (the head's level normalisation); empty = all 1.

    Returns:
        (B, 1, h0, w0) float32, equal to :func:`reference_level_sum` within 1e-4.
    """
    if scales and len(scales) != len(fe):
        raise ValueError(f"{len(scales)} level scales for {len(fe)} levels")
    how = mode(fe, fa)
    if how == "reference":
        return reference_level_sum(fe, fa, scales)
    if how == "interpret":
        return _launch(list(fe), list(fa), list(scales), _identity)
    return _OP(list(fe), list(fa), [float(x) for x in scales])
