"""A Triton Inference Server model repository for a bundle.

Lines with many cameras can send images to one existing Triton server instead
of running one ``cdo-inspect`` process per camera. Layout written::

    <repo>/<model>/config.pbtxt     platform onnxruntime_onnx, dynamic batching
    <repo>/<model>/1/model.onnx     the bundle's fp32 graph (same file, same hash)
    <repo>/<model>/model.json       thresholds and normal statistics for clients

With ``max_batch_size > 0`` Triton owns the batch dimension, so ``dims`` are
per image: ``image`` uint8 ``[H, W, 3]``, ``anomaly_map`` fp32 ``[1, H, W]``.
``score`` is ``(B,)`` in the graph; a tensor with only a batch dimension is
declared ``dims: [ 1 ]`` with ``reshape: { shape: [ ] }`` (Triton's documented
rule), so clients receive ``(B, 1)``.

Example:
    >>> text = config_pbtxt("cdo", 64, 64, max_batch=32, preferred=(8, 32))
    >>> "TYPE_UINT8" in text and "reshape: { shape: [ ] }" in text
    True
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from cdo_deploy.bundle import INPUT_NAME, META_FILE, ONNX_FILE
from cdo_deploy.errors import CdoError

__all__ = ["config_pbtxt", "write_triton_repo"]


def config_pbtxt(name: str, height: int, width: int, max_batch: int, preferred: tuple[int, ...],
                 max_queue_delay_us: int = 2000) -> str:
    """The ``config.pbtxt`` text (protobuf text format of Triton's ``ModelConfig``).

    Args:
        name: model name (= its folder name in the repository).
        height, width: model input size.
        max_batch: ``max_batch_size`` (largest batch the dynamic batcher forms).
        preferred: preferred batch sizes of the dynamic batcher (each <= ``max_batch``).
        max_queue_delay_us: longest wait for a batch to fill, microseconds.
    """
    sizes = ", ".join(str(b) for b in sorted({min(int(b), max_batch) for b in preferred}))
    return f"""# cdo anomaly model, written by cdo-export: uint8 RGB images in, anomaly map and score out.
# Thresholds and normal-score statistics: model.json next to this file.
name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: {max_batch}
input [
  {{
    name: "{INPUT_NAME}"
    data_type: TYPE_UINT8
    format: FORMAT_NHWC
    dims: [ {height}, {width}, 3 ]
  }}
]
output [
  {{
    name: "anomaly_map"
    data_type: TYPE_FP32
    dims: [ 1, {height}, {width} ]
  }},
  {{
    name: "score"
    data_type: TYPE_FP32
    dims: [ 1 ]
    reshape: {{ shape: [ ] }}
  }}
]
dynamic_batching {{
  preferred_batch_size: [ {sizes} ]
  max_queue_delay_microseconds: {max_queue_delay_us}
}}
version_policy: {{ latest: {{ num_versions: 1 }} }}
"""


def write_triton_repo(bundle_dir: Path, repo: Path, name: str, height: int, width: int, max_batch: int,
                      opt_batch: int, force: bool = False) -> Path:
    """Write ``<repo>/<name>/`` from a finished bundle folder; returns its ``config.pbtxt``.

    The model folder is assembled under a temporary name and renamed into
    place, so a failure never leaves a half-written model.

    Raises:
        CdoError: ``<repo>/<name>`` exists and ``force`` is not set, or ``repo`` is a file.
    """
    repo = Path(repo)
    if repo.exists() and not repo.is_dir():
        raise CdoError(f"--triton-repo {repo} is a file, not a folder")
    target = repo / name
    if target.exists() and not force:
        raise CdoError(f"{target} already exists (pass --force to replace it)")
    if target.exists() and not (target / "config.pbtxt").is_file():
        raise CdoError(f"{target} is not a Triton model folder (no config.pbtxt); refusing to replace it")
    repo.mkdir(parents=True, exist_ok=True)
    tmp = repo / f".{name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        (tmp / "1").mkdir(parents=True)
        shutil.copy2(bundle_dir / ONNX_FILE, tmp / "1" / ONNX_FILE)
        shutil.copy2(bundle_dir / META_FILE, tmp / META_FILE)
        (tmp / "config.pbtxt").write_text(config_pbtxt(name, height, width, max_batch, (opt_batch, max_batch)))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target / "config.pbtxt"
