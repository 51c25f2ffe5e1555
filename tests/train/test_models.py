"""Model, weight mapping and discrepancy head."""

import numpy as np
import pytest
import torch

from cdo_deploy.errors import CdoError
from cdo_train.model.backbones import BACKBONES
from cdo_train.model.discrepancy import DiscrepancyHead
from cdo_train.model.cdo_model import CDOModel, ModelConfig
from cdo_train.model.weights import build_classifier, load_teacher_state, read_state_file


def _imagenet_input(image):
    import cv2

    x = cv2.resize(image, (224, 224), interpolation=cv2.INTER_AREA)
    return (torch.from_numpy(x).permute(2, 0, 1)[None].float() / 255.0 - 0.5) / 0.5


@pytest.mark.parametrize("backbone", ["tf_efficientnet_lite0", "tf_efficientnet_lite2"])
@pytest.mark.parametrize("name,cls", [("chelsea", 285), ("coffee", 967)])
def test_package_weights_classify_real_images(backbone, name, cls):
    skimage_data = pytest.importorskip("skimage.data")
    model = build_classifier(backbone)
    with torch.no_grad():
        logits = model(_imagenet_input(getattr(skimage_data, name)()))
    assert int(logits.argmax()) == cls


def test_shuffled_weights_are_rejected(tmp_path):
    from safetensors.torch import save_file

    state = load_teacher_state("tf_efficientnet_lite0")
    items = list(state.items())
    items[0], items[1] = items[1], items[0]  # shapes no longer line up in order
    path = tmp_path / "w.safetensors"
    save_file({f"t{i}": v.contiguous() for i, (_, v) in enumerate(items)}, str(path))
    with pytest.raises(CdoError, match="shape mismatch"):
        load_teacher_state("tf_efficientnet_lite0", str(path))


def test_weights_file_errors(tmp_path):
    with pytest.raises(CdoError, match="not found"):
        read_state_file(tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CdoError, match="cannot read"):
        read_state_file(bad)


def test_missing_timm_cache_names_the_options(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(CdoError, match="--teacher-weights"):
        load_teacher_state("resnet18")


def test_unknown_backbone_suggests():
    with pytest.raises(CdoError, match="did you mean resnet18"):
        BACKBONES.get("resnet19")


def test_model_shapes_and_frozen_teacher():
    m = CDOModel(ModelConfig("resnet18", image_size=64, teacher_weights="random"))
    amap, score = m(torch.rand(3, 3, 64, 64))
    assert amap.shape == (3, 1, 64, 64) and score.shape == (3,)
    assert torch.allclose(score, amap.flatten(1).amax(1))
    assert not any(p.requires_grad for p in m.teacher.parameters())
    m.train()
    assert not m.teacher.training and m.student.training


def test_head_blur_matches_scipy_on_low_res_map():
    ndimage = pytest.importorskip("scipy.ndimage")
    head = DiscrepancyHead((256, 256), blur_sigma=4.0)
    g = torch.Generator().manual_seed(0)
    fe = [torch.randn(1, 4, 64, 64, generator=g)]
    fa = [torch.randn(1, 4, 64, 64, generator=g)]
    low = head.low_res_map(fe, fa)[0, 0].numpy()
    d = ((torch.nn.functional.normalize(fe[0], dim=1) - torch.nn.functional.normalize(fa[0], dim=1)) ** 2).sum(1)[0]
    ref = ndimage.gaussian_filter(d.numpy().astype(np.float64), sigma=1.0, mode="mirror", truncate=4.0)
    assert np.abs(low - ref).max() < 1e-4


def test_topk_score_rule():
    head = DiscrepancyHead((32, 32), blur_sigma=0.0, score_rule="topk_mean", topk=10)
    amap = torch.arange(32 * 32, dtype=torch.float32).view(1, 1, 32, 32)
    assert float(head.score(amap)) == pytest.approx(float(torch.arange(1014, 1024).float().mean()))


def test_unused_backbone_stages_are_dropped_and_old_runs_still_load(tmp_path):
    from cdo_train.training.saved_model import load_model, save_model

    m = CDOModel(ModelConfig("tf_efficientnet_lite0", image_size=64, teacher_weights="random"))
    assert len(m.teacher.blocks) == 5 and len(m.student.blocks) == 5  # stride 32 stages 5, 6 never feed a level
    full = build_feature_extractor_full()
    x = torch.rand(1, 3, 64, 64)
    full.load_state_dict(m.teacher.state_dict(), strict=False)
    full.eval(), m.teacher.eval()
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(full(x), m.teacher(x)))
    save_model(m, tmp_path)  # a run saved before the change also held blocks 5 and 6: still loads
    from safetensors.torch import load_file, save_file

    state = load_file(str(tmp_path / "model.safetensors"))
    extra = {f"{net}.{k}": v.clone().contiguous() for net in ("teacher", "student") for k, v in full.state_dict().items()
             if k.startswith(("blocks.5.", "blocks.6."))}
    save_file({**state, **extra}, str(tmp_path / "model.safetensors"))
    assert len(load_model(tmp_path).student.blocks) == 5


def build_feature_extractor_full():
    import timm

    return timm.create_model("tf_efficientnet_lite0", pretrained=False, features_only=True, out_indices=(1, 2, 3))


def test_light_student_has_the_teachers_levels_and_is_much_smaller():
    m = CDOModel(ModelConfig("tf_efficientnet_lite0", image_size=64, teacher_weights="random", student="light"))
    fe, fa = m.features(torch.rand(2, 3, 64, 64))
    assert [t.shape for t in fe] == [t.shape for t in fa]
    n_student = sum(p.numel() for p in m.student.parameters())
    n_teacher = sum(p.numel() for p in m.teacher.parameters())
    assert n_student < 0.5 * n_teacher


def _levels(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    shapes = [(2, 6, 16, 16), (2, 8, 8, 8), (2, 10, 4, 4)]
    fe = [torch.randn(*s, generator=g) for s in shapes]
    fa = [e + 0.5 * torch.randn(*e.shape, generator=g) for e in fe]
    return fe, fa


@pytest.mark.parametrize("k", [1, 2])
def test_score_levels_score_reads_the_first_levels_and_the_map_is_unchanged(k):
    fe, fa = _levels()
    full = DiscrepancyHead((64, 64))
    head = DiscrepancyHead((64, 64), score_levels=k)
    amap_all, score_all = full(fe, fa)
    amap, score = head(fe, fa)
    assert torch.allclose(amap, amap_all, atol=1e-6)  # the map still sums every level
    # the score is the max of the map the first k levels alone make (what the all-levels head gives them)
    amap_k, score_k = full(fe[:k], fa[:k])
    assert torch.allclose(score, score_k, atol=1e-6)
    assert not torch.allclose(score, score_all, atol=1e-3)
    # discrepancies are >= 0 and blur / upsample are positive: the score never exceeds the map's max,
    # so a pixel threshold at or below the image threshold still finds an NG part's defect
    assert bool((score <= amap.flatten(1).amax(1) + 1e-6).all())


@pytest.mark.parametrize("k", [0, 3, 5])
def test_score_levels_zero_or_all_is_the_papers_score(k):
    fe, fa = _levels(1)
    amap, score = DiscrepancyHead((64, 64), score_levels=k)(fe, fa)
    assert torch.equal(score, amap.flatten(1).amax(1))


def test_score_levels_model_default_and_old_runs():
    from cdo_train.training.config import SCORE_LEVELS, TrainConfig

    assert TrainConfig().score_levels == SCORE_LEVELS == 0  # the paper's score unless asked
    assert ModelConfig().score_levels == 0  # a model_config.json saved before the option: all levels, as trained
    m = CDOModel(ModelConfig("resnet18", image_size=64, teacher_weights="random", score_levels=2))
    with torch.no_grad():
        amap, score = m(torch.rand(2, 3, 64, 64))
    assert bool((score <= amap.flatten(1).amax(1) + 1e-6).all())
    with pytest.raises(CdoError, match="'score_levels' must be an integer in \\[0, 3\\]"):
        TrainConfig(score_levels=4)


def test_resume_of_a_checkpoint_from_before_score_levels_keeps_all_levels(monkeypatch, tmp_path):
    from cdo_train.training import trainer

    for saved, want in (({}, 0), ({"score_levels": 2}, 2), ({"score_levels": 1}, 1)):
        monkeypatch.setattr(trainer, "load_checkpoint", lambda d, s=saved: {"config": {"data_root": str(tmp_path), **s}})
        assert trainer.resume_config(tmp_path)[0].score_levels == want
