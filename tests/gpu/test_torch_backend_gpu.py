"""The torch (AOTInductor) backend on CUDA: pinned upload, one stream, CUDA graph per batch size."""

from __future__ import annotations

import numpy as np
import pytest

from cdo_deploy.backends import create_backend

pytestmark = pytest.mark.gpu


def test_cuda_package_runs_with_graphs_and_matches_the_reference(cuda_tiny_pt2, tiny_gpu):
    SIZE, brightness_reference = tiny_gpu.size, tiny_gpu.reference
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, SIZE, SIZE, 3), dtype=np.uint8)
    ref_maps, ref_scores = brightness_reference(images)
    be = create_backend("torch", cuda_tiny_pt2, device="cuda:0", max_batch=16)
    assert be.input_hw == (SIZE, SIZE) and "+graphs" in be.device_label and "cuda" in be.device_label
    for batch in (1, 5, 5, 5, 1, 1, 16, 16, 16):  # eager warm-up, capture, replays
        sub = images[:batch] if batch != 5 else images[3:8]
        out = be.infer(np.ascontiguousarray(sub))
        want_m, want_s = brightness_reference(sub)
        np.testing.assert_allclose(out.anomaly_map, want_m, atol=1e-5)
        np.testing.assert_allclose(out.score, want_s, atol=1e-5)
    assert be.graph_batches == [1, 5, 16]  # captured on the second call of each size
    print("pinned copies inside the graphs:", be.graph_copies)
    # replays read the pinned input buffer anew: different images give different outputs
    out = be.infer(images[8:13])
    np.testing.assert_allclose(out.anomaly_map, ref_maps[8:13], atol=1e-5)
    np.testing.assert_allclose(out.score, ref_scores[8:13], atol=1e-5)
    be.close()


def test_graphs_off_runs_eager(cuda_tiny_pt2, tiny_gpu):
    SIZE = tiny_gpu.size
    from cdo_deploy.backends.torch_aoti import TorchAotiBackend

    be = TorchAotiBackend(cuda_tiny_pt2, device="auto", max_batch=4, cuda_graphs=False).load()
    images = np.full((3, SIZE, SIZE, 3), 200, np.uint8)
    for _ in range(3):
        out = be.infer(images)
    assert be.graph_batches == [] and out.score == pytest.approx([200 / 255] * 3, abs=1e-5)
    be.close()


@pytest.mark.slow
def test_real_model_fp16_package_matches_the_eager_model(tmp_path):
    """resnet18 64 px, random teacher: fp16 backbones + fused head vs the fp32 eager model."""
    import torch

    from cdo_deploy.bundle import BundleMeta
    from cdo_train.export.aoti import export_aoti
    from cdo_train.model.cdo_model import CDOModel, ModelConfig

    BundleMeta(height=64, width=64, backbone="resnet18").save(tmp_path)
    torch.manual_seed(0)
    ref = CDOModel(ModelConfig("resnet18", image_size=64, teacher_weights="random")).eval()
    torch.manual_seed(0)
    res = export_aoti(CDOModel(ModelConfig("resnet18", image_size=64, teacher_weights="random")), tmp_path,
                      max_batch=8)
    assert res.device == "cuda" and res.precision == "fp16"
    images = np.random.default_rng(1).integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    with torch.no_grad():
        want_map, want_score = ref(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0)
    be = create_backend("torch", res.path, max_batch=8)
    for _ in range(3):
        out = be.infer(images)
    assert be.graph_batches == [8]
    scale = float(want_map.abs().max())
    assert float(np.abs(out.anomaly_map - want_map.numpy()).max()) <= 0.02 * scale
    be.close()
