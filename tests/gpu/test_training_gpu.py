"""Fast single-GPU training: AMP, channels-last, GPU-resident data and anomalies blended on the GPU."""

from __future__ import annotations

import json

import pytest
import torch

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("realistic", [0.0, 1.0])
def test_anomalies_on_cuda_are_the_cpu_paths(realistic):
    """One generator: the same seed pastes the same anomalies on the GPU as on the CPU."""
    from cdo_train.synth.anomalies import SynthParams, synthesize

    x = torch.rand(8, 3, 64, 64)
    params = SynthParams(realistic=realistic)
    cpu_x, cpu_m = synthesize(x, params, torch.Generator().manual_seed(5))
    dev_x, dev_m = synthesize(x.cuda(), params, torch.Generator().manual_seed(5))
    assert dev_x.is_cuda and torch.equal(dev_m.cpu(), cpu_m)
    assert float((dev_x.cpu() - cpu_x).abs().max()) <= 1e-6


def test_fast_path_trains_on_the_gpu_and_reports_throughput(tiny_demo_root, tmp_path):
    from cdo_train.training.config import TrainConfig
    from cdo_train.training.distributed import launch

    cfg = TrainConfig(data_root=str(tiny_demo_root), class_names=("weave",), image_size=64, batch_size=4,
                      epochs=2, eval_every=1, progress=False, backbone="resnet18", teacher_weights="random",
                      device="cuda:0", output_dir=str(tmp_path), name="fast")
    (res,) = launch(cfg, 1)
    tp = json.loads((res.run_dir / "throughput.json").read_text())
    assert tp["device"] == "cuda:0" and tp["amp"] and tp["channels_last"] and tp["images_per_s"] > 0
    assert 0.0 <= res.last["image_auroc"] <= 1.0 and (res.run_dir / "model.safetensors").is_file()
