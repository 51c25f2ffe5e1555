"""What the deploy tests and the soak run share: the tiny bundle, synthetic parts, a real broker.

* :func:`write_tiny_bundle`: a real ONNX 'brightness' bundle (needs onnx, not torch);
* :func:`make_part`: a synthetic camera image, OK or NG;
* :class:`Broker`: a real mosquitto on a loopback port that can be stopped and restarted;
* :class:`Subscriber`: a paho subscriber collecting what arrives.

The tiny graph: image uint8 (B, H, W, 3) -> Cast float -> ReduceMean over channels
-> Transpose to (B, 1, H, W) -> / 255 = anomaly_map; score = ReduceMax(map).
So the anomaly map is the brightness in [0, 1]: dark textured "good" parts
score about 0.45, parts with a white patch score 1.0.

    python tools/tiny_bundle.py OUT_DIR [--size 32]
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

SIZE = 32
IMAGE_THRESHOLD = 0.75
PIXEL_THRESHOLD = 0.7
NORMAL_STATS = {"n": 20, "mean": 0.45, "std": 0.03, "p50": 0.45, "p95": 0.5, "p99": 0.55, "max": 0.56}


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


def write_tiny_bundle(folder: Path, size: int = SIZE) -> Path:
    """``folder/model.onnx`` + ``model.json`` (thresholds image 0.75, pixel 0.7, hashes recorded)."""
    from cdo_deploy.bundle import BundleMeta

    folder.mkdir(parents=True, exist_ok=True)
    build_tiny_onnx(folder / "model.onnx", size)
    BundleMeta(height=size, width=size, backbone="tiny-brightness", image_threshold=IMAGE_THRESHOLD,
               pixel_threshold=PIXEL_THRESHOLD, threshold_source="test", normal_stats=dict(NORMAL_STATS)).save(folder)
    return folder


def make_part(ng: bool, h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """A BGR uint8 'part': dark noisy texture; NG parts carry a white 32x40 patch."""
    rng = np.random.default_rng(seed)
    img = rng.integers(40, 110, size=(h, w, 3), dtype=np.uint8)
    if ng:
        y, x = h // 4 + seed % 8, w // 2
        img[y:y + 32, x:x + 40] = 255
    return img


def wait_for(pred, timeout: float = 20.0, every: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(every)
    return bool(pred())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A real mosquitto on a free loopback port that can be stopped and started again.

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
            err = self.proc.stderr.read().decode() if self.proc.stderr else ""
            raise RuntimeError(f"mosquitto did not start: {err}")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


class Subscriber:
    """A paho subscriber collecting the JSON payloads of a topic filter.

    ``persistent``: a fixed client id with ``clean_session=False``, so the broker
    queues QoS 1 messages for it while it is away (also across a broker restart
    with persistence); it reconnects by itself.
    """

    def __init__(self, host: str, port: int, topic: str, persistent: bool = False) -> None:
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
        if not self._ready.wait(10):
            raise RuntimeError(f"subscription to {topic} on {host}:{port} not acknowledged")

    @property
    def ids(self) -> set[str]:
        return {m.get("id") for m in list(self.messages)}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--size", type=int, default=SIZE)
    a = ap.parse_args()
    print(write_tiny_bundle(a.out, a.size))
