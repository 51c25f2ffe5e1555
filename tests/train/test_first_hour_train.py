"""A new user's first cdo-train runs (issue #22), through the real console script: layout errors point
at the labelled-folder options, --recursive never trains on defects or masks, one progress bar over
the whole run on a terminal, and warnings about the training images' sizes."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from tests.conftest import cli as console_script
from tests.conftest import run_cli
from tests.ptys import run_in_pty


def _walkthrough_layout(root: Path) -> Path:
    """my_parts/{good,calib_good,defect/crack,defect_masks/crack} as the README's walkthrough has them."""
    rng = np.random.default_rng(0)
    for folder, n in (("good", 6), ("calib_good", 2), ("defect/crack", 2), ("defect_masks/crack", 2)):
        (root / folder).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(root / folder / f"{i:03d}.png"), rng.integers(0, 255, (48, 64), dtype=np.uint8))
    return root


def test_layout_error_suggests_the_labelled_folder_options(tmp_path):
    root = _walkthrough_layout(tmp_path / "my_parts")
    r = run_cli("cdo-train", "--dataset", "folder", "--data-root", root, "--class-name", "bracket",
                "--output-dir", tmp_path / "runs", "--device", "cpu", timeout=120)
    assert r.returncode == 1
    line = r.stderr.strip()
    assert line.startswith("Error: no training images in") and "\n" not in line
    assert (f"pass --normal-dir good --abnormal-dir defect --mask-dir defect_masks --calibration-dir "
            f"{root / 'calib_good'} (--recursive would train on the defects too)") in line
    assert "or --recursive" not in line


def test_recursive_refuses_to_train_on_defect_and_mask_folders(tmp_path):
    root = _walkthrough_layout(tmp_path / "my_parts")
    r = run_cli("cdo-train", "--dataset", "folder", "--data-root", root, "--recursive", "--class-name", "bracket",
                "--output-dir", tmp_path / "runs", "--device", "cpu", timeout=120)
    assert r.returncode == 1
    assert r.stderr.strip().startswith("Error: --recursive would train on the images in defect, defect_masks "
                                       "(folders named like defects or masks) as good parts; pass --normal-dir good")
    assert not (tmp_path / "runs").exists()


def test_one_progress_bar_over_the_run_and_image_size_warnings(tmp_path):
    root = tmp_path / "mixed"
    root.mkdir()
    rng = np.random.default_rng(1)
    for i in range(9):  # 6 at 96x48 (W x H: the height is below --image-size 64), 3 at 64x64
        h, w = (48, 96) if i < 6 else (64, 64)
        cv2.imwrite(str(root / f"{i:03d}.png"), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    args = ["--dataset", "folder", "--data-root", str(root), "--output-dir", str(tmp_path / "runs"),
            "--image-size", "64", "--batch-size", "4", "--steps", "4", "--eval-every", "4", "--backbone", "resnet18",
            "--teacher-weights", "random", "--device", "cpu"]
    rc, out, err = run_in_pty([console_script("cdo-train"), *args], timeout=300)
    assert rc == 0, err
    bars = re.findall(r"mixed s111: +\d+%\|[^|]*\| (\d)/(\d) \[[^]]*epoch (\d)/(\d)\]", err)
    assert bars, err
    assert {b[1] for b in bars} == {"4"} and {b[3] for b in bars} == {"2"}  # one bar: all 4 steps of 2 epochs
    assert {b[2] for b in bars} == {"1", "2"}
    assert "the training images come in 2 sizes (96x48: " in err and "64x64: " in err
    assert "training images are 96x48 px, their height is smaller than --image-size 64" in err


def test_the_interruption_message_starts_on_a_line_of_its_own(tiny_demo_root, tmp_path):
    args = ["--data-root", str(tiny_demo_root), "--class-name", "weave", "--output-dir", str(tmp_path / "runs"),
            "--image-size", "64", "--batch-size", "4", "--steps", "2000", "--backbone", "resnet18",
            "--teacher-weights", "random", "--device", "cpu"]
    rc, _out, err = run_in_pty([console_script("cdo-train"), *args], timeout=300, interrupt_when="/2000 [")
    assert rc == 130, err  # 128 + SIGINT
    before, sep, _after = err.partition("Interrupted:")
    ends = [m.end() for m in re.finditer(r"\d+/2000 \[[^\]\n]*\]", err)]
    assert sep and ends, err  # a bar was drawn, then the message
    # every drawing of the bar is followed by its own clearing or redrawing (\r, ESC) or a line end, never by
    # text: the Ctrl-C notice, a warning or the message glued to it
    glued = [err[e - 60:e + 60] for e in ends if err[e:e + 1] not in ("\r", "\n", "\x1b", "")]
    assert not glued, glued
