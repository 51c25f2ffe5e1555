"""The segmentation head (``--head cdo+seg``): its input and outputs, its loss, its training stage, and a
trained, reloaded and exported cdo+seg run (real ``cdo-train`` / ``cdo-export`` subprocesses, ONNX Runtime)."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cdo_deploy.errors import CdoError
from cdo_train.model.cdo_model import CDOModel, ModelConfig
from cdo_train.model.discrepancy import level_discrepancy
from cdo_train.model.seg_head import SEG_WIDTH, SegHead
from cdo_train.training.loss import seg_loss
from tests.conftest import TRAIN_ARGS, run_cli


def _features(seed: int = 0) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(2, 4, 16, 16), (2, 6, 8, 8), (2, 8, 4, 4)]
    return ([torch.randn(s, generator=g) * 3 for s in shapes], [torch.randn(s, generator=g) for s in shapes])


def test_head_input_is_the_product_of_the_normalised_features_and_its_outputs_have_the_model_shapes():
    fe, fa = _features()
    head = SegHead((4, 6, 8), image_size=(64, 64), topk=10).eval()
    ref = torch.cat([F.interpolate(F.normalize(e, dim=1) * F.normalize(a, dim=1), size=(16, 16), mode="bilinear",
                                   align_corners=False) for e, a in zip(fe, fa)], 1)
    got = head.inputs(fe, fa)
    assert got.shape == (2, 18, 16, 16) and got.dtype == torch.float32
    torch.testing.assert_close(got, ref, atol=1e-6, rtol=1e-5)
    # at each pixel the level-0 channels sum to the cosine CDO's discrepancy reads: d_0 = 2 - 2 cos
    torch.testing.assert_close(2 - 2 * got[:, :4].sum(1, keepdim=True), level_discrepancy(fe[0], fa[0]),
                               atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        logits = head.logits(fe, fa)
        amap, score = head(fe, fa)
    assert logits.shape == (2, 1, 16, 16) and amap.shape == (2, 1, 64, 64) and score.shape == (2,)
    up = F.interpolate(torch.sigmoid(logits), size=(64, 64), mode="bilinear", align_corners=False)
    torch.testing.assert_close(amap, up)
    assert float(amap.min()) >= 0 and float(amap.max()) <= 1
    top = amap.flatten(1).sort(1, descending=True).values[:, :10].mean(1)  # the mean of the 10 largest pixels
    torch.testing.assert_close(score, top)
    w = SEG_WIDTH  # 1x1 reduction, two 3x3 convs (each with BatchNorm), the 1x1 logit
    assert sum(p.numel() for p in head.parameters()) == 18 * w + 2 * w + 2 * (w * w * 9 + 2 * w) + w + 1


def test_the_model_returns_the_seg_heads_map_and_refuses_two_extra_heads():
    torch.manual_seed(0)
    model = CDOModel(ModelConfig("resnet18", image_size=64, teacher_weights="random")).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        plain = model(x)
        model.set_seg_head(model.new_seg_head().eval())
        amap, score = model(x)
        fe, fa = model.features(x)
        ref = model.seg_head(fe, fa)
    assert model.cfg.seg_width == SEG_WIDTH and model.cfg.head == "cdo+seg"
    assert model.seg_head.channels == (64, 128, 256) and model.seg_head.topk == model.cfg.topk
    torch.testing.assert_close((amap, score), ref)
    assert not torch.allclose(amap, plain[0])
    with pytest.raises(CdoError, match="one extra head"):
        ModelConfig("resnet18", bank_size=8, seg_width=64)


def test_loss_is_lower_for_a_map_equal_to_the_mask_than_for_its_inverse():
    mask = torch.zeros(2, 1, 64, 64)
    mask[0, :, 8:40, 16:48] = 1
    mask[1, :, 0:6, 0:64] = 1  # 1.5 rows of stride-4 pixels: the half-covered row is binarised away
    target = (F.interpolate(mask, size=(16, 16), mode="area") > 0.5).float()
    assert 0 < float(target.sum()) < float(mask.sum()) / 16  # binarised: the half row is not in the target
    right, wrong, unsure = 12 * (2 * target - 1), 12 * (1 - 2 * target), torch.zeros_like(target)
    losses = [float(seg_loss(logit, mask)) for logit in (right, unsure, wrong)]
    assert losses[0] < 1e-3 < losses[1] < losses[2]
    assert losses[2] == pytest.approx(12 + 1, rel=0.01)  # BCE 12 (+ e^-12) with focal weight 1, and L1 1
    assert float(seg_loss(right, None)) > 1  # no mask: every pixel normal


def test_seg_training_leaves_teacher_and_student_unchanged_and_repeats_for_a_seed():
    from cdo_train.training.config import TrainConfig
    from cdo_train.training.seg_training import seg_batches, train_seg_head

    torch.manual_seed(0)
    model = CDOModel(ModelConfig("resnet18", image_size=64, teacher_weights="random"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.randint(0, 256, (5, 64, 64, 3), dtype=torch.uint8)
    cfg = TrainConfig(image_size=64, batch_size=2, seg_steps=3, cpu_bf16=False)
    heads, losses = [], []
    for _ in range(2):
        seg, loss = train_seg_head(model, images, cfg, torch.Generator().manual_seed(5), torch.device("cpu"))
        heads.append(seg.state_dict())
        losses.append(loss)
    assert not seg.training and not model.training and model.seg_head is None
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm statistics included
    assert losses[0] == losses[1] and all(torch.equal(heads[0][k], heads[1][k]) for k in heads[0])
    assert int(heads[0]["net.1.num_batches_tracked"]) == 3  # trained: 3 steps
    batches = seg_batches(5, 2, 4, torch.Generator().manual_seed(0))
    assert [len(b) for b in batches] == [2, 2, 2, 2]
    assert sorted(torch.cat([*batches[:2], batches[2][:1]]).tolist()) == [0, 1, 2, 3, 4]  # a pass, then the next


@pytest.fixture(scope="module")
def seg_run(tiny_demo_root: Path, tmp_path_factory) -> Path:
    """A real ``cdo-train --head cdo+seg --seg-steps 3`` run on tiny ``weave`` (resnet18, random teacher, 64 px)."""
    out = tmp_path_factory.mktemp("seg_run")
    r = run_cli("cdo-train", "--data-root", tiny_demo_root, "--output-dir", out, *TRAIN_ARGS,
                "--head", "cdo+seg", "--seg-steps", "3")
    assert r.returncode == 0, r.stderr
    return out / "resnet18-none" / "weave" / "seed_111"


def test_seg_run_records_the_head_and_its_last_metrics_are_the_seg_heads(seg_run):
    from cdo_train.export.run_inputs import read_run_info
    from cdo_train.training.evaluation import evaluate, load_images
    from cdo_train.data import list_samples
    from cdo_train.training.saved_model import load_model

    mcfg = json.loads((seg_run / "model_config.json").read_text())
    assert mcfg["seg_width"] == SEG_WIDTH and ModelConfig(**mcfg).head == "cdo+seg"
    records = [json.loads(line) for line in (seg_run / "metrics.jsonl").read_text().splitlines()]
    plain, last = records[-2], records[-1]
    assert "head" not in plain and last["head"] == "cdo+seg" and last["seg_steps"] == 3
    assert last["step"] == plain["step"] and np.isfinite(last["seg_loss"])
    summary = json.loads((seg_run / "summary.json").read_text())
    assert summary["last"] == last

    # the reloaded model scores as the trained one did: its evaluation reproduces the logged record,
    # and without its seg head it reproduces the plain head's record instead
    cfg = read_run_info(seg_run).config
    test = load_images(list_samples("mvtec2d", cfg["data_root"], "weave", "test"), cfg["image_size"])
    model = load_model(seg_run)
    assert model.seg_head is not None and not model.seg_head.training
    got = evaluate(model, test, torch.device("cpu"))
    metrics = [k for k, v in got.items() if isinstance(v, float)]
    assert "image_f1_threshold" in metrics and "pixel_auroc" in metrics  # thresholds are scores of the test images
    assert {k: got[k] for k in metrics} == pytest.approx({k: last[k] for k in metrics}, abs=1e-6)
    model.set_seg_head(None)
    bare = evaluate(model, test, torch.device("cpu"))
    assert {k: bare[k] for k in metrics} == pytest.approx({k: plain[k] for k in metrics}, abs=1e-6)
    assert bare["pixel_auroc"] != pytest.approx(last["pixel_auroc"], abs=1e-6)
    calib = json.loads((seg_run / "calibration.json").read_text())
    assert calib["image_threshold"] == pytest.approx(last["image_f1_threshold"])  # from the final model


@pytest.fixture(scope="module")
def seg_bundle(seg_run: Path, tmp_path_factory) -> types.SimpleNamespace:
    """``cdo-export`` of the seg run with its fp16 and int8 variants (int8 accepted whatever its check says:
    these tests are about the graph carrying the head)."""
    bundle = tmp_path_factory.mktemp("seg_export") / "bundle"
    r = run_cli("cdo-export", seg_run, "-o", bundle, "--fp16", "--int8", "--calib-images", "8", "--accept-int8")
    assert r.returncode == 0, r.stderr
    return types.SimpleNamespace(run=seg_run, bundle=bundle)


def test_exported_graph_holds_the_seg_head_and_onnxruntime_scores_equal_torch(seg_bundle):
    import onnx
    import onnxruntime as ort

    from cdo_train.export.checks import tensorrt_problems
    from cdo_train.export.verify import FP32_TOL
    from cdo_train.api import load_run

    images = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    ref_map, ref_score = load_run(seg_bundle.run).predict(images)
    sess = ort.InferenceSession(str(seg_bundle.bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    amap, score = sess.run(None, {"image": images})
    assert np.abs(amap - ref_map).max() <= FP32_TOL and np.abs(score - ref_score).max() <= FP32_TOL
    assert np.ptp(ref_map) > 1e-3  # a map, not a constant
    meta = json.loads((seg_bundle.bundle / "model.json").read_text())
    assert meta["score_rule"] == {"kind": "topk_mean", "k": 100} and meta["blur_sigma"] == 0.0
    assert meta["train"]["model"]["seg_width"] == SEG_WIDTH
    proto = onnx.load(str(seg_bundle.bundle / "model.onnx"))
    assert tensorrt_problems(proto) == []
    ops = {n.op_type for n in proto.graph.node if n.name.startswith("/model/seg_head/")}
    assert {"Conv", "Relu", "Sigmoid", "TopK"} <= ops
    assert not [n for n in proto.graph.node if n.name.startswith("/model/head/")]  # no plain head in the graph

    # fp16 and int8 variants: reduced-precision backbones, the seg head's convolutions in fp32
    for name in ("model_fp16.onnx", "model_int8.onnx"):
        proto = onnx.load(str(seg_bundle.bundle / name))
        inits = {t.name: t.data_type for t in proto.graph.initializer}
        convs = [n for n in proto.graph.node if n.op_type == "Conv" and n.name.startswith("/model/seg_head/")]
        assert len(convs) == 4 and all(inits[n.input[1]] == onnx.TensorProto.FLOAT for n in convs), name
        sess = ort.InferenceSession(str(seg_bundle.bundle / name), providers=["CPUExecutionProvider"])
        vmap, vscore = sess.run(None, {"image": images})
        assert np.abs(vmap - ref_map).max() < 0.05 and np.abs(vscore - ref_score).max() < 0.05, name  # maps in [0, 1]


def test_aoti_wrapper_runs_the_seg_head(seg_run):
    from cdo_train.export.aoti import AotiGraph
    from cdo_train.export.graph import DeployGraph
    from cdo_train.training.saved_model import load_model

    images = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = DeployGraph(load_model(seg_run))(images)
        for fused in (True, False):
            torch.testing.assert_close(AotiGraph(load_model(seg_run), fused_head=fused)(images), ref,
                                       atol=1e-5, rtol=1e-5)
        half = AotiGraph(load_model(seg_run), torch.float16, fused_head=False)
        assert half.model.seg_head.net[0].weight.dtype == torch.float32  # the head stays fp32
        amap, _ = half(images)
    assert amap.dtype == torch.float32 and float((amap - ref[0]).abs().max()) < 0.05


@pytest.mark.slow
def test_aoti_package_of_a_seg_run_matches_onnxruntime(seg_bundle, tmp_path):
    import shutil

    import onnxruntime as ort

    from cdo_train.export.aoti import export_aoti
    from cdo_train.training.saved_model import load_model

    bundle = tmp_path / "bundle"
    shutil.copytree(seg_bundle.bundle, bundle)
    res = export_aoti(load_model(seg_bundle.run), bundle, device="cpu", max_batch=4)
    assert res.map_max_abs < 1e-4
    images = np.random.default_rng(2).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    runner = torch._inductor.aoti_load_package(str(res.path))
    with torch.no_grad():
        amap, score = runner(torch.from_numpy(images))
    sess = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    ref_map, ref_score = sess.run(None, {"image": images})
    assert np.abs(amap.numpy() - ref_map).max() < 1e-4 and np.abs(score.numpy() - ref_score).max() < 1e-4


@pytest.mark.parametrize("extra, says", [
    (("--score-levels", "2"), "--head cdo+seg scores its own map, which has no levels to choose"),
])
def test_meaningless_combinations_are_refused_with_one_line(tiny_demo_root, tmp_path, extra, says):
    r = run_cli("cdo-train", "--data-root", tiny_demo_root, "--output-dir", tmp_path, *TRAIN_ARGS,
                "--head", "cdo+seg", *extra)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {says}"), r.stderr
    assert not any(tmp_path.iterdir())  # nothing trained
