"""cdo-sweep: grid expansion, the run-folder decision, no-Ray hint, and a real sweep on a local Ray killed and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cdo_deploy.errors import CdoError
from cdo_train.training.config import TrainConfig
from cdo_train.training.run_folder import run_status
from cdo_train.training.run_writer import run_dir_of
from cdo_train.sweep import load_sweep, plan
from cdo_train.sweep.trial import action
from tests.conftest import modules_after

REPO = Path(__file__).resolve().parents[2]
SWEEP = [sys.executable, "-m", "cdo_train.sweep.cli"]
# tests/conftest.py TRAIN_ARGS as config fields: a run takes seconds
TINY = {"image_size": 64, "batch_size": 4, "backbone": "resnet18", "teacher_weights": "random", "device": "cpu"}


def write_sweep(path: Path, data_root: Path, out: Path, **extra) -> Path:
    spec = {"output_dir": str(out), "base": {"data_root": str(data_root), **TINY, **extra.pop("base", {})},
            "grid": {"curriculum": ["none", "linear"]}, "classes": ["weave"], "seeds": 2, **extra}
    path.write_text(yaml.safe_dump(spec))
    return path


def sweep_cli(*args, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([*SWEEP, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO,
                          **kw)


def test_grid_expands_to_cdo_train_run_folders_with_presets(tmp_path):
    f = write_sweep(tmp_path / "s.yaml", tmp_path / "data", tmp_path / "out", name="{curriculum}-lr{lr}",
                    grid={"curriculum": ["none", "linear"], "lr": [0.002, 0.001]})
    sweep = load_sweep(f, {"seeds": [5, 9], "steps": 7})
    assert [t.key for t in sweep.trials][:4] == ["none-lr0.002/weave/seed_5", "none-lr0.002/weave/seed_9",
                                                 "none-lr0.001/weave/seed_5", "none-lr0.001/weave/seed_9"]
    assert len(sweep.trials) == 8 and sweep.name == "s"
    for t in sweep.trials:  # exactly where `cdo-train --output-dir OUT --name NAME` puts the run
        cfg = t.train_config()
        assert t.run_dir == run_dir_of(cfg, t.class_name, t.seed) and cfg.steps == 7 and cfg.seeds == 1
        assert cfg.class_names == (t.class_name,) and cfg.seed == t.seed
    linear = sweep.trials[-1].train_config()  # configs/curriculum_linear.yaml: its knobs and parameters
    preset = yaml.safe_load((REPO / "configs" / "curriculum_linear.yaml").read_text())
    assert linear.curriculum == "linear" and list(linear.knobs) == preset["knobs"] and linear.lr == 0.001
    assert linear.curriculum_params == preset["curriculum_params"]
    assert sweep.trials[0].train_config().knobs == ()  # curriculum_none.yaml: the paper's generator
    plain = write_sweep(tmp_path / "p.yaml", tmp_path / "data", tmp_path / "out", grid={}, base={"seed": 7, "seeds": 2})
    plain_sweep = load_sweep(plain, {"seeds": None})  # no sweep seeds: base's, as cdo-train; no grid: its default name
    assert [t.key for t in plain_sweep.trials] == ["resnet18-none/weave/seed_7", "resnet18-none/weave/seed_8"]


def test_sweep_file_mistakes_are_one_line_errors(tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    with pytest.raises(CdoError, match="unknown sweep key 'seed'.*did you mean seeds"):
        load_sweep(write_sweep(tmp_path / "a.yaml", data, out, seed=3))
    with pytest.raises(CdoError, match="unknown config key 'stpes'.*did you mean steps"):
        load_sweep(write_sweep(tmp_path / "b.yaml", data, out, base={"stpes": 3}))
    with pytest.raises(CdoError, match="both get the experiment name 'x'"):
        load_sweep(write_sweep(tmp_path / "c.yaml", data, out, name="x"))
    with pytest.raises(CdoError, match="unknown field 'curiculum'"):
        load_sweep(write_sweep(tmp_path / "d.yaml", data, out, name="{curiculum}"))
    with pytest.raises(CdoError, match="no data_root"):
        load_sweep(write_sweep(tmp_path / "e.yaml", data, out), {"data_root": None})
    # the study's file names its presets and needs only the data
    study = load_sweep(REPO / "configs" / "sweeps" / "curriculum.yaml", {"data_root": str(data), "seeds": 1})
    assert {t.experiment for t in study.trials} == {"none", "linear", "step", "root", "self-paced", "anti", "random"}
    knobs = {t.experiment: t.train_config().knobs for t in study.trials}
    assert knobs.pop("none") == () and set(knobs.values()) == {("amplitude", "blending", "size")}
    with pytest.raises(CdoError, match="presets folder not found"):
        load_sweep(write_sweep(tmp_path / "f.yaml", data, out, presets="nowhere"))


def test_run_folder_decides_skip_resume_or_start(trained_run, tmp_path):
    assert action(tmp_path / "never") == "start"
    assert run_status(trained_run) == "finished" and action(trained_run) == "skip"
    (tmp_path / "dead").mkdir()  # died before its first checkpoint: started again
    (tmp_path / "dead" / "config.yaml").write_text("{}")
    assert action(tmp_path / "dead") == "start"
    (tmp_path / "dead" / "checkpoint.pt").write_bytes(b"")  # a checkpoint: continued
    assert action(tmp_path / "dead") == "resume"


def test_without_ray_the_command_says_how_to_get_it(tiny_demo_root, tmp_path):
    f = write_sweep(tmp_path / "s.yaml", tiny_demo_root, tmp_path / "out")
    code = "import sys; sys.modules['ray'] = None; from cdo_train.sweep.cli import main; main()"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-c", code, str(f)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1] == ("Error: Ray is not installed: pip install 'cdo[sweep]' (Ray Tune "
                                                 "runs the sweep's trials)")
    r = subprocess.run([sys.executable, "-c", code, str(f), "--dry-run"], capture_output=True, text=True, env=env,
                       timeout=120)  # listing the trials needs no Ray
    assert r.returncode == 0 and "4 trials" in r.stdout and "start  linear/weave/seed_112" in r.stdout, r.stderr


def test_ray_is_imported_only_to_run():
    assert "ray" not in modules_after("import cdo_train.sweep, cdo_train.sweep.cli")


def _wait(predicate, proc, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, "timed out"
        time.sleep(0.3)


@pytest.mark.parametrize("stop", ["sigkill-group", pytest.param("sigterm", marks=pytest.mark.slow)])
def test_killed_sweep_resumes_and_ends_with_every_trial_once(tiny_demo_root, tmp_path, stop):
    """A real 2 schedules x 2 seeds sweep on a local Ray, stopped mid-way (SIGKILL to its whole process group, or
    SIGTERM to the command), then run again with the same command."""
    pytest.importorskip("ray")
    out = tmp_path / "out"
    # 8 steps at batch 4 = 4 epochs of the tiny class; a checkpoint every epoch, an evaluation every 2 steps
    f = write_sweep(tmp_path / "s.yaml", tiny_demo_root, out, base={"steps": 8, "eval_every": 2, "save_every": 1})
    trials = load_sweep(f).trials
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([*SWEEP, f, "--concurrent", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=env, cwd=REPO, start_new_session=True)
    try:  # stop once a trial has finished and another is half-way (has a checkpoint)
        done = lambda: [t for t in trials if run_status(t.run_dir) == "finished"]  # noqa: E731
        _wait(lambda: done() and any(run_status(t.run_dir) == "interrupted" for t in trials), proc, 240)
    finally:
        if stop == "sigterm":
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGKILL)
        output = proc.communicate(timeout=120)[0].decode()
    if stop == "sigterm":  # Ray shut down, one line
        assert proc.returncode == 143 and output.strip().splitlines()[-1].startswith("Interrupted: run the same"), output
    before = {t.key: (t.run_dir / "summary.json").stat().st_mtime_ns for t in done()}
    assert 1 <= len(before) < 4
    r = sweep_cli(f, "--concurrent", "2", "--collect", tmp_path / "results")
    assert r.returncode == 0, r.stdout + r.stderr
    counts = [int(w) for w in r.stdout.splitlines()[0].split(": ")[-1].replace(",", "").split() if w.isdigit()]
    assert counts[0] >= len(before) and sum(counts) == 4, r.stdout  # finished, to resume, to start
    # the half-way run continues from its checkpoint (unless its worker finished it before noticing the kill)
    assert counts[1] >= 1 or counts[0] > len(before), r.stdout
    for t in trials:  # every trial finished once: all evaluations, no step twice
        assert run_status(t.run_dir) == "finished" and not (t.run_dir / "checkpoint.pt").exists(), t.key
        steps = [json.loads(x)["step"] for x in (t.run_dir / "metrics.jsonl").read_text().splitlines()]
        assert steps == [2, 4, 6, 8], (t.key, steps)
        assert yaml.safe_load((t.run_dir / "config.yaml").read_text())["curriculum"] == t.experiment
    for key, mtime in before.items():  # runs finished before the kill were not trained again
        assert (out / key / "summary.json").stat().st_mtime_ns == mtime, key
        assert f"{key:<40}{'skip':>8}" in r.stdout
    # the small result files, in the layout tools/comparison.py reads, without weights
    from tools.comparison import find_runs

    runs = find_runs(tmp_path / "results")
    assert sorted((x.experiment, x.seed, x.finished) for x in runs) == [
        ("linear", 111, True), ("linear", 112, True), ("none", 111, True), ("none", 112, True)]
    assert not list((tmp_path / "results").rglob("*.safetensors"))
    again = sweep_cli(f, "--dry-run")  # nothing left: no Ray needed
    assert "4 finished, 0 to resume, 0 to start" in again.stdout
