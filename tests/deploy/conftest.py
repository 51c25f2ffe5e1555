"""Shared fixtures for the cdo_deploy tests: a tiny bundle, demo images, CLI runners.

The tiny bundle is a real ONNX graph built with ``onnx.helper`` (no torch) by
``tools/line_kit.py`` (shared with the soak run): the anomaly map is the
brightness in [0, 1]: dark textured "good" parts score about 0.45, parts with a
white patch score 1.0. Thresholds: image 0.75, pixel 0.7.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tools import line_kit as kit

SIZE, IMAGE_THRESHOLD, PIXEL_THRESHOLD = kit.SIZE, kit.IMAGE_THRESHOLD, kit.PIXEL_THRESHOLD
build_tiny_onnx, make_part, wait_for, free_port = kit.build_tiny_onnx, kit.make_part, kit.wait_for, kit.free_port
Broker, Subscriber = kit.Broker, kit.Subscriber
BIN = Path(sys.executable).parent


def build_tiny_engine(onnx_path: Path, engine_path: Path, size: int = SIZE, max_batch: int = 8) -> None:
    """Build a TensorRT engine from the tiny graph (only called where TensorRT runs)."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        raise RuntimeError([str(parser.get_error(i)) for i in range(parser.num_errors)])
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape("image", (1, size, size, 3), (4, size, size, 3), (max_batch, size, size, 3))
    config.add_optimization_profile(profile)
    engine_path.write_bytes(bytes(builder.build_serialized_network(network, config)))


def reference(images_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """numpy twin of the tiny graph: (B,H,W,3) uint8 -> (B,1,H,W) maps, (B,) scores."""
    maps = images_rgb.astype(np.float32).mean(axis=3)[:, None] / 255.0
    return maps, maps.reshape(len(maps), -1).max(axis=1)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-wide bundle folder: model.onnx (32x32) + model.json (tools/line_kit.py)."""
    return kit.write_tiny_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="session")
def tiny():
    """Constants and helpers of the tiny bundle (tests must not import conftest)."""
    import types

    return types.SimpleNamespace(size=SIZE, image_threshold=IMAGE_THRESHOLD, pixel_threshold=PIXEL_THRESHOLD,
                                 reference=reference, build_onnx=build_tiny_onnx, make_part=make_part,
                                 build_engine=build_tiny_engine)


@pytest.fixture
def part():
    """``part(ng, h=96, w=128, seed=0)`` -> BGR uint8 image."""
    return make_part


@pytest.fixture
def demo_images(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A folder of 6 PNG/JPEG parts (MVTec-like test/<type>/) and the expected decisions."""
    import cv2

    root = tmp_path / "demo"
    expected = {}
    for i in range(6):
        ng = i % 2 == 1
        sub = root / "test" / ("patch" if ng else "good")
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"{i:03d}.{'png' if i < 4 else 'jpg'}"
        cv2.imwrite(str(path), make_part(ng, seed=i))
        expected[str(path.resolve())] = "NG" if ng else "OK"
    return root, expected


def _script(name: str) -> list[str]:
    exe = BIN / name
    if exe.exists():
        return [str(exe)]
    func = {"cdo-inspect": "inspect_entry", "cdo-bench": "bench_main"}.get(name)
    if func is None:
        pytest.skip(f"console script {name} is not installed")
    return [sys.executable, "-c", f"from cdo_deploy.cli import {func}; {func}()"]


@pytest.fixture
def cli():
    """``cli(name, *args, timeout=60)`` runs a console script to completion."""

    def run(name: str, *args: object, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(_script(name) + [str(a) for a in args], capture_output=True, text=True,
                              timeout=timeout, **kw)

    return run


@pytest.fixture
def cli_popen():
    """``cli_popen(name, *args)`` starts a console script; killed at teardown if still running."""
    procs: list[subprocess.Popen] = []

    def start(name: str, *args: object, **kw) -> subprocess.Popen:
        p = subprocess.Popen(_script(name) + [str(a) for a in args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, **kw)
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def read_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture
def records():
    """``records(path)`` -> list of results.jsonl records."""
    return read_records


@pytest.fixture
def wait():
    """``wait(predicate, timeout=20)`` polls until true; returns the last value."""
    return wait_for


def _mosquitto_exe() -> str:
    exe = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.path.exists(p)), None)
    if exe is None:
        pytest.skip("mosquitto broker binary not installed (apt-get install mosquitto; .ci/run does it)")
    return exe


@pytest.fixture
def unused_port() -> int:
    """A loopback TCP port nothing listens on."""
    return free_port()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory):
    """A real mosquitto broker on a free loopback port: yields (host, port)."""
    broker = Broker(_mosquitto_exe(), tmp_path_factory.mktemp("mosquitto"), persistence=False).start()
    yield broker.host, broker.port
    broker.stop()


@pytest.fixture
def broker(tmp_path: Path):
    """A stoppable, restartable mosquitto with persistence (not started yet): a ``Broker``."""
    folder = tmp_path / "broker"
    folder.mkdir()
    b = Broker(_mosquitto_exe(), folder)
    yield b
    b.stop()


@pytest.fixture
def subscriber():
    """``subscriber(host, port, topic, persistent=False)`` -> a connected ``Subscriber`` (closed at teardown)."""
    subs: list[Subscriber] = []

    def make(host: str, port: int, topic: str, persistent: bool = False) -> Subscriber:
        subs.append(Subscriber(host, port, topic, persistent))
        return subs[-1]

    yield make
    for s in subs:
        s.close()
