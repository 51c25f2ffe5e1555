"""Curriculum in training: logged difficulty/knobs, `none` == the paper's setting, ordering, CLI wiring."""

import json

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from cdo_deploy.errors import CdoError
from cdo_train.cli import _cli
from cdo_train.training.config import TrainConfig
from cdo_train.training.ordering import DataCurriculum, check_ordering
from cdo_train.training.trainer import train

TINY = dict(backbone="resnet18", teacher_weights="random", image_size=32, batch_size=4, epochs=3, eval_every=1,
            device="cpu", progress=False, class_names=("weave",))


def _records(run):
    return [json.loads(x) for x in (run.run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def none_run(tiny_demo_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("none")
    return train(TrainConfig(data_root=str(tiny_demo_root), output_dir=str(out), **TINY))[0]


def test_linear_curriculum_logs_difficulty_and_knob_values(tiny_demo_root, tmp_path):
    cfg = TrainConfig(data_root=str(tiny_demo_root), output_dir=str(tmp_path), curriculum="linear",
                      knobs=("amplitude", "blending"), **TINY)
    (run,) = train(cfg)
    assert run.run_dir.parts[-3] == "resnet18-linear-amplitude+blending"
    recs = _records(run)
    ts = [r["difficulty"] for r in recs]
    assert ts == sorted(ts) and ts[-1] == 1.0
    assert [r["amplitude"] for r in recs] == sorted((r["amplitude"] for r in recs), reverse=True)
    assert recs[-1]["opacity"] == 0.5 and recs[-1]["amplitude"] == 0.3
    assert all(0.0 <= r["difficulty_mean"] <= r["difficulty"] for r in recs)
    assert "image_auroc" in recs[-1] and "gamma" in recs[-1]


def test_none_with_knobs_is_exactly_the_papers_setting(tiny_demo_root, tmp_path, none_run):
    cfg = TrainConfig(data_root=str(tiny_demo_root), output_dir=str(tmp_path), curriculum="none",
                      knobs=("amplitude", "frequency", "blending", "size", "count"), **TINY)
    (run,) = train(cfg)
    assert _records(run) == _records(none_run)
    assert {r["difficulty"] for r in _records(run)} == {0.0}


def test_teacher_ordering_trains_on_the_easiest_images(tiny_demo_root, tmp_path):
    cfg = TrainConfig(data_root=str(tiny_demo_root), output_dir=str(tmp_path), ordering="teacher",
                      ordering_params={"start": 0.5}, **TINY)
    (run,) = train(cfg)
    assert run.run_dir.parts[-3] == "resnet18-none-order_teacher"
    ranked = json.loads((run.run_dir / "ordering_scores.json").read_text())["easiest_first"]
    assert len(ranked) >= 4 and [r["score"] for r in ranked] == sorted(r["score"] for r in ranked)
    recs = _records(run)
    assert {r["data_images"] for r in recs} == {max(4, int(np.ceil(0.5 * len(ranked))))}


def test_data_curriculum_fraction_subset_and_batches():
    cur = DataCurriculum(np.arange(10, 0, -1.0), start=0.2)  # image 9 is the easiest
    assert cur.fraction(0.0) == pytest.approx(0.2) and cur.fraction(1.0) == 1.0
    assert cur.subset(0.0).tolist() == [9, 8]
    assert cur.subset(0.5).tolist() == [9, 8, 7, 6, 5, 4]
    batches = cur.batches(0.0, steps=3, batch_size=3, gen=torch.Generator().manual_seed(0))
    assert [len(b) for b in batches] == [3, 3, 3]  # at least one batch of images, same step count
    assert set(torch.cat(batches).tolist()) == {9, 8, 7}
    assert cur.state() == {"data_fraction": 0.3, "data_images": 3}
    assert sorted(torch.cat(cur.batches(1.0, 2, 5, torch.Generator().manual_seed(0))).tolist()) == list(range(10))


def test_ordering_parameters_are_checked():
    assert check_ordering("student", {"start": 1.0})["warmup_steps"] == 20
    for name, params, needle in [("teachr", {}, "did you mean teacher"), ("teacher", {"start": 0}, "start"),
                                 ("teacher", {"begin": 0.2}, "unknown ordering parameter"),
                                 ("student", {"warmup_steps": 0}, "warmup_steps")]:
        with pytest.raises(CdoError, match=needle):
            check_ordering(name, params)


def test_config_validates_curriculum_early():
    for kw, needle in [({"curriculum": "linaer"}, "did you mean linear"), ({"knobs": ("blend",)}, "blending"),
                       ({"curriculum": "step", "curriculum_params": {"k": 3}}, "accepts: stages"),
                       ({"knob_ranges": {"size": {"hard": 0}}}, "size.hard")]:
        with pytest.raises(CdoError, match=needle):
            TrainConfig(**kw)


def test_cli_stacks_presets_and_parses_curriculum_and_ordering_params(tiny_demo_root, tmp_path):
    args = ["--config", "configs/demo.yaml", "--config", "configs/curriculum_self-paced.yaml",
            "--curriculum-param", "window=2", "--curriculum-param", "increment=0.5", "--ordering", "student",
            "--ordering-param", "warmup_steps=2", "--data-root", str(tiny_demo_root), "--class-name", "grain",
            "--output-dir", str(tmp_path), "--backbone", "resnet18", "--teacher-weights", "random",
            "--image-size", "32", "--batch-size", "4", "--epochs", "2", "--no-progress", "--device", "cpu"]
    r = CliRunner().invoke(_cli, args)
    assert r.exit_code == 0, r.output
    run = tmp_path / "resnet18-self-paced-amplitude+blending+size-order_student" / "grain" / "seed_111"
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["curriculum_params"] == {"window": 2, "patience": 1, "increment": 0.5, "min_delta": 0.02}
    assert cfg["ordering_params"] == {"warmup_steps": 2} and cfg["lr"] == 0.002
    rec = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"stale_windows", "data_fraction", "difficulty", "amplitude", "opacity", "half_max"} <= set(rec)


@pytest.mark.parametrize("extra,needle", [
    (["--curriculum-param", "stages"], "KEY=VALUE"),
    (["--curriculum", "step", "--curriculum-param", "stagez=3"], "accepts: stages"),
    (["--ordering", "teachr"], "did you mean teacher"),
    (["--curriculum", "linear", "--knobs", "amplitude,sise"], "did you mean size")])
def test_cli_curriculum_user_errors_are_one_line(tmp_path, extra, needle):
    r = CliRunner().invoke(_cli, ["--data-root", str(tmp_path), *extra])
    assert r.exit_code == 1 and needle in r.output and "Traceback" not in r.output, r.output
