"""Level normalisation (``--level-norm z``): the head scales each level by 1 / its held-out good std, the
scales travel in model.json, and every graph computes the same map."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cdo_deploy.errors import CdoError
from cdo_train.model.discrepancy import DiscrepancyHead, level_discrepancies
from cdo_train.model.cdo_model import CDOModel, ModelConfig
from tests.conftest import TRAIN_ARGS, run_cli


def _levels(b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    fe = [torch.randn(b, 6, 16, 16, generator=g), torch.randn(b, 8, 8, 8, generator=g),
          torch.randn(b, 10, 4, 4, generator=g)]
    fa = [e + 0.5 * torch.randn(e.shape, generator=g) for e in fe]
    return fe, fa


def test_head_scales_each_level_before_the_sum():
    fe, fa = _levels()
    scales = (2.0, 0.5, 3.0)
    head = DiscrepancyHead((64, 64), level_scales=scales)
    amap, score = head(fe, fa)
    plain = DiscrepancyHead((64, 64))
    d = sum(s * x for s, x in zip(scales, level_discrepancies(fe, fa)))
    want = plain.upsample(plain.blur(d))
    torch.testing.assert_close(amap, want, atol=1e-5, rtol=1e-5)
    assert torch.equal(score, amap.flatten(1).amax(1))
    assert not torch.allclose(amap, plain(fe, fa)[0], atol=1e-3)


def test_score_levels_reads_the_scaled_first_levels():
    fe, fa = _levels()
    scales = (2.0, 0.5, 3.0)
    head = DiscrepancyHead((64, 64), score_levels=2, level_scales=scales)
    amap, score = head(fe, fa)
    torch.testing.assert_close(amap, DiscrepancyHead((64, 64), level_scales=scales)(fe, fa)[0])
    _, score_2 = DiscrepancyHead((64, 64), level_scales=scales[:2])(fe[:2], fa[:2])
    torch.testing.assert_close(score, score_2)


def test_unit_scales_are_the_plain_head_and_bad_scales_fail():
    fe, fa = _levels()
    head = DiscrepancyHead((64, 64), level_scales=(1.0, 1.0, 1.0))
    assert head.level_scales == ()
    assert torch.equal(head(fe, fa)[0], DiscrepancyHead((64, 64))(fe, fa)[0])
    for bad in ((0.0, 1.0, 1.0), (float("nan"), 1.0, 1.0), (-1.0, 1.0, 1.0)):
        with pytest.raises(ValueError, match="finite and > 0"):
            DiscrepancyHead((64, 64), level_scales=bad)
    with pytest.raises(ValueError, match="2 level scales for 3 levels"):
        DiscrepancyHead((64, 64), level_scales=(2.0, 3.0))(fe, fa)


def test_z_scales_give_each_level_unit_spread_on_the_good_images():
    from cdo_train.model.level_norm import z_scales

    model = CDOModel(ModelConfig("resnet18", image_size=64, teacher_weights="random"))
    images = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    scales = z_scales(model, images, torch.device("cpu"), batch_size=2)
    assert len(scales) == 3 and len(set(scales)) == 3
    assert model.training  # left as it was
    model.eval()
    with torch.no_grad():
        fe, fa = model.features(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0)
    for d in level_discrepancies(fe, fa, scales):
        assert float(d.double().std()) == pytest.approx(1.0, rel=1e-4)


def test_model_config_round_trips_through_json_and_old_configs_are_plain():
    cfg = ModelConfig("resnet18", image_size=64, teacher_weights="random", level_norm="z", level_scales=(2.0, 3.0, 4.0))
    again = ModelConfig(**json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.level_scales == (2.0, 3.0, 4.0)
    old = {k: v for k, v in cfg.to_dict().items() if k not in ("level_norm", "level_scales")}
    assert ModelConfig(**old).level_scales == () and ModelConfig(**old).level_norm == "none"
    m = CDOModel(ModelConfig("resnet18", image_size=64, teacher_weights="random"))
    m.set_level_scales((2.0, 3.0, 4.0))
    assert m.cfg.level_scales == m.head.level_scales == (2.0, 3.0, 4.0)


def test_config_choices_and_resume_of_an_older_checkpoint(monkeypatch, tmp_path):
    from cdo_train.training import trainer
    from cdo_train.training.config import LEVEL_NORM, TrainConfig

    assert TrainConfig().level_norm == LEVEL_NORM
    with pytest.raises(CdoError, match="level_norm.*none, z"):
        TrainConfig(level_norm="quantile")
    for saved, want in (({}, "none"), ({"level_norm": "z"}, "z")):
        monkeypatch.setattr(trainer, "load_checkpoint", lambda d, s=saved: {"config": {"data_root": str(tmp_path), **s}})
        assert trainer.resume_config(tmp_path)[0].level_norm == want


def test_onnx_graph_of_a_normalised_model_matches_torch():
    from cdo_train.export.checks import tensorrt_problems
    from cdo_train.export.graph import export_onnx
    from cdo_train.export.verify import onnx_session, run_onnx, torch_reference

    model = CDOModel(ModelConfig("resnet18", image_size=64, teacher_weights="random",
                                 level_norm="z", level_scales=(40.0, 9.0, 2.5))).eval()
    images = np.random.default_rng(2).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    proto = export_onnx(model)
    assert tensorrt_problems(proto) == []
    amap, score = run_onnx(onnx_session(proto.SerializeToString()), images)
    ref_map, ref_score = torch_reference(model, images)
    np.testing.assert_allclose(amap, ref_map, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(score, ref_score, rtol=1e-5, atol=1e-3)
    plain = CDOModel(ModelConfig("resnet18", image_size=64, teacher_weights="random")).eval()
    plain.load_state_dict(model.state_dict())
    assert np.abs(torch_reference(plain, images)[0] - ref_map).max() > 1.0  # the scales are in the graph


def test_cdo_train_level_norm_z_end_to_end(tiny_demo_root, tmp_path):
    from cdo_train.training.run_folder import MODEL_CONFIG
    from cdo_train.training.saved_model import load_model

    r = run_cli("cdo-train", "--data-root", tiny_demo_root, "--output-dir", tmp_path, *TRAIN_ARGS,
                "--level-norm", "z")
    assert r.returncode == 0, r.stderr
    run = tmp_path / "resnet18-none" / "weave" / "seed_111"
    saved = json.loads((run / MODEL_CONFIG).read_text())
    model = load_model(run)
    assert model.cfg.level_norm == "z" and len(model.head.level_scales) == 3
    assert all(s > 0 for s in model.head.level_scales)
    assert saved["level_scales"] == list(model.head.level_scales)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 1  # one epoch, one evaluation, of the normalised head: no extra record after it
    assert "image_auroc" in records[-1]
    from cdo_train.training.evaluation import evaluate, load_images  # the last record is the saved model's
    from cdo_train.data.splits import samples
    from cdo_train.training.config import TrainConfig

    cfg = TrainConfig(data_root=str(tiny_demo_root), image_size=64)
    test = load_images(samples(cfg, "weave", "test"), 64)
    again = evaluate(model, test, torch.device("cpu"), 4)
    assert again["image_auroc"] == pytest.approx(records[-1]["image_auroc"], abs=1e-6)
    bad = run_cli("cdo-train", "--data-root", tiny_demo_root, "--output-dir", tmp_path, *TRAIN_ARGS,
                  "--level-norm", "zz")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
