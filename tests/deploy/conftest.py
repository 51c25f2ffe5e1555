"""Shared fixtures for the cdo_deploy tests: a tiny bundle, demo images, CLI runners.

The tiny bundle is a real ONNX graph built with ``onnx.helper`` (no torch):
    image uint8 (B, H, W, 3) -> Cast float -> ReduceMean over channels
    -> Transpose to (B, 1, H, W) -> / 255 = anomaly_map;  score = ReduceMax(map).
So the anomaly map is the brightness in [0, 1]: dark textured "good" parts
score about 0.45, parts with a white patch score 1.0. Thresholds: image 0.75,
pixel 0.7.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

SIZE = 32
IMAGE_THRESHOLD = 0.75
PIXEL_THRESHOLD = 0.7
BIN = Path(sys.executable).parent


def build_tiny_onnx(path: Path, size: int = SIZE) -> None:
    """Write the brightness 'anomaly model' described in the module docstring."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f"], ["grey"], axes=[3], keepdims=1),
        helper.make_node("Transpose", ["grey"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Div", ["nchw", "k255"], ["anomaly_map"]),
        helper.make_node("ReduceMax", ["anomaly_map"], ["score"], axes=[1, 2, 3], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "tiny_cdo",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["B", size, size, 3])],
        [helper.make_tensor_value_info("anomaly_map", TensorProto.FLOAT, ["B", 1, size, size]),
         helper.make_tensor_value_info("score", TensorProto.FLOAT, ["B"])],
        initializer=[helper.make_tensor("k255", TensorProto.FLOAT, [], [255.0])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


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
    """A session-wide bundle folder: model.onnx (32x32) + model.json."""
    from cdo_deploy.bundle import BundleMeta

    d = tmp_path_factory.mktemp("bundle")
    build_tiny_onnx(d / "model.onnx")
    BundleMeta(
        height=SIZE, width=SIZE, backbone="tiny-brightness", image_threshold=IMAGE_THRESHOLD,
        pixel_threshold=PIXEL_THRESHOLD, threshold_source="test",
        normal_stats={"n": 20, "mean": 0.45, "std": 0.03, "p50": 0.45, "p95": 0.5, "p99": 0.55, "max": 0.56},
    ).save(d)
    return d


def make_part(ng: bool, h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """A BGR uint8 'part': dark noisy texture; NG parts carry a white 32x40 patch."""
    rng = np.random.default_rng(seed)
    img = rng.integers(40, 110, size=(h, w, 3), dtype=np.uint8)
    if ng:
        y, x = h // 4 + seed % 8, w // 2
        img[y:y + 32, x:x + 40] = 255
    return img


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


def wait_for(pred, timeout: float = 20.0, every: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(every)
    return bool(pred())


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A real mosquitto on a loopback port that a test can stop and start again.

    With ``persistence`` the broker keeps persistent sessions and their queued
    QoS 1 messages across a restart (saved when it is stopped with SIGTERM).
    """

    def __init__(self, exe: str, folder: Path, persistence: bool = True) -> None:
        self.exe, self.host, self.port = exe, "127.0.0.1", free_port()
        self.conf = folder / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true", f"persistence {str(persistence).lower()}"]
        if persistence:  # as root mosquitto would switch to user 'mosquitto', who cannot write the test folder
            lines += [f"persistence_location {folder}/", "autosave_interval 1", "max_queued_messages 0",
                      f"user {getpass.getuser()}"]
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None

    @property
    def spec(self) -> str:
        return f"{self.host}:{self.port}"

    def up(self) -> bool:
        with socket.socket() as c:
            return c.connect_ex((self.host, self.port)) == 0

    def start(self) -> "Broker":
        self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        if not wait_for(self.up, 10):
            self.proc.kill()
            pytest.fail(f"mosquitto did not start: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


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


class Subscriber:
    """A paho subscriber collecting the JSON payloads of a topic filter.

    ``persistent``: a fixed client id with ``clean_session=False``, so the broker
    queues QoS 1 messages for it while it is away (also across a broker restart
    with persistence); it reconnects by itself.
    """

    def __init__(self, host: str, port: int, topic: str, persistent: bool = False) -> None:
        import threading

        import paho.mqtt.client as mqtt

        self.messages: list[dict] = []
        self._ready = threading.Event()
        cid = f"test-sub-{os.getpid()}-{time.monotonic_ns()}"
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid,
                                  clean_session=not persistent)
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._ready.set()
        self.client.on_message = lambda c, u, msg: self.messages.append(json.loads(msg.payload))
        self.client.connect(host, port)
        self.client.loop_start()
        assert self._ready.wait(10), "subscription not acknowledged"

    @property
    def ids(self) -> set[str]:
        return {m.get("id") for m in list(self.messages)}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


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
