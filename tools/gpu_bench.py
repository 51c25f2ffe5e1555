"""The fair eager baseline and the fast path, in one process: device-only and host-to-host throughput.

``cdo-bench --torch RUN`` compares against ``cdo_train.api`` ``predict``: fp32, a CPU uint8->float
conversion, a pageable fp32 upload and (on CUDA) the fused Triton head -- not what a PyTorch user
would write, so it overstates the fast path's speed-up. This tool measures, per batch size:

* ``eager-fair``: the trained model as a PyTorch user would run it: eval, channels-last, the
  backbones under fp16 autocast (CUDA), the reference (unfused) head in fp32, uint8 images copied
  into pinned memory, uploaded ``non_blocking`` and converted on the device;
* ``eager-fair+graph``: the same module captured into one CUDA graph per batch size (the plain-
  PyTorch ceiling: no launch overhead, same kernels);
* ``aoti``: the fast path, the bundle's AOTInductor package through ``cdo_deploy``'s torch backend
  (host to host) and called directly on device tensors, in a CUDA graph when capturable (device only).

Two figures per row: ``device_only`` (input already on the device, outputs left there; ms per batch
from CUDA events around ``iters`` calls, images/s) and ``host_to_host`` (uint8 numpy in host memory
to maps and scores in host numpy; p50/p99 ms per call, images/s from the mean). Each row has its ratio
to ``eager-fair`` at the same batch, and the bytes it moves across PCIe per image (to tell launches,
memory traffic and arithmetic apart). On CPU (tests) the same code runs in fp32 without pinning,
graphs or CUDA events.

Usage::

    python tools/gpu_bench.py --run RUN_DIR [--bundle BUNDLE] [--batch 1,64] [--iters 100] --json OUT.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["fair_eager", "main", "measure"]


def fair_eager(model: torch.nn.Module, device: torch.device) -> Callable[[torch.Tensor], tuple]:
    """``image uint8 (B, H, W, 3) on device -> (map (B, 1, H, W), score (B,))`` the way a user writes it."""
    from cdo_train.model.triton_head import reference_level_sum

    model = model.eval().to(device=device, memory_format=torch.channels_last)
    head = model.head
    cuda = device.type == "cuda"

    @torch.inference_mode()
    def run(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = image.permute(0, 3, 1, 2).float().div_(255.0)  # NHWC storage = channels-last NCHW
        with torch.autocast(device.type, dtype=torch.float16, enabled=cuda):
            fe, fa = model.features(x)
        d = head.blur(reference_level_sum([f.float() for f in fe], [f.float() for f in fa]))
        amap = F.interpolate(d, size=head.image_size, mode="bilinear", align_corners=False)
        return amap, head.score(amap)

    return run


class _Timer:
    """ms of GPU work between ``start`` and ``stop`` (CUDA events), or wall time on CPU."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def start(self) -> None:
        if self.cuda:
            self._a, self._b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self._a.record()
        else:
            self._t = time.perf_counter()

    def stop(self) -> float:
        if self.cuda:
            self._b.record()
            self._b.synchronize()
            return float(self._a.elapsed_time(self._b))
        return (time.perf_counter() - self._t) * 1e3


def _graphed(fn: Callable[[torch.Tensor], tuple], x: torch.Tensor) -> Callable[[], Any] | None:
    """``fn(x)`` captured into a CUDA graph (after warm-up on a side stream); None if refused."""
    try:
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                fn(x)
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            out = fn(x)
        return lambda: (g.replay(), out)[1]
    except Exception as e:  # noqa: BLE001 - a refused capture is a row note, not a failure
        print(f"graph capture refused: {type(e).__name__}: {e}")
        return None


def _device_only(step: Callable[[], Any], batch: int, timer: _Timer, warmup: int, iters: int) -> dict[str, float]:
    for _ in range(warmup):
        step()
    timer.start()
    for _ in range(iters):
        step()
    ms = timer.stop() / iters
    return {"ms_per_batch": round(ms, 4), "images_per_s": round(batch * 1e3 / ms, 1)}


def _host_to_host(call: Callable[[np.ndarray], Any], images: np.ndarray, warmup: int, iters: int) -> dict[str, float]:
    for _ in range(warmup):
        call(images)
    ms = []
    for _ in range(iters):
        t = time.perf_counter()
        call(images)
        ms.append((time.perf_counter() - t) * 1e3)
    a = np.asarray(ms)
    return {"p50_ms": round(float(np.percentile(a, 50)), 4), "p99_ms": round(float(np.percentile(a, 99)), 4),
            "mean_ms": round(float(a.mean()), 4), "images_per_s": round(len(images) * 1e3 / float(a.mean()), 1)}


def _eager_rows(model: torch.nn.Module, device: torch.device, images: np.ndarray, batch: int, warmup: int,
                iters: int) -> list[dict[str, Any]]:
    run = fair_eager(model, device)
    cuda, timer = device.type == "cuda", _Timer(device)
    pinned = torch.empty(images[:batch].shape, dtype=torch.uint8, pin_memory=cuda)
    x = torch.empty(pinned.shape, dtype=torch.uint8, device=device)
    x.copy_(torch.from_numpy(images[:batch]))

    def h2h(imgs: np.ndarray, fn: Callable[[], tuple] = lambda: run(x)) -> tuple[np.ndarray, np.ndarray]:
        pinned.numpy()[:] = imgs
        x.copy_(pinned, non_blocking=True)
        amap, score = fn()
        return amap.cpu().numpy(), score.cpu().numpy()

    rows = [{"name": "eager-fair", "device_only": _device_only(lambda: run(x), batch, timer, warmup, iters),
             "host_to_host": _host_to_host(h2h, images[:batch], warmup, iters)}]
    replay = _graphed(run, x) if cuda else None
    if replay is not None:
        rows.append({"name": "eager-fair+graph", "device_only": _device_only(replay, batch, timer, warmup, iters),
                     "host_to_host": _host_to_host(lambda im: h2h(im, replay), images[:batch], warmup, iters)})
    elif cuda:
        rows.append({"name": "eager-fair+graph", "status": "failed", "note": "CUDA graph capture refused"})
    return rows


def _aoti_row(package: Path, device: torch.device, images: np.ndarray, batch: int, warmup: int,
              iters: int) -> dict[str, Any]:
    from cdo_deploy.backends import create_backend

    row: dict[str, Any] = {"name": "aoti", "package": package.name}
    be = create_backend("torch", package, device=str(device), max_batch=batch)
    try:
        row["host_to_host"] = _host_to_host(lambda im: be.infer(im), images[:batch], warmup, iters)
        row["device_label"] = be.device_label
    finally:
        be.close()
    loaded = torch._inductor.aoti_load_package(str(package), run_single_threaded=device.type == "cuda")
    x = torch.from_numpy(images[:batch]).to(device)
    step = _graphed(loaded, x) if device.type == "cuda" else None
    row["device_only"] = _device_only(step or (lambda: loaded(x)), batch, _Timer(device), warmup, iters)
    row["device_only"]["cuda_graph"] = step is not None
    return row


def measure(model: torch.nn.Module, device: str | torch.device, batches: tuple[int, ...], package: Path | None = None,
            warmup: int = 10, iters: int = 100, seed: int = 0) -> dict[str, Any]:
    """All rows for ``batches``; a row that raises becomes ``status: failed`` with the reason.

    Args:
        model: a trained ``CDOModel`` (moved to ``device``, channels-last).
        device: ``cpu`` or ``cuda[:N]``.
        batches: batch sizes.
        package: the bundle's AOTInductor package for the ``aoti`` rows (None: no such rows).
        warmup, iters: untimed and timed calls per figure.

    Returns:
        ``{"device", "torch", "image_size", "rows": [...]}``; rows carry ``ratio_vs_eager_fair``.
    """
    device = torch.device(device)
    h, w = model.head.image_size
    images = np.random.default_rng(seed).integers(0, 256, (max(batches), h, w, 3), dtype=np.uint8)
    rows: list[dict[str, Any]] = []
    for b in batches:
        found = []
        for name, fn in (("eager-fair", lambda: _eager_rows(model, device, images, b, warmup, iters)),
                         ("aoti", lambda: [_aoti_row(package, device, images, b, warmup, iters)] if package else [])):
            try:
                found += fn()
            except Exception as e:  # noqa: BLE001 - every row is reported, failures included
                found.append({"name": name, "status": "failed", "note": f"{type(e).__name__}: {e}"})
        base = next((r for r in found if r["name"] == "eager-fair" and "device_only" in r), None)
        for r in found:
            r.setdefault("status", "ok")
            r["batch"] = b
            r["h2d_bytes_per_image"], r["d2h_bytes_per_image"] = h * w * 3, h * w * 4 + 4
            if base is not None and r["status"] == "ok":
                r["ratio_vs_eager_fair"] = {k: round(r[k]["images_per_s"] / base[k]["images_per_s"], 2)
                                            for k in ("device_only", "host_to_host") if k in r}
        rows += found
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {"device": name, "torch": torch.__version__, "image_size": [h, w], "rows": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, help="cdo-train run folder")
    p.add_argument("--bundle", help="bundle with an AOTInductor package (model_aoti_*.pt2) for the aoti rows")
    p.add_argument("--device", default="cuda:0")
    p.add_argument("--batch", default="1,64")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--json", required=True)
    a = p.parse_args(argv)
    from cdo_train.training.saved_model import load_model

    package = None
    if a.bundle:
        found = sorted(Path(a.bundle).glob("model_aoti_*.pt2"))
        package = found[0] if found else None
    doc = measure(load_model(a.run, a.device), a.device, tuple(int(b) for b in a.batch.split(",")), package,
                  a.warmup, a.iters)
    Path(a.json).write_text(json.dumps(doc, indent=2) + "\n")
    for r in doc["rows"]:
        print(json.dumps(r))
    return 0 if all(r["status"] == "ok" for r in doc["rows"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
