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
    outputs[...], backbone, levels, blur_sigma, score_rule{kind,k,levels},
    thresholds{image,pixel,source}, normal_stats{n,mean,std,p50,p95,p99,max},
    train{...resolved config...}, metrics{...}, onnx_sha256,
    variants{name: file}  (e.g. fp32 -> model.onnx, fp16 -> model_fp16.onnx),
    engines{name: file}   (TensorRT engines built on the target machine),
    openvino{name: file}  (OpenVINO IRs, cdo-export --openvino: model_openvino*.xml + .bin),
    sha256{file: hex}     (SHA-256 of every model file listed above, an IR's .bin included),
    calibration_images[]  (the good training images export checked and calibrated on; absolute
                           paths on the training machine; cdo-bench times them where readable),
    int8_check{...}       (cdo-export --int8: int8 against fp32 on held-out good and test images,
                           the tolerance, the measured deltas and whether it passed),
    variant_thresholds{variant: {image, pixel, source, normal_stats}}  (a variant's own thresholds,
                           re-calibrated on its outputs by training's rule; used when it runs)

Integrity: :meth:`BundleMeta.save` records the SHA-256 of every listed model
file present in the folder (so ``cdo-export``, ``--aoti`` and ``build-engine``
all record what they add), and :func:`load_bundle_meta` checks every listed
file that is present against it (``cdo-bench``, which runs them all); the
``Inspector`` behind ``cdo-inspect`` checks only the file(s) it runs
(:func:`verify_model_files`), so start-up does not hash every variant. A
changed, swapped or unhashed file is a one-line ``CdoError`` naming the file. ``onnx_sha256`` stays as the hash of
``model.onnx`` for older readers (and is accepted for it when ``sha256`` lacks it).

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
from typing import Any, Iterable

from .errors import CdoError

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_FORMAT_VERSION",
    "INPUT_NAME",
    "OUTPUT_NAMES",
    "META_FILE",
    "ONNX_FILE",
    "BundleMeta",
    "listed_files",
    "load_bundle_meta",
    "record_sha256",
    "sha256_file",
    "verify_bundle_files",
    "verify_model_files",
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
    sha256: dict[str, str] = field(default_factory=dict)
    openvino: dict[str, str] = field(default_factory=dict)
    calibration_images: list[str] = field(default_factory=list)
    int8_check: dict[str, Any] = field(default_factory=dict)
    variant_thresholds: dict[str, dict[str, Any]] = field(default_factory=dict)

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
        """Write ``model.json``, first recording the SHA-256 of every listed model file present.

        Hashes of files no longer listed or absent are dropped; ``onnx_sha256``
        follows ``model.onnx``. Returns the path written.
        """
        bundle = Path(bundle_dir)
        hashes = {}
        for rel in listed_files(self):
            if (bundle / rel).is_file():
                hashes[rel] = record_sha256(self, bundle, rel)
        self.sha256 = hashes
        path = bundle / META_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")
        return path


def listed_files(meta: BundleMeta) -> list[str]:
    """Model files ``model.json`` lists (``variants``, ``engines``, ``openvino`` IRs with their ``.bin``
    weights), relative to the bundle, in order."""
    irs = [f for xml in meta.openvino.values() for f in (xml, str(Path(xml).with_suffix(".bin")))]
    return list(dict.fromkeys([*meta.variants.values(), *meta.engines.values(), *irs]))


def record_sha256(meta: BundleMeta, bundle_dir: str | Path, rel: str) -> str:
    """Hash ``bundle_dir/rel`` and record it in ``meta.sha256`` (and ``onnx_sha256`` for model.onnx).

    Call it (or :meth:`BundleMeta.save`, which calls it for every listed file)
    whenever a model file is added to the bundle, e.g. after building an engine.

    Returns:
        The hex digest.
    """
    digest = sha256_file(Path(bundle_dir) / rel)
    meta.sha256[rel] = digest
    if rel == ONNX_FILE:
        meta.onnx_sha256 = digest
    return digest


def verify_bundle_files(bundle_dir: str | Path, meta: BundleMeta) -> None:
    """Check every listed model file that is present against its recorded SHA-256.

    Files listed but absent are not checked here (the backends report them
    when asked to run one). About 2 ms per 20 MB file.

    Raises:
        CdoError: a file has no recorded hash, or its content does not match.
    """
    verify_model_files(bundle_dir, meta, listed_files(meta))


def verify_model_files(bundle_dir: str | Path, meta: BundleMeta, files: Iterable[str]) -> dict[str, str]:
    """Check the listed model files among ``files`` (relative to the bundle) that are present.

    ``cdo-inspect`` verifies only the file(s) it runs (:class:`cdo_deploy.Inspector`);
    ``cdo-bench``, which runs them all, verifies every listed file at load.

    Returns:
        {file: its SHA-256} for the files checked (files not listed in ``model.json`` are skipped).

    Raises:
        CdoError: a file has no recorded hash, or its content does not match.
    """
    bundle = Path(bundle_dir)
    listed = set(listed_files(meta))
    digests: dict[str, str] = {}
    for rel in files:
        path = bundle / rel
        if rel not in listed or not path.is_file():
            continue
        want = meta.sha256.get(rel) or (meta.onnx_sha256 if rel == ONNX_FILE else "")
        if not want:
            raise CdoError(f"{path}: model.json records no sha256 for this file, so it cannot be verified; "
                           "re-export the bundle (cdo-export) or rebuild the engine (cdo-inspect build-engine)")
        got = sha256_file(path)
        if got != want.lower():
            raise CdoError(f"{path} does not match its sha256 in model.json (recorded {want[:12]}..., file "
                           f"{got[:12]}...): it was changed or swapped after export; restore it or re-export")
        digests[rel] = got
    return digests


def load_bundle_meta(bundle_dir: str | Path, verify: bool = True) -> BundleMeta:
    """Read and validate ``model.json`` of a bundle folder and verify its model files.

    Args:
        bundle_dir: the bundle folder.
        verify: check the SHA-256 of every listed model file (:func:`verify_bundle_files`).

    Raises:
        CdoError: the folder or file is missing or malformed, or a model file fails verification.
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
    meta = BundleMeta.from_dict(data)
    if verify:
        verify_bundle_files(bundle, meta)
    return meta


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
