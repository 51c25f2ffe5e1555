"""Run management through the real CLI: usage, config errors, refusing to overwrite, interrupt and resume."""

from __future__ import annotations

import json
import re
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from cdo_deploy.errors import CdoError
from cdo_train.training.config import TrainConfig
from tests.conftest import cli, run_cli

TINY = dict(class_names=("weave",), image_size=32, batch_size=4, backbone="resnet18", teacher_weights="random",
            device="cpu", progress=False)
TINY_ARGS = ["--class-name", "weave", "--image-size", "32", "--batch-size", "4", "--backbone", "resnet18",
             "--teacher-weights", "random", "--device", "cpu", "--no-progress"]
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


def _no_traceback(r: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in r.stderr, r.stderr


def test_bare_cdo_train_prints_usage_exits_2_and_help_lists_the_registries():
    r = run_cli("cdo-train")
    assert r.returncode == 2 and r.stderr.startswith("Usage: cdo-train"), r.stderr
    assert "missing --data-root" in r.stderr and not r.stdout
    _no_traceback(r)
    assert run_cli("cdo-train", "--version").stdout.strip() == "cdo-train, version 0.1.0"
    text = " ".join(run_cli("cdo-train", "--help").stdout.split())
    for name in ("self-paced", "function-step", "amplitude", "realism", "wide_resnet50_2", "tf_efficientnet_lite2",
                 "student", "--exist-ok", "--resume", "--abnormal-dir"):
        assert name in text, name


def test_config_type_errors_name_the_key_and_type(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text('epochs: "ten"\n')
    r = run_cli("cdo-train", "--config", bad, "--data-root", tmp_path)
    assert r.returncode == 1 and r.stderr.strip() == \
        "Error: config key 'epochs' must be an integer >= 1 or null, got 'ten' (str)"
    cases = {"lr": "fast", "batch_size": 2.5, "amp": "yes", "knobs": [1], "curriculum_params": [1], "seed": True,
             "data_root": 3}
    for key, value in cases.items():
        with pytest.raises(CdoError, match=rf"^config key '{key}' must be .*, got {re.escape(repr(value))}"):
            TrainConfig(**{key: value})
    cfg = TrainConfig().merged({"lr": "2e-3", "gamma": 1, "knobs": "size", "data_root": "rel/data",
                                "calibration_dir": "~/calib", "teacher_weights": "w.pth"})
    assert (cfg.lr, cfg.gamma, cfg.knobs) == (0.002, 1.0, ("size",))  # YAML 1.1 reads 2e-3 as a string
    for path in (cfg.data_root, cfg.output_dir, cfg.calibration_dir, cfg.teacher_weights):
        assert os.path.isabs(path) and "~" not in path
    assert cfg.data_root == os.path.join(os.getcwd(), "rel", "data")


def test_a_finished_run_is_never_overwritten_and_exist_ok_replaces_it(tiny_demo_root, tmp_path):
    from cdo_train.training.trainer import train

    cfg = TrainConfig(data_root=str(tiny_demo_root), output_dir=str(tmp_path), steps=2, eval_every=2, **TINY)
    (first,) = train(cfg)
    old_events = sorted(p.name for p in (first.run_dir / "tb").iterdir())
    (first.run_dir / "tb" / "stale-marker").write_text("x")
    with pytest.raises(CdoError, match="already holds a finished run: pass --exist-ok"):
        train(cfg)
    args = ["--data-root", tiny_demo_root, "--output-dir", tmp_path, "--steps", "2", "--eval-every", "2", *TINY_ARGS]
    r = run_cli("cdo-train", *args)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "pass --exist-ok to replace it" in r.stderr, r.stderr
    r = run_cli("cdo-train", *args, "--exist-ok")
    assert r.returncode == 0, r.stderr
    events = sorted(p.name for p in (first.run_dir / "tb").iterdir())
    assert len(events) == 1 and events != old_events  # the old TensorBoard files are gone with the old run
    assert r.stdout.strip().endswith(str(first.run_dir))  # the last line is the folder cdo-export takes
    not_a_run = tmp_path / "resnet18-none" / "grain" / "seed_111"
    not_a_run.mkdir(parents=True)
    (not_a_run / "precious.txt").write_text("x")
    with pytest.raises(CdoError, match="not a cdo-train run folder"):
        train(cfg.merged({"class_names": ["grain"]}), exist_ok=True)
    assert (not_a_run / "precious.txt").is_file()


def _comparable(run: Path) -> dict:
    summary = json.loads((run / "summary.json").read_text())
    return {"weights": (run / "model.safetensors").read_bytes(), "metrics": (run / "metrics.jsonl").read_text(),
            "calibration": (run / "calibration.json").read_text(), "last": summary["last"], "best": summary["best"]}


def test_an_interrupted_and_resumed_run_ends_exactly_like_an_uninterrupted_one(tiny_demo_root, tmp_path):
    from cdo_train.export import ExportOptions, export_run
    from cdo_train.training.trainer import train

    common = dict(steps=24, eval_every=6, save_every=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the CLI runs below (OMP_NUM_THREADS=1): same float summation order
    try:
        (ref,) = train(TrainConfig(data_root=str(tiny_demo_root), output_dir=str(tmp_path / "ref"), **common, **TINY))
    finally:
        torch.set_num_threads(threads)
    out = tmp_path / "int"
    proc = subprocess.Popen([cli("cdo-train"), "--data-root", str(tiny_demo_root), "--output-dir", str(out),
                             "--steps", "24", "--eval-every", "6", "--save-every", "1", *TINY_ARGS],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ONE_THREAD)
    run = out / "resnet18-none" / "weave" / "seed_111"
    deadline = time.time() + 300
    while not (run / "checkpoint.pt").is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)  # a real Ctrl-C, somewhere after the first epoch
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1].startswith("Interrupted: SIGINT at step ") and "Traceback" not in stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted" and 2 <= summary["interrupted"]["step"] < 24
    assert summary["interrupted"]["resume"] == f"cdo-train --resume {run}"
    r = run_cli("cdo-export", run, "-o", tmp_path / "bundle")  # refused unless asked
    assert r.returncode == 1 and "--allow-interrupted" in r.stderr and "cdo-train --resume" in r.stderr, r.stderr
    assert not (tmp_path / "bundle").exists()
    res = export_run(run, tmp_path / "bundle_int", ExportOptions(allow_interrupted=True))
    assert res.meta.train["run_status"] == "interrupted"
    r = run_cli("cdo-train", "--resume", run, env=ONE_THREAD)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith(str(run)) and not (run / "checkpoint.pt").exists()
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"
    assert _comparable(run) == _comparable(ref.run_dir)  # bit-exact: weights, every metric, thresholds
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("loss")] == list(range(1, 13))  # no epoch logged twice
    r = run_cli("cdo-train", "--resume", run)
    assert r.returncode == 1 and "nothing to resume" in r.stderr and "it finished" in r.stderr
    r = run_cli("cdo-train", "--resume", run, "--lr", "0.1")
    assert r.returncode == 1 and "does not take lr" in r.stderr
