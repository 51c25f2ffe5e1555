"""The fused Triton discrepancy head against the reference definition.

The kernels run here in Triton's interpreter (``TRITON_INTERPRET=1``, which
must be set before triton is imported, hence a fresh interpreter) on CPU
tensors; ``tests/gpu/test_triton_head_gpu.py`` runs them compiled on a GPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from cdo_train.model.triton_head import fused_level_sum, mode, reference_level_sum, triton_available

#: (batch, channels per level, level-0 h, w, coarse sizes or None for ceil-halving, dtype, channels_last)
CASES = [
    (2, (24, 40, 112), 16, 16, None, "float32", False),   # lite0 channels
    (3, (24, 40, 112), 13, 11, None, "float16", True),    # odd sizes, fp16, channels-last
    (1, (8,), 5, 7, None, "float32", False),              # one level, tiny
    (2, (16, 300), 9, 20, None, "float32", False),        # channel loop (300 > 128), non-square
    (1, (3, 5, 7, 9), 10, 7, [(6, 4), (3, 5), (2, 2)], "float32", True),  # 4 levels, arbitrary coarse sizes
    (65, (24, 40, 112), 4, 4, None, "bfloat16", False),   # more pixels than one block, bf16
]

SCRIPT = r"""
import json, sys, torch
from cdo_train.model.triton_head import fused_level_sum, mode, reference_level_sum
cases = json.loads(sys.argv[1])
gen = torch.Generator().manual_seed(0)
out = []
for b, chans, h0, w0, sizes, dtype, cl in cases:
    sizes = sizes or []
    fe, fa = [], []
    h, w = h0, w0
    for i, c in enumerate(chans):
        if i:
            h, w = sizes[i - 1] if sizes else ((h + 1) // 2, (w + 1) // 2)
        e = torch.randn(b, c, h, w, generator=gen)
        a = e + 0.3 * torch.randn(b, c, h, w, generator=gen)
        e, a = e.to(getattr(torch, dtype)), a.to(getattr(torch, dtype))
        if cl:
            e, a = e.to(memory_format=torch.channels_last), a.to(memory_format=torch.channels_last)
        fe.append(e); fa.append(a)
    d = fused_level_sum(fe, fa)
    ref = reference_level_sum(fe, fa)
    out.append({"mode": mode(fe, fa), "shape": list(d.shape), "dtype": str(d.dtype),
                "err": float((d - ref).abs().max()), "scale": float(ref.abs().max())})
# level scales (the head's level normalisation): the kernels scale each level as the reference does
fe = [torch.randn(2, 24, 16, 16, generator=gen), torch.randn(2, 40, 8, 8, generator=gen),
      torch.randn(2, 112, 4, 4, generator=gen)]
fa = [e + 0.3 * torch.randn(e.shape, generator=gen) for e in fe]
scales = [3.0, 0.5, 7.0]
d, ref = fused_level_sum(fe, fa, scales), reference_level_sum(fe, fa, scales)
plain = reference_level_sum(fe, fa)
out.append({"scaled_err": float((d - ref).abs().max()), "scaled_moved": float((ref - plain).abs().max())})
# edge cases: identical features -> 0, all-zero features -> 2 per level (eps clamp)
z = [torch.zeros(2, 8, 6, 6), torch.zeros(2, 8, 3, 3)]
same = [torch.randn(2, 8, 6, 6, generator=gen), torch.randn(2, 8, 3, 3, generator=gen)]
out.append({"zeros": float(fused_level_sum(z, z).min()), "zeros_max": float(fused_level_sum(z, z).max()),
            "same": float(fused_level_sum(same, same).abs().max())})
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def interpreted():
    if not triton_available():
        pytest.skip("triton is not installed")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    r = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(CASES)], capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("i", range(len(CASES)), ids=[f"{c[0]}x{c[1]}@{c[2]}x{c[3]}-{c[5]}" for c in CASES])
def test_interpreted_kernels_match_the_reference(interpreted, i):
    res = interpreted[i]
    b, _, h0, w0, *_ = CASES[i]
    assert res["mode"] == "interpret"
    assert res["shape"] == [b, 1, h0, w0] and res["dtype"] == "torch.float32"
    assert res["err"] <= 1e-4, res
    assert res["scale"] > 0.1  # a meaningful comparison, not zeros against zeros


def test_interpreted_kernels_scale_each_level_as_the_reference(interpreted):
    scaled = interpreted[-2]
    assert scaled["scaled_err"] <= 1e-3 and scaled["scaled_moved"] > 0.1, scaled  # fp32 sums of maps up to ~40


def test_interpreted_edge_cases(interpreted):
    edge = interpreted[-1]
    assert edge["zeros"] == pytest.approx(4.0) and edge["zeros_max"] == pytest.approx(4.0)  # 2 per level
    assert edge["same"] <= 1e-5


def test_falls_back_to_the_reference_off_gpu_and_under_autograd():
    fe = [torch.randn(2, 24, 8, 8), torch.randn(2, 40, 4, 4)]
    fa = [torch.randn(2, 24, 8, 8), torch.randn(2, 40, 4, 4)]
    if os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
        assert mode(fe, fa) == "reference"  # CPU tensors, no interpreter
    torch.testing.assert_close(fused_level_sum(fe, fa), reference_level_sum(fe, fa))
    fg = [t.clone().requires_grad_(True) for t in fa]
    assert mode(fe, fg) == "reference"  # the kernels have no backward
    fused_level_sum(fe, fg).sum().backward()
    assert fg[0].grad is not None
    assert mode(fe, fa[:1]) == "reference"  # level lists of different lengths
    assert mode([torch.randn(1, 4, 8, 8)] * 5, [torch.randn(1, 4, 8, 8)] * 5) == "reference"  # > 4 levels


def test_is_a_custom_op_that_export_keeps_when_triton_is_there():
    if not triton_available() or os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        pytest.skip("the custom op is registered only for compiled (non-interpreted) triton")

    class Head(torch.nn.Module):
        def forward(self, e0, a0, e1, a1):
            return torch.ops.cdo.fused_level_sum([e0, e1], [a0, a1], [1.0, 2.0])

    args = (torch.randn(2, 24, 8, 8).half(), torch.randn(2, 24, 8, 8).half(), torch.randn(2, 40, 4, 4),
            torch.randn(2, 40, 4, 4))
    ep = torch.export.export(Head(), args)
    assert "cdo.fused_level_sum" in str(ep.graph)  # kept whole: AOTInductor inlines its kernels on CUDA
    node = next(n for n in ep.graph.nodes if n.op == "call_function")
    assert tuple(node.meta["val"].shape) == (2, 1, 8, 8) and node.meta["val"].dtype == torch.float32
