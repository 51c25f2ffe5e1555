"""No network call anywhere in training or export: proven with every connection and name lookup refused."""

from __future__ import annotations

import time

from tests.conftest import run_cli
from tests.netguard import blocked_env


def test_missing_pretrained_weights_fail_at_once_without_touching_the_network(tiny_demo_root, tmp_path):
    env, attempts = blocked_env(tmp_path)
    t0 = time.monotonic()
    r = run_cli("cdo-train", "--data-root", tiny_demo_root, "--class-name", "weave", "--backbone", "wide_resnet50_2",
                "--output-dir", tmp_path / "out", "--steps", "1", "--no-progress", env=env)
    seconds = time.monotonic() - t0
    assert attempts.read_text() == ""  # not one connection or DNS lookup (before: huggingface.co, with retries)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "no cached weights for 'wide_resnet50_2'" in r.stderr and "--teacher-weights" in r.stderr
    assert "hf_home" in r.stderr and "wide_resnet50_racm-8234f177.pth" in r.stderr  # where it looked
    # the 64 px demo images and the default 256 px input: said once, not silently upscaled
    assert "training images are 64x64 px, smaller than --image-size 256: they are upscaled" in r.stderr
    assert seconds < 120  # no retry loop (it took 54 s of Hugging Face retries before)
