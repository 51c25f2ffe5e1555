"""The training loop both trainers share (cdo_train.training.run): throughput, GradScaler, host syncs, hard_suite.sh."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from cdo_deploy.errors import CdoError
from cdo_train.training.config import TrainConfig
from cdo_train.training.run import TrainingRun
from cdo_train.training.meters import LossMeter

REPO = Path(__file__).resolve().parents[2]
TINY = dict(class_names=("weave",), image_size=32, batch_size=4, backbone="resnet18", teacher_weights="random",
            device="cpu", progress=False)


def test_both_trainers_share_one_loop_and_log_images_per_s_for_every_epoch(tiny_demo_root, tmp_path):
    from cdo_train.training.distributed import launch
    from cdo_train.training.trainer import train

    cfg = TrainConfig(data_root=str(tiny_demo_root), epochs=3, eval_every=1000, **TINY)
    (one,) = train(cfg.merged({"output_dir": str(tmp_path / "one")}))
    (fast,) = launch(cfg.merged({"output_dir": str(tmp_path / "fast")}), 1)  # the distributed trainer, 1 process
    assert (one.run_dir / "model.safetensors").read_bytes() == (fast.run_dir / "model.safetensors").read_bytes()
    assert len((one.run_dir / "metrics.jsonl").read_text().splitlines()) == 1  # evaluated once, at the end
    for run in (one, fast):
        tp = json.loads((run.run_dir / "throughput.json").read_text())
        assert len(tp["per_epoch_images_per_s"]) == 3 and tp["images"] == 3 * 7  # every epoch, evaluated or not
        assert [e["cold"] for e in tp["epochs"]] == [True, False, False] and tp["warm_epochs"] == 2
        warm = tp["epochs"][1:]
        assert tp["images_per_s"] == pytest.approx(sum(e["images"] for e in warm) / sum(e["seconds"] for e in warm),
                                                   abs=0.051)  # the cold first epoch is not in the average
        assert tp["cold_epoch_images_per_s"] == tp["per_epoch_images_per_s"][:1]
    assert json.loads((fast.run_dir / "throughput.json").read_text())["processes"] == 1


def _run(tiny_demo_root, tmp_path, **kw) -> TrainingRun:
    cfg = TrainConfig(data_root=str(tiny_demo_root), output_dir=str(tmp_path), steps=20, eval_every=20, **TINY)
    return TrainingRun(cfg.merged(kw), "weave", 111, torch.device("cpu"))


def _loss(run: TrainingRun) -> torch.Tensor:
    x = run.train_imgs[:2].permute(0, 3, 1, 2).float() / 255.0
    fe, fa = run.model.features(x)
    return sum(((a - e) ** 2).mean() for a, e in zip(fa, fe))


def test_the_step_goes_through_the_grad_scaler(tiny_demo_root, tmp_path):
    run = _run(tiny_demo_root, tmp_path)
    run.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)  # what fp16 autocast on CUDA uses
    p = next(run.model.student.parameters())
    before = [q.detach().clone() for q in run.model.student.parameters()]
    t, params, gamma = run.knobs()
    run.optimise(p.flatten()[0] * 1e37, t, params, gamma, 2)  # finite loss, gradients overflow once scaled
    assert all(torch.equal(a, b) for a, b in zip(before, run.model.student.parameters()))  # the step was skipped
    assert run.scaler.get_scale() == 512.0 and run.step == 1
    run.optimise(_loss(run), t, params, gamma, 2)
    assert not all(torch.equal(a, b) for a, b in zip(before, run.model.student.parameters()))
    assert run.scaler.state_dict()["scale"] == 512.0  # and it travels in the checkpoint
    assert run.state_dict()["scaler"]["scale"] == 512.0


HOST_READS: list[str] = []


class _Watched(torch.Tensor):
    """A loss that records each time it (or a value computed from it) is read on the host."""

    def __float__(self):
        HOST_READS.append("float")
        return super().__float__()

    def item(self):
        HOST_READS.append("item")
        return super().item()


@pytest.mark.parametrize("curriculum, reads", [("none", 0), ("self-paced", 5)])
def test_the_loss_reaches_the_host_only_when_the_schedule_needs_it(tiny_demo_root, tmp_path, curriculum, reads):
    run = _run(tiny_demo_root, tmp_path, curriculum=curriculum)
    t, params, gamma = run.knobs()
    HOST_READS.clear()
    for _ in range(5):
        run.optimise(_loss(run).as_subclass(_Watched), t, params, gamma, 2)
    assert len(HOST_READS) == reads  # self-paced observes every step's loss; the others are read at checks only
    run.meter.check(run.step, None)  # a check (every LOSS_CHECK_EVERY steps and at the epoch's end) reads it
    assert len(HOST_READS) == reads + 1


def test_an_interruption_after_the_last_step_still_closes_the_run_on_resume(tiny_demo_root, tmp_path):
    from cdo_train.training.signals import TrainingInterrupted
    from cdo_train.training.trainer import resume, train

    cfg = TrainConfig(data_root=str(tiny_demo_root), steps=4, eval_every=4, **TINY)
    (ref,) = train(cfg.merged({"output_dir": str(tmp_path / "ref")}))
    run = TrainingRun(cfg.merged({"output_dir": str(tmp_path / "int")}), "weave", 111, torch.device("cpu"))
    from cdo_train.synth.anomalies import synthesize
    from cdo_train.training.step import batch_loss, to_float_batch

    while run.step < run.total_steps:  # the trainer's loop, stopped right after the very last step
        for idx in run.epoch_batches():
            t, params, gamma = run.knobs()
            x, mask = synthesize(to_float_batch(run.train_imgs[idx]), params, run.gen)
            run.optimise(batch_loss(run.model, x, mask, gamma=gamma, oom=True, precision=run.precision),
                         t, params, gamma, len(idx))
        if run.step < run.total_steps:
            run.end_epoch()
    with pytest.raises(TrainingInterrupted, match="at step 4 of 4"):
        run.interrupt(15)
    done = resume(run.run_dir)
    assert done.last["epoch"] == ref.last["epoch"] and done.last == ref.last  # the last epoch was logged
    assert (done.run_dir / "model.safetensors").read_bytes() == (ref.run_dir / "model.safetensors").read_bytes()


def test_a_non_finite_loss_is_caught_at_the_next_check():
    meter = LossMeter()
    for v in (1.0, 2.0, float("nan"), 1.0):
        meter.add(torch.tensor(v))
    with pytest.raises(CdoError, match=r"training diverged between steps 1 and 4 \(loss nan\); lower --lr"):
        meter.check(step=4, reduce=None)
    ok = LossMeter()
    for v in (1.0, 3.0):
        ok.add(torch.tensor(v))
    ok.check(step=2, reduce=None)
    assert ok.epoch_mean(steps=2, reduce=None) == 2.0


def test_hard_suite_skips_finished_runs_and_restarts_unfinished_ones(tmp_path):
    out = tmp_path / "hard"
    env = {**os.environ, "PY": os.environ.get("PY", str(Path(os.sys.executable))),
           "TRAIN": str(Path(os.sys.executable).parent / "cdo-train"), "DATA": str(tmp_path / "data"),
           "OUT": str(out), "SEEDS": "2", "CLASSES": "weave", "DATA_CLASSES": "weave", "N_TRAIN": "5", "N_TEST_GOOD": "1",
           "N_TEST_DEFECT": "2", "SIZE": "32", "OMP_NUM_THREADS": "1",
           "EXTRA": "--backbone resnet18 --teacher-weights random --image-size 32 --batch-size 4 --steps 2 "
                    "--eval-every 2 --device cpu"}
    dead = out / "default" / "weave" / "seed_112"  # a run killed before its first checkpoint
    dead.mkdir(parents=True)
    (dead / "config.yaml").write_text("{}\n")
    (dead / "metrics.jsonl").write_text("")
    r = subprocess.run(["bash", str(REPO / "tools" / "hard_suite.sh")], env=env, capture_output=True, text=True,
                       timeout=600, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split("\n")[-3:-1]) == ["done default weave 111", "done default weave 112"], r.stdout
    for seed in (111, 112):
        summary = json.loads((out / "default" / "weave" / f"seed_{seed}" / "summary.json").read_text())
        assert summary["status"] == "finished"
    again = subprocess.run(["bash", str(REPO / "tools" / "hard_suite.sh")], env=env, capture_output=True, text=True,
                           timeout=600, cwd=REPO)
    assert again.returncode == 0 and "done" not in again.stdout and "FAILED" not in again.stdout  # all skipped
