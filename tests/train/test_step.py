"""The one training step (cdo_train.training.step): precision rules, the loss it computes, and old checkpoints."""

from __future__ import annotations

import torch

from cdo_train.training.loss import cdo_loss
from cdo_train.model.cdo_model import CDOModel, ModelConfig
from cdo_train.training.step import StepPrecision, batch_loss, native_bf16, step_precision, to_float_batch

CPU, CUDA = torch.device("cpu"), torch.device("cuda", 0)


def _model() -> CDOModel:
    torch.manual_seed(0)
    return CDOModel(ModelConfig("resnet18", image_size=64, teacher_weights="random")).train()


def test_native_bf16_reads_the_cpu_flags(tmp_path):
    native_bf16.cache_clear()
    try:
        with_bf16 = tmp_path / "a"
        with_bf16.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 sse\n")
        without = tmp_path / "b"
        without.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f\n")
        assert native_bf16(str(with_bf16)) is True
        assert native_bf16(str(without)) is False
        assert native_bf16(str(tmp_path / "missing")) is False  # unknown: never bf16
    finally:
        native_bf16.cache_clear()


def test_precision_per_device(monkeypatch):
    import cdo_train.training.step as step

    monkeypatch.setattr(step, "native_bf16", lambda: True)
    assert step_precision(True, True, True, CPU) == StepPrecision(torch.bfloat16, True)
    assert step_precision(True, False, False, CPU) == StepPrecision(None, False)
    assert not step_precision(True, True, None, CPU).channels_last  # default: NCHW on CPU (faster there)
    assert step_precision(True, True, None, CUDA).channels_last  # and channels-last on CUDA
    fp16 = step_precision(True, True, True, CUDA)
    assert fp16.autocast is torch.float16 and fp16.grad_scaler and fp16.name == "fp16"
    assert step_precision(False, True, True, CUDA).autocast is None
    monkeypatch.setattr(step, "native_bf16", lambda: False)  # emulated bf16 is slower than fp32: stays off
    assert step_precision(True, True, True, CPU).autocast is None
    assert not StepPrecision(torch.bfloat16, True).grad_scaler  # bf16 has fp32's range


def test_the_fp32_step_is_the_plain_cdo_loss():
    model = _model()
    x = torch.rand(2, 3, 64, 64)
    mask = (torch.rand(2, 1, 64, 64) > 0.9).float()
    got = batch_loss(model, x, mask, gamma=2.0, oom=True, precision=StepPrecision(None, False))
    fe, fa = model.features(x)
    assert torch.equal(got, cdo_loss(fe, fa, mask, gamma=2.0, oom=True))


def test_channels_last_and_bf16_steps_stay_close_to_fp32():
    model = _model()
    x = torch.rand(2, 3, 64, 64)
    mask = (torch.rand(2, 1, 64, 64) > 0.9).float()
    ref = batch_loss(model, x, mask, gamma=2.0, oom=True, precision=StepPrecision(None, False))
    nhwc = batch_loss(model.to(memory_format=torch.channels_last), x, mask, gamma=2.0, oom=True,
                      precision=StepPrecision(None, True))
    bf16 = batch_loss(model, x, mask, gamma=2.0, oom=True, precision=StepPrecision(torch.bfloat16, True))
    assert bf16.dtype == torch.float32  # the loss is always computed in fp32
    assert torch.allclose(nhwc, ref, rtol=1e-4, atol=1e-5)
    assert torch.allclose(bf16, ref, rtol=0.05, atol=1e-3) and not torch.equal(bf16, ref)
    bf16.backward()
    grads = [p.grad for p in model.student.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert all(p.grad is None for p in model.teacher.parameters())  # the teacher stays frozen


def test_to_float_batch():
    x = torch.tensor([[[[0, 255, 51]]]], dtype=torch.uint8)  # (1, 1, 1, 3)
    got = to_float_batch(x)
    assert got.shape == (1, 3, 1, 1) and got.dtype == torch.float32
    assert got.flatten().tolist() == [0.0, 1.0, float(torch.tensor(51 / 255, dtype=torch.float32))]


def test_an_old_checkpoint_resumes_with_the_step_it_was_started_with(tiny_demo_root, tmp_path):
    from cdo_train.training.checkpoint import load_checkpoint, save_checkpoint
    from cdo_train.training.config import TrainConfig
    from cdo_train.training.trainer import resume_config, train

    cfg = TrainConfig(data_root=str(tiny_demo_root), class_names=("weave",), backbone="resnet18", image_size=64,
                      teacher_weights="random", steps=2, eval_every=2, output_dir=str(tmp_path), progress=False)
    (run,) = train(cfg)
    state = {"config": {k: v for k, v in cfg.to_dict().items() if k not in ("cpu_bf16", "channels_last")},
             "class_name": "weave", "seed": 111}
    save_checkpoint(run.run_dir, state)  # what a checkpoint written before these settings holds
    old, _ckpt = resume_config(run.run_dir)
    assert (old.cpu_bf16, old.channels_last) == (False, None)  # fp32; NCHW on CPU, channels-last on CUDA
    state["config"] = cfg.to_dict()
    save_checkpoint(run.run_dir, state)
    new, _ckpt = resume_config(run.run_dir)
    assert (new.cpu_bf16, new.channels_last) == (True, None)
    assert load_checkpoint(run.run_dir)["seed"] == 111
