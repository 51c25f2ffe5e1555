"""PyTorch backend: runs an AOTInductor package (``model_aoti_*.pt2``) listed in ``variants``.

PyTorch's own deployment route for GPU machines without TensorRT. The package
is written by ``cdo-export --aoti`` (:mod:`cdo_train.export.aoti`): uint8 NHWC
in, map and score out, pre-processing (cast, /255, normalisation) inside, the
backbones in fp16 channels-last and the fused Triton discrepancy kernel on CUDA.
torch is imported by this backend only, inside ``_load``; ``import cdo_deploy``
and ``availability()`` never load it.

On CUDA, per batch ``B``: the images are copied into a pinned host buffer,
uploaded with a non-blocking copy on the backend's own stream, run, and both
outputs copied back into pinned buffers before one synchronise. With
``cuda_graphs=True`` (default) the first run of a batch size is eager
(warm-up: Triton autotuning, allocator pools), the second captures upload,
model and download into a ``torch.cuda.CUDAGraph`` that later runs replay
(the model alone when the pinned copies cannot be captured); a refused
capture falls back to eager for that batch size. Buffers are
allocated once for ``max_batch`` so the captured addresses stay valid.

On CPU (a package built for CPU) the same class runs the package directly:
no pinning, no graphs. A package runs only on the device kind it was built
for, with the torch version that built it.

Example:
    >>> be = create_backend("torch", "bundle/model_aoti_fp16.pt2", device="cuda:0")  # doctest: +SKIP
    >>> be.infer(images).score                                                       # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import json
import logging
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CdoError
from .base import BACKENDS, Backend

__all__ = ["TorchAotiBackend", "package_metadata"]

log = logging.getLogger(__name__)

_INSTALL = ("pip install torch (the version that built the package; a CUDA build for GPU packages), "
            "or use the onnxruntime backend")


def package_metadata(path: str | Path) -> dict[str, str]:
    """The metadata an AOTI package was compiled with, read from the archive without torch.

    Returns:
        ``{"cdo_device": "cuda", "cdo_max_batch": "64", "cdo_height": ..., "AOTI_DEVICE_KEY": ...}``
        or ``{}`` when the archive holds none (then ``_load`` asks the loaded package).
    """
    try:
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith("wrapper_metadata.json")]
            return dict(json.loads(z.read(names[0]))) if names else {}
    except (OSError, zipfile.BadZipFile, ValueError, KeyError):
        return {}


@BACKENDS.register("torch")
class TorchAotiBackend(Backend):
    """An AOTInductor ``.pt2`` package with pinned buffers, one stream and CUDA graphs per batch size.

    Args:
        model_path: the ``.pt2`` package.
        device: ``auto`` (the package's device; GPU 0 for CUDA packages), ``cpu`` or ``cuda:N``.
        max_batch: capped to the package's largest batch.
        cuda_graphs: capture and replay a CUDA graph per batch size (CUDA only).
    """

    name = "torch"
    install_hint = _INSTALL

    def __init__(self, model_path: Any, device: str = "auto", max_batch: int = 32, cuda_graphs: bool = True) -> None:
        super().__init__(model_path, device, max_batch)
        self.cuda_graphs = cuda_graphs
        self._graphs: dict[int, Any] = {}
        self._warm: set[int] = set()
        self._refused: set[int] = set()
        self._model: Any = None
        self._stream: Any = None
        self._cuda = False

    @classmethod
    def availability(cls) -> str | None:
        try:
            spec = importlib.util.find_spec("torch")  # finding, not importing: cdo_deploy stays torch-free
        except (ImportError, ValueError):
            spec = None
        if spec is None or spec.origin is None:
            return f"PyTorch is not installed ({_INSTALL})"
        return None

    def _target(self, package_device: str) -> tuple[str, int]:
        kind, _, idx = self.device.partition(":")
        if kind not in ("auto", "cpu", "cuda"):
            raise CdoError(f"torch backend: bad device {self.device!r} (use auto, cpu or cuda[:N])")
        if kind != "auto" and kind != package_device:
            raise CdoError(f"{self.model_path.name} was compiled for {package_device}, not {kind}: use "
                           f"--device {package_device if package_device == 'cpu' else 'cuda:N'} or rebuild "
                           f"the package on this machine (cdo-export --aoti)")
        try:
            return package_device, int(idx or 0)
        except ValueError:
            raise CdoError(f"torch backend: bad device {self.device!r} (use cuda[:N])") from None

    def _load(self) -> None:
        import torch

        self._torch = torch
        meta = package_metadata(self.model_path)
        device, gpu = self._target(meta.get("cdo_device") or meta.get("AOTI_DEVICE_KEY") or "cpu")
        self._cuda = device == "cuda"
        if self._cuda and not torch.cuda.is_available():
            raise CdoError(f"{self.model_path.name} was compiled for CUDA and this machine has no usable GPU "
                           f"(torch {torch.__version__}); use the onnxruntime backend or a CPU package")
        if self._cuda and gpu >= torch.cuda.device_count():
            raise CdoError(f"--device {self.device}: only {torch.cuda.device_count()} GPU(s) present")
        self._dev = torch.device("cuda", gpu) if self._cuda else torch.device("cpu")
        try:
            if self._cuda:
                torch.cuda.set_device(self._dev)
                self._model = torch._inductor.aoti_load_package(
                    str(self.model_path), run_single_threaded=self.cuda_graphs, device_index=gpu)
            else:
                self._model = torch._inductor.aoti_load_package(str(self.model_path))
        except Exception as e:  # the loader raises RuntimeError for wrong torch/device/corrupt files
            raise CdoError(f"torch cannot load {self.model_path} (built with another torch version or for "
                           f"another device? rebuild it here with cdo-export --aoti): {e}") from None
        meta = {**self._model.get_metadata(), **meta}
        if "cdo_height" in meta and "cdo_width" in meta:
            self.input_hw = (int(meta["cdo_height"]), int(meta["cdo_width"]))
        package_max = int(meta.get("cdo_max_batch", self.max_batch))
        if package_max < self.max_batch:
            log.warning("%s: package accepts batch <= %d; capping max_batch %d", self.model_path.name,
                        package_max, self.max_batch)
            self.max_batch = package_max
        if self._cuda:
            self._alloc_cuda()
            name = torch.cuda.get_device_name(self._dev)
            self.device_label = (f"{self._dev} {name} torch {torch.__version__} "
                                 f"{meta.get('cdo_precision', '')}{' +graphs' if self.cuda_graphs else ''}")
        else:
            self.device_label = f"cpu torch {torch.__version__} {meta.get('cdo_precision', '')}".rstrip()

    def _alloc_cuda(self) -> None:
        torch = self._torch
        if self.input_hw is None:
            raise CdoError(f"{self.model_path}: package has no cdo_height/cdo_width metadata (re-export it)")
        h, w = self.input_hw
        n = self.max_batch
        self._stream = torch.cuda.Stream(self._dev)
        self._host_in = torch.empty((n, h, w, 3), dtype=torch.uint8, pin_memory=True)
        self._host_in_np = self._host_in.numpy()
        self._dev_in = torch.zeros((n, h, w, 3), dtype=torch.uint8, device=self._dev)
        self._host_map = torch.empty((n, 1, h, w), dtype=torch.float32, pin_memory=True)
        self._host_score = torch.empty((n,), dtype=torch.float32, pin_memory=True)

    def _upload(self, batch: int) -> None:
        self._dev_in[:batch].copy_(self._host_in[:batch], non_blocking=True)

    def _run(self, batch: int) -> tuple[Any, Any]:
        return self._model(self._dev_in[:batch])

    def _download(self, batch: int, maps: Any, scores: Any) -> None:
        self._host_map[:batch].copy_(maps, non_blocking=True)
        self._host_score[:batch].copy_(scores.reshape(-1), non_blocking=True)

    def _capture(self, batch: int) -> tuple[Any, Any, Any, bool] | None:
        """A CUDA graph for ``batch``: ``(graph, maps, scores, with_copies)`` or ``None`` if refused.

        First try upload + model + download in one graph; if torch refuses to
        capture the pinned-memory copies, capture the model alone (the copies
        then run as plain async copies around the replay).
        """
        torch = self._torch
        errors = []
        for with_copies in (True, False):
            graph = torch.cuda.CUDAGraph()
            try:
                with torch.inference_mode(), torch.cuda.graph(graph, stream=self._stream):
                    if with_copies:
                        self._upload(batch)
                    maps, scores = self._run(batch)
                    if with_copies:
                        self._download(batch, maps, scores)
                return graph, maps, scores, with_copies
            except Exception as e:  # noqa: BLE001 - any capture failure means: try less, then run eager
                errors.append(f"{type(e).__name__}: {e}")
                torch.cuda.synchronize(self._dev)
        log.warning("%s: CUDA graph capture refused for batch %d (%s); running eager", self.model_path.name,
                    batch, " / ".join(errors))
        return None

    def _infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        batch = images.shape[0]
        if not self._cuda:
            with torch.inference_mode():
                maps, scores = self._model(torch.from_numpy(images))
            return maps.numpy(), scores.reshape(-1).numpy()
        self._host_in_np[:batch] = images
        graph = self._graphs.get(batch)
        if graph is None and self.cuda_graphs and batch in self._warm and batch not in self._refused:
            graph = self._capture(batch)  # capture records the work without running it
            if graph is None:
                self._refused.add(batch)
            else:
                self._graphs[batch] = graph
        with torch.cuda.stream(self._stream), torch.inference_mode():
            if graph is None:
                self._upload(batch)
                self._download(batch, *self._run(batch))
            elif graph[3]:  # upload, model and download in the graph
                graph[0].replay()
            else:
                self._upload(batch)
                graph[0].replay()
                self._download(batch, graph[1], graph[2])
        self._stream.synchronize()
        self._warm.add(batch)
        return self._host_map[:batch].numpy().copy(), self._host_score[:batch].numpy().copy()

    @property
    def graph_batches(self) -> list[int]:
        """Batch sizes that replay a captured CUDA graph."""
        return sorted(self._graphs)

    @property
    def graph_copies(self) -> dict[int, bool]:
        """Per captured batch size: whether the pinned upload/download are inside the graph."""
        return {b: g[3] for b, g in sorted(self._graphs.items())}

    def _close(self) -> None:
        """Drop graphs, buffers and the package; tolerates a half-finished ``_load``."""
        if self._cuda:
            log.info("%s: CUDA graphs for batches %s (copies inside: %s), eager for %s", self.model_path.name,
                     self.graph_batches, self.graph_copies, sorted(self._refused))
        if self._stream is not None:
            self._stream.synchronize()
        self._graphs.clear()
        for attr in ("_host_in", "_host_in_np", "_dev_in", "_host_map", "_host_score", "_model"):
            if hasattr(self, attr):
                setattr(self, attr, None)
        self._stream = None
