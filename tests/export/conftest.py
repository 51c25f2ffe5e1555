"""Session fixtures for the export tests: one tiny run trained by the real ``cdo-train``
CLI, and one bundle written from it by the real ``cdo-export`` CLI (fp32 + fp16 +
int8 + Triton repository), shared by all tests of this folder.

Tiny on purpose (2 shared CPU cores): resnet18 with a random teacher, 64 px,
one epoch on the 8-image tiny demo class ``weave``.
"""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from tests.conftest import run_cli

TRAIN_ARGS = ("--class-name", "weave", "--image-size", "64", "--batch-size", "4", "--epochs", "1",
              "--eval-every", "1", "--no-progress", "--backbone", "resnet18", "--teacher-weights", "random",
              "--device", "cpu")


@pytest.fixture(scope="session")
def trained_run(tiny_demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run folder of a real ``cdo-train`` run (resnet18, random teacher, 64 px, 1 epoch)."""
    out = tmp_path_factory.mktemp("export_run")
    r = run_cli("cdo-train", "--data-root", tiny_demo_root, "--output-dir", out, *TRAIN_ARGS)
    assert r.returncode == 0, r.stderr
    run = out / "resnet18-none" / "weave" / "seed_111"
    assert (run / "model.safetensors").is_file()
    return run


@pytest.fixture(scope="session")
def exported(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> types.SimpleNamespace:
    """``cdo-export RUN -o bundle --fp16 --int8 --triton-repo triton`` run once; its paths and output."""
    d = tmp_path_factory.mktemp("export_out")
    bundle, triton = d / "bundle", d / "triton"
    r = run_cli("cdo-export", trained_run, "-o", bundle, "--fp16", "--int8", "--calib-images", "8",
                "--triton-repo", triton, "--model-name", "weave_cdo", "--opt-batch", "4", "--max-batch", "16")
    assert r.returncode == 0, r.stderr
    return types.SimpleNamespace(run=trained_run, bundle=bundle, triton=triton, stdout=r.stdout, stderr=r.stderr)


@pytest.fixture(scope="session")
def test_set(trained_run: Path):
    """The run's test images at model resolution (EvalSet: images, masks, labels)."""
    from cdo_train.data import list_samples
    from cdo_train.evaluation import load_images
    from cdo_train.export.runinfo import read_run_info

    cfg = read_run_info(trained_run).config
    return load_images(list_samples("mvtec2d", cfg["data_root"], "weave", "test"), cfg["image_size"])
