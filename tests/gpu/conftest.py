"""Fixtures of the CUDA tests (every test here is gpu-marked: skipped without a GPU).

Run on the GPU machine with ``pytest -m gpu`` (``tools/gpu_check.sh`` does).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SIZE = 32


def brightness_reference(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """numpy twin of the tiny graph: (B,H,W,3) uint8 -> (B,1,H,W) maps, (B,) scores."""
    maps = images.astype(np.float32).mean(axis=3)[:, None] / 255.0
    return maps, maps.reshape(len(maps), -1).max(axis=1)


@pytest.fixture(scope="session")
def tiny_gpu():
    """Size and numpy reference of the tiny brightness package (tests must not import conftest)."""
    import types

    return types.SimpleNamespace(size=SIZE, reference=brightness_reference)


@pytest.fixture(scope="session")
def cuda_tiny_pt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An AOTInductor package of the brightness graph compiled for CUDA (batch 1..16, 32x32)."""
    import torch

    class Brightness(torch.nn.Module):
        def forward(self, image: torch.Tensor):
            amap = image.float().mean(3, keepdim=True).permute(0, 3, 1, 2) / 255.0
            return amap, amap.flatten(1).amax(1)

    path = tmp_path_factory.mktemp("gpu_aoti") / "model_aoti_fp32.pt2"
    example = torch.zeros((2, SIZE, SIZE, 3), dtype=torch.uint8, device="cuda")
    ep = torch.export.export(Brightness(), (example,),
                             dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=16)},))
    meta = {"cdo_device": "cuda", "cdo_height": str(SIZE), "cdo_width": str(SIZE), "cdo_max_batch": "16",
            "cdo_precision": "fp32"}
    torch._inductor.aoti_compile_and_package(ep, package_path=str(path),
                                             inductor_configs={"aot_inductor.metadata": meta})
    return path
