"""The memory-bank head: coreset, distances, fusion, and a trained, exported cdo+knn run."""

import json

import numpy as np
import pytest
import torch

from cdo_train.model.memory_bank import MemoryBank, greedy_coreset, patch_features
from tests.conftest import run_cli


def test_greedy_coreset_picks_far_points_and_smaller_sets_are_prefixes():
    g = torch.Generator().manual_seed(0)
    cluster = torch.randn(200, 4, generator=g) * 0.01
    outliers = torch.tensor([[10.0, 0, 0, 0], [0, -10.0, 0, 0], [0, 0, 10.0, 0]])
    x = torch.cat([cluster, outliers])
    idx = greedy_coreset(x, 4, seed=1)
    assert set(range(200, 203)) <= set(idx.tolist())  # the three far points come first after the start
    assert torch.equal(greedy_coreset(x, 2, seed=1), idx[:2])
    assert torch.equal(greedy_coreset(x, 500, seed=1), torch.arange(203))


def test_distances_are_the_nearest_bank_entry_and_zero_for_bank_members():
    g = torch.Generator().manual_seed(0)
    fe = [torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 5, 4, 4, generator=g), torch.randn(2, 6, 2, 2, generator=g)]
    q = patch_features(fe)  # (2, 11, 4, 4): levels 1 and 2, 3x3-averaged, at level 1's size
    assert q.shape == (2, 11, 4, 4)
    bank = MemoryBank(torch.randn(7, 11, generator=g))
    flat = q.permute(0, 2, 3, 1).reshape(-1, 11)
    ref = torch.cdist(flat, bank.bank).amin(1).view(2, 4, 4)
    assert torch.allclose(bank.distances(fe)[:, 0], ref, atol=1e-4)
    member = MemoryBank(flat[[0, 5]].clone())
    d = member.distances(fe).flatten()
    assert d[0] < 1e-3 and d[5] < 1e-3 and d.max() > 0.1


def test_fusion_standardises_both_maps_with_the_held_out_statistics():
    g = torch.Generator().manual_seed(0)
    fe = [torch.randn(1, 3, 8, 8, generator=g), torch.randn(1, 5, 4, 4, generator=g), torch.randn(1, 6, 2, 2, generator=g)]
    bank = MemoryBank(torch.randn(7, 11, generator=g))
    d = torch.rand(1, 1, 8, 8, generator=g)
    knn = torch.nn.functional.interpolate(bank.distances(fe), size=(8, 8), mode="bilinear", align_corners=False)
    bank.calibrate(d, knn)
    fused = bank.fuse(d, fe)
    ref = (d - d.mean()) / d.std() + (knn - knn.mean()) / knn.std()
    assert torch.allclose(fused, ref, atol=1e-4)
    assert abs(float(fused.mean())) < 1e-4  # on the calibration images both parts average to 0


def test_cdo_knn_run_trains_saves_exports_and_reloads(tiny_demo_root, tmp_path):
    out = tmp_path / "runs"
    r = run_cli("cdo-train", "--data-root", tiny_demo_root, "--output-dir", out, "--class-name", "weave",
                "--image-size", "64", "--batch-size", "4", "--steps", "3", "--no-progress", "--backbone", "resnet18",
                "--teacher-weights", "random", "--device", "cpu", "--head", "cdo+knn", "--bank-size", "40")
    assert r.returncode == 0, r.stderr
    run = out / "resnet18-none" / "weave" / "seed_111"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert "head" not in records[-2] and records[-1]["head"] == "cdo+knn" and records[-1]["step"] == 3
    assert json.loads((run / "summary.json").read_text())["last"]["head"] == "cdo+knn"
    assert json.loads((run / "model_config.json").read_text())["bank_size"] == 40

    from cdo_train.api import load_run

    model = load_run(run).model
    assert model.bank is not None and model.bank.bank.shape == (40, 128 + 256)
    assert float(model.bank.stats[1]) != 1.0  # calibrated, not the identity
    bundle = tmp_path / "bundle"
    r = run_cli("cdo-export", run, "-o", bundle)  # includes the ONNX Runtime parity check against PyTorch
    assert r.returncode == 0, r.stderr
    import onnxruntime as ort

    images = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    sess = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    amap, score = sess.run(None, {"image": images})
    ref_map, ref_score = load_run(run).predict(images)
    assert np.allclose(amap, ref_map, atol=1e-3) and np.allclose(score, ref_score, atol=1e-3)
    ops = {n.op_type for n in __import__("onnx").load(str(bundle / "model.onnx")).graph.node}
    assert {"MatMul", "ArgMin", "Gather"} <= ops


@pytest.mark.parametrize("head", ["cdo", "cdo+knn"])
def test_head_option_is_validated(head):
    from cdo_train.training.config import TrainConfig

    assert TrainConfig(head=head).head == head
    with pytest.raises(Exception, match="'head' must be one of cdo, cdo\\+knn"):
        TrainConfig(head="knn")
