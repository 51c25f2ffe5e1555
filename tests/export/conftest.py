"""Session fixtures for the export tests: one bundle written by the real ``cdo-export``
CLI (fp32 + fp16 + int8 + Triton repository) from the session's tiny ``trained_run``
(``tests/conftest.py``), shared by all tests of this folder.
"""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from tests.conftest import run_cli

INT8_TOLERANCE = 20


@pytest.fixture(scope="session")
def exported(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> types.SimpleNamespace:
    """``cdo-export RUN -o bundle --fp16 --int8 --triton-repo triton`` run once; its paths and output.

    The 1-epoch random-teacher model has 3 good and 5 defective test parts, so one decision that int8
    changes is 12.5 % of them (a trained 256 px model changes none of 24, docs/guides/int8.md): the int8 check runs
    with a tolerance of 20 (points and %) here. Flipped held-out good parts fail at any tolerance.
    """
    d = tmp_path_factory.mktemp("export_out")
    bundle, triton = d / "bundle", d / "triton"
    r = run_cli("cdo-export", trained_run, "-o", bundle, "--fp16", "--int8", "--calib-images", "8",
                "--int8-tolerance", str(INT8_TOLERANCE),
                "--triton-repo", triton, "--model-name", "weave_cdo", "--opt-batch", "4", "--max-batch", "16")
    assert r.returncode == 0, r.stderr
    return types.SimpleNamespace(run=trained_run, bundle=bundle, triton=triton, stdout=r.stdout, stderr=r.stderr)


@pytest.fixture(scope="session")
def test_set(trained_run: Path):
    """The run's test images at model resolution (EvalSet: images, masks, labels)."""
    from cdo_train.data import list_samples
    from cdo_train.training.evaluation import load_images
    from cdo_train.export.run_inputs import read_run_info

    cfg = read_run_info(trained_run).config
    return load_images(list_samples("mvtec2d", cfg["data_root"], "weave", "test"), cfg["image_size"])
