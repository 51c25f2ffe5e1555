"""The fused Triton discrepancy kernels compiled on a CUDA GPU, against the reference."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.gpu

SHAPES = [
    (1, (24, 40, 112), 64, 64),     # lite0 at 256 px, batch 1
    (64, (24, 40, 112), 64, 64),    # lite0 at 256 px, batch 64
    (3, (24, 40, 112), 13, 11),     # odd sizes
    (2, (64, 128, 256), 33, 47),    # resnet18-like channels, odd sizes
    (2, (16, 300), 9, 20),          # channel loop
]


def _features(b, chans, h0, w0, dtype, channels_last, gen):
    fe, fa = [], []
    h, w = h0, w0
    for i, c in enumerate(chans):
        if i:
            h, w = (h + 1) // 2, (w + 1) // 2
        e = torch.randn(b, c, h, w, generator=gen, device="cuda")
        a = e + 0.3 * torch.randn(b, c, h, w, generator=gen, device="cuda")
        e, a = e.to(dtype), a.to(dtype)
        if channels_last:
            e, a = e.to(memory_format=torch.channels_last), a.to(memory_format=torch.channels_last)
        fe.append(e)
        fa.append(a)
    return fe, fa


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{s[0]}x{s[1][0]}@{s[2]}x{s[3]}" for s in SHAPES])
def test_compiled_kernels_match_the_reference(shape, dtype, channels_last):
    from cdo_train.model.triton_head import fused_level_sum, mode, reference_level_sum

    gen = torch.Generator(device="cuda").manual_seed(0)
    fe, fa = _features(*shape, dtype, channels_last, gen)
    assert mode(fe, fa) == "triton"
    out = fused_level_sum(fe, fa)
    ref = reference_level_sum(fe, fa)
    assert out.shape == ref.shape and out.dtype == torch.float32 and out.is_cuda
    assert float((out - ref).abs().max()) <= 1e-4
    scales = [3.0, 0.5, 7.0, 2.0][:len(fe)]  # the head's level normalisation
    out, ref = fused_level_sum(fe, fa, scales), reference_level_sum(fe, fa, scales)
    assert float((out - ref).abs().max()) <= 1e-3


def test_inductor_embeds_the_kernels_with_a_dynamic_batch():
    """torch.compile lowers the triton_op through Inductor, the same route AOTInductor takes."""
    from cdo_train.model.triton_head import fused_level_sum, reference_level_sum

    def head(e0, a0, e1, a1, e2, a2):
        return fused_level_sum([e0, e1, e2], [a0, a1, a2]) * 0.5

    compiled = torch.compile(head, fullgraph=True, dynamic=True)
    gen = torch.Generator(device="cuda").manual_seed(1)
    for b in (2, 5):
        fe, fa = _features(b, (24, 40, 112), 16, 16, torch.float16, True, gen)
        with torch.no_grad():
            out = compiled(fe[0], fa[0], fe[1], fa[1], fe[2], fa[2])
        assert float((out - 0.5 * reference_level_sum(fe, fa)).abs().max()) <= 1e-4


def test_fused_sum_is_faster_than_the_reference_at_lite0_batch_64():
    """Reported, loosely asserted: the fused sum should not be slower than eager PyTorch."""
    from cdo_train.model.triton_head import fused_level_sum, reference_level_sum

    fe, fa = _features(64, (24, 40, 112), 64, 64, torch.float16, True, torch.Generator(device="cuda").manual_seed(0))

    def ms(fn, n=50):
        for _ in range(5):
            fn(fe, fa)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(n):
            fn(fe, fa)
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / n

    fused, ref = ms(fused_level_sum), ms(reference_level_sum)
    print(f"level sum lite0 b64 fp16: fused {fused:.3f} ms, reference {ref:.3f} ms")
    assert fused < ref * 1.5
