"""The deploy bundle: ``model.onnx`` + ``model.json``, the contract between
``cdo-export`` (writes it) and ``cdo-inspect`` / ``cdo-bench`` (read it).

Graph contract (format version 1):
    input  ``image``        uint8  (B, H, W, 3), NHWC, channel order ``RGB``,
                             already resized to the model resolution (H, W).
    output ``anomaly_map``  float32 (B, 1, H, W): blurred teacher/student discrepancy.
    output ``score``        float32 (B,): image score (max or top-k mean of the map).
Everything from the uint8 cast to the score runs inside the graph.

``model.json`` (also stored as ONNX metadata under key ``cdo``) holds::

    format, format_version, input{name,height,width,channels,channel_order,layout,dtype},
    outputs[...], backbone, levels, blur_sigma, score_rule{kind,k},
    thresholds{image,pixel,source}, normal_stats{n,mean,std,p50,p95,p99,max},
    train{...resolved config...}, metrics{...}, onnx_sha256,
    variants{name: file}  (e.g. fp32 -> model.onnx, fp16 -> model_fp16.onnx),
    engines{name: file}   (TensorRT engines built on the target machine)

Example:
    >>> meta = BundleMeta(height=64, width=64, backbone="resnet18")
    >>> BundleMeta.from_dict(meta.to_dict()).height
    64
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CdoError

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_FORMAT_VERSION",
    "INPUT_NAME",
    "OUTPUT_NAMES",
    "META_FILE",
    "ONNX_FILE",
    "BundleMeta",
    "load_bundle_meta",
    "sha256_file",
]

BUNDLE_FORMAT = "cdo-bundle"
BUNDLE_FORMAT_VERSION = 1
INPUT_NAME = "image"
OUTPUT_NAMES = ("anomaly_map", "score")
META_FILE = "model.json"
ONNX_FILE = "model.onnx"


@dataclass
class BundleMeta:
    """Everything the runtime needs besides the graph itself."""

    height: int
    width: int
    backbone: str
    channel_order: str = "RGB"
    levels: list[int] = field(default_factory=lambda: [1, 2, 3])
    blur_sigma: float = 4.0
    score_rule: dict[str, Any] = field(default_factory=lambda: {"kind": "max"})
    image_threshold: float | None = None
    pixel_threshold: float | None = None
    threshold_source: str = "none"
    normal_stats: dict[str, float] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    onnx_sha256: str = ""
    variants: dict[str, str] = field(default_factory=lambda: {"fp32": ONNX_FILE})
    engines: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        out: dict[str, Any] = {
            "format": BUNDLE_FORMAT,
            "format_version": BUNDLE_FORMAT_VERSION,
            "input": {
                "name": INPUT_NAME,
                "height": d.pop("height"),
                "width": d.pop("width"),
                "channels": 3,
                "channel_order": d.pop("channel_order"),
                "layout": "NHWC",
                "dtype": "uint8",
            },
            "outputs": [
                {"name": "anomaly_map", "dtype": "float32", "shape": ["B", 1, "H", "W"]},
                {"name": "score", "dtype": "float32", "shape": ["B"]},
            ],
            "thresholds": {
                "image": d.pop("image_threshold"),
                "pixel": d.pop("pixel_threshold"),
                "source": d.pop("threshold_source"),
            },
        }
        out.update(d)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BundleMeta":
        if d.get("format") != BUNDLE_FORMAT:
            raise CdoError(f"not a cdo bundle description (format={d.get('format')!r})")
        version = d.get("format_version")
        if version != BUNDLE_FORMAT_VERSION:
            raise CdoError(
                f"bundle format version {version} is not supported by this cdo "
                f"(supports {BUNDLE_FORMAT_VERSION}); re-export with a matching cdo-export"
            )
        try:
            inp = d["input"]
            thr = d.get("thresholds", {})
            known = {f.name for f in dataclasses.fields(cls)}
            rest = {k: v for k, v in d.items() if k in known}
            return cls(
                height=int(inp["height"]),
                width=int(inp["width"]),
                channel_order=str(inp.get("channel_order", "RGB")),
                image_threshold=thr.get("image"),
                pixel_threshold=thr.get("pixel"),
                threshold_source=str(thr.get("source", "none")),
                **rest,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise CdoError(f"bundle description is incomplete or malformed: {e}") from None

    def save(self, bundle_dir: str | Path) -> Path:
        path = Path(bundle_dir) / META_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")
        return path


def load_bundle_meta(bundle_dir: str | Path) -> BundleMeta:
    """Read and validate ``model.json`` of a bundle folder.

    Raises:
        CdoError: the folder or file is missing or malformed.
    """
    bundle = Path(bundle_dir)
    if not bundle.is_dir():
        raise CdoError(f"no such bundle folder: {bundle} (create one with cdo-export RUN_DIR -o {bundle})")
    meta_path = bundle / META_FILE
    if not meta_path.is_file():
        raise CdoError(f"{meta_path} is missing: {bundle} is not a cdo bundle (run cdo-export)")
    try:
        data = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CdoError(f"cannot read {meta_path}: {e}") from None
    return BundleMeta.from_dict(data)


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
