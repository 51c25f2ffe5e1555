"""tools/adopt_runs.py (a study's finished runs as sweep trials, only when they computed the same thing)
and tools/penalty_images.py (the off-distribution penalty's images, none from the suite or the held-out photos)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cdo_train.training.config import TrainConfig

REPO = Path(__file__).resolve().parents[2]


def _finished_run(run: Path, **fields) -> Path:
    run.mkdir(parents=True)
    cfg = TrainConfig().merged(fields).model_dump(mode="json")
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "summary.json").write_text(json.dumps({"status": "finished"}))
    (run / "model.safetensors").write_bytes(b"weights")
    return run


def _sweep(tmp_path: Path, data: Path) -> Path:
    sweep = tmp_path / "study.yaml"
    sweep.write_text(yaml.safe_dump({
        "name": "{curriculum}", "output_dir": str(tmp_path / "sweep"),
        "base": {"data_root": str(data), "dataset": "mvtec2d", "seed": 111},
        "grid": {"curriculum": ["none", "linear"]}, "classes": ["fur"], "seeds": 2}))
    return sweep


def test_adopts_only_identical_finished_runs_with_linked_files(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    src = tmp_path / "photo" / "steps1000"
    _finished_run(src / "fur" / "seed_111", data_root=str(data), class_names=["fur"], seed=111, steps=1000,
                  output_dir=str(tmp_path / "photo"), name="steps1000")
    _finished_run(src / "fur" / "seed_112", data_root=str(data), class_names=["fur"], seed=112, steps=1000,
                  gamma=3.0)  # computed something else
    sweep = _sweep(tmp_path, data)
    r = subprocess.run([sys.executable, str(REPO / "tools" / "adopt_runs.py"), str(sweep), str(src),
                        "--experiment", "none"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["adopted", "none/fur/seed_111"]
    assert "none/fur/seed_112" in r.stderr and "gamma" in r.stderr
    adopted = tmp_path / "sweep" / "none" / "fur" / "seed_111" / "model.safetensors"
    assert adopted.stat().st_ino == (src / "fur" / "seed_111" / "model.safetensors").stat().st_ino
    assert not (tmp_path / "sweep" / "linear").exists()


def test_penalty_images_avoid_the_suite_and_the_held_out_photos(tmp_path):
    pytest.importorskip("skimage")
    from cdo_train.data.photo_suite import SOURCES
    from tools.penalty_images import HELD_OUT, PHOTOS, crops, photos

    assert not (set(PHOTOS) & (set(SOURCES) | set(HELD_OUT) | {"cat"}))
    sources = photos()
    a, b = crops(sources, 6, 32, seed=3), crops(sources, 6, 32, seed=3)
    assert [n for n, _ in a] == [n for n, _ in b] and all((x == y).all() for (_, x), (_, y) in zip(a, b))
    assert all(im.shape == (32, 32, 3) and im.dtype.name == "uint8" for _, im in a)
    assert len({n.split("_", 1)[1] for n, _ in a}) == 6  # one crop of each photo before any repeats
