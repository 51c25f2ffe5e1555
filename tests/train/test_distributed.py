"""Multi-process training (``cdo_train.training.distributed``): sharding, GPU-side anomalies, DDP with gloo on CPU.

The two-process runs spawn fresh interpreters on the 2 shared CPU cores (about
a minute together), so they are slow-marked.
"""

from __future__ import annotations

import json

import pytest
import torch

from cdo_deploy.errors import CdoError
from cdo_train.training.config import TrainConfig
from cdo_train.training.distributed import _split, launch, shard


def test_shards_cover_a_batch_with_equal_sizes():
    idx = torch.tensor([7, 3, 9, 1, 4])
    parts = [shard(idx, r, 2) for r in range(2)]
    assert [p.tolist() for p in parts] == [[7, 3, 9], [1, 4, 7]]  # padded by wrap-around
    assert shard(idx, 0, 1).tolist() == idx.tolist()
    assert [shard(torch.tensor([5]), r, 3).tolist() for r in range(3)] == [[5], [5], [5]]


def test_runs_are_split_whole_when_there_are_enough_else_into_groups():
    assert _split(3, 2) == [[0], [1]]  # each process trains whole runs
    assert _split(1, 2) == [[0, 1]]  # one DDP group
    assert _split(2, 4) == [[0, 1], [2, 3]]
    assert _split(2, 3) == [[0], [1, 2]]


def test_bad_nproc_is_a_user_error():
    with pytest.raises(CdoError, match="--nproc"):
        launch(TrainConfig(), 0)


def _cfg(root, out, classes=("weave",)) -> TrainConfig:
    return TrainConfig(data_root=str(root), class_names=classes, image_size=64, batch_size=4, epochs=2,
                       eval_every=1, progress=False, backbone="resnet18", teacher_weights="random", device="cpu",
                       output_dir=str(out), name="ddp")


@pytest.mark.slow
def test_two_processes_match_one_and_write_one_checkpoint(tiny_demo_root, tmp_path):
    one = launch(_cfg(tiny_demo_root, tmp_path / "one"), 1)
    two = launch(_cfg(tiny_demo_root, tmp_path / "two"), 2)
    assert [(r.class_name, r.seed) for r in two] == [("weave", 111)]
    a, b = one[0].last, two[0].last
    assert b["loss"] == pytest.approx(a["loss"], rel=0.05)  # per-shard BatchNorm and loss normalisation
    assert abs(b["pixel_auroc"] - a["pixel_auroc"]) < 0.05 and abs(b["image_auroc"] - a["image_auroc"]) <= 0.2
    assert sorted(p.relative_to(tmp_path / "two") for p in (tmp_path / "two").rglob("*.safetensors")) == [
        two[0].run_dir.relative_to(tmp_path / "two") / "model.safetensors"]
    tp = json.loads((two[0].run_dir / "throughput.json").read_text())
    assert tp["processes"] == 2 and tp["images_per_s"] > 0 and tp["images"] == 14  # 2 epochs x 7 images
    assert len(tp["per_epoch_images_per_s"]) == 2 and tp["cold_epoch_images_per_s"] == tp["per_epoch_images_per_s"][:1]
    lines = (two[0].run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2  # one writer


@pytest.mark.slow
def test_two_classes_on_two_processes_train_one_class_each(tiny_demo_root, tmp_path):
    res = launch(_cfg(tiny_demo_root, tmp_path, ("weave", "grain")), 2)
    assert [(r.class_name, json.loads((r.run_dir / "throughput.json").read_text())["processes"]) for r in res] == [
        ("weave", 1), ("grain", 1)]
    assert len(list(tmp_path.rglob("model.safetensors"))) == 2


@pytest.mark.slow
def test_ordering_curriculum_trains_under_ddp_with_the_first_processs_scores(tiny_demo_root, tmp_path):
    cfg = _cfg(tiny_demo_root, tmp_path).merged({"ordering": "teacher", "curriculum": "linear"})
    (res,) = launch(cfg, 2)
    assert json.loads((res.run_dir / "throughput.json").read_text())["processes"] == 2
    ranked = json.loads((res.run_dir / "ordering_scores.json").read_text())["easiest_first"]
    assert len(ranked) == 7
    records = [json.loads(line) for line in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["data_images"] for r in records] == sorted(r["data_images"] for r in records)  # growing subset


class _StopAfter:
    """Stands in for StopSignal: reports SIGINT from the ``n``-th check on (an interruption at a known step)."""

    def __init__(self, n: int) -> None:
        self.checks, self.n = 0, n

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @property
    def signum(self):
        self.checks += 1
        return 2 if self.checks >= self.n else None


def test_resume_with_nproc_1_reads_the_checkpoint_once(tiny_demo_root, tmp_path, monkeypatch):
    from cdo_train import cli
    from cdo_train.training import checkpoint, trainer
    from cdo_train.training.signals import TrainingInterrupted

    cfg = _cfg(tiny_demo_root, tmp_path)
    with monkeypatch.context() as m:
        m.setattr(trainer, "StopSignal", lambda: _StopAfter(3))
        with pytest.raises(TrainingInterrupted):
            trainer.train(cfg)
    run = tmp_path / "ddp" / "weave" / "seed_111"
    assert (run / "checkpoint.pt").is_file()
    reads = []
    real = checkpoint.load_checkpoint
    monkeypatch.setattr(trainer, "load_checkpoint", lambda d: reads.append(d) or real(d))
    with pytest.raises(SystemExit) as done:
        cli.main(["--resume", str(run), "--nproc", "1", "--no-progress"])
    assert done.value.code in (0, None)
    assert len(reads) == 1
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"
