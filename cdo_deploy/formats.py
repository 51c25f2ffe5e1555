"""The formats table: which model files of a bundle each backend runs.

One table drives backend selection (``Inspector(backend="auto")``) and the
rows of ``cdo-bench``. A bundle lists ONNX files (fp32, fp16, int8, ...) and
AOTInductor packages (``aoti-fp16`` -> ``model_aoti_fp16.pt2``) under
``variants``, OpenVINO IRs written by ``cdo-export --openvino`` under
``openvino`` and TensorRT engines built on the target machine under
``engines``; each table row maps one of those ``model.json`` fields, filtered
by file suffix, to the backend that runs it. OpenVINO runs the ONNX files too;
where an IR of the same variant exists, the IR is used.

``auto`` rule (:func:`auto_order`), from measurements on CPUs without VNNI
(docs/results/performance.md): a TensorRT engine built for this machine first; then, for
the ``int8`` variant, OpenVINO before ONNX Runtime (OpenVINO's int8 kernels
were faster than fp32, ONNX Runtime's slower); for every other variant ONNX
Runtime first (the runtime export checks parity in; OpenVINO measured the same
speed for fp32). PyTorch AOTI packages only when asked for.

Example:
    >>> [f.backend for f in FORMATS]
    ['tensorrt', 'onnxruntime', 'openvino', 'openvino', 'torch']
    >>> auto_order("int8")
    ('tensorrt', 'openvino', 'onnxruntime')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .bundle import BundleMeta
from .errors import CdoError

__all__ = ["FORMATS", "Format", "ModelFile", "auto_order", "list_model_files", "resolve_model_file"]


@dataclass(frozen=True)
class Format:
    """A kind of model file in a bundle.

    Attributes:
        name: short name shown in tables (``onnx``, ``engine``).
        meta_field: ``BundleMeta`` attribute listing the files (variant -> file).
        backend: registered backend that runs it.
        suffixes: accepted file suffixes.
        default_variant: variant picked when none is asked for.
    """

    name: str
    meta_field: str
    backend: str
    suffixes: tuple[str, ...]
    default_variant: str


#: Per backend, earlier rows win for the same variant (an OpenVINO IR over the ONNX file). AOTI
#: packages (device- and torch-version-specific, torch needed) only run when asked for: ``--backend torch``.
FORMATS: tuple[Format, ...] = (
    Format("engine", "engines", "tensorrt", (".engine", ".plan", ".trt"), "fp16"),
    Format("onnx", "variants", "onnxruntime", (".onnx",), "fp32"),
    Format("openvino-ir", "openvino", "openvino", (".xml",), "fp32"),
    Format("onnx", "variants", "openvino", (".onnx",), "fp32"),
    Format("aoti", "variants", "torch", (".pt2",), "aoti-fp16"),
)


def auto_order(variant: str | None = None) -> tuple[str, ...]:
    """Backends ``auto`` tries, in order, for ``variant`` (see the module docstring)."""
    if variant == "int8":
        return ("tensorrt", "openvino", "onnxruntime")
    return ("tensorrt", "onnxruntime", "openvino")


@dataclass(frozen=True)
class ModelFile:
    """A concrete model file of a bundle and the backend that runs it."""

    backend: str
    variant: str
    path: Path
    format: str


def _format_for(backend: str) -> Format:
    for f in FORMATS:
        if f.backend == backend:
            return f
    known = ", ".join(dict.fromkeys(f.backend for f in FORMATS))
    raise CdoError(f"backend {backend!r} runs no bundle format (known: auto, {known})")


def list_model_files(bundle_dir: str | Path, meta: BundleMeta, backend: str | None = None) -> list[ModelFile]:
    """All model files the bundle lists, optionally only those ``backend`` runs.

    Files listed in ``model.json`` but missing on disk are left out; per backend
    and variant only the first format's file is listed (an IR over an ONNX file).
    """
    out: list[ModelFile] = []
    seen: set[tuple[str, str]] = set()
    for fmt in FORMATS:
        if backend is not None and fmt.backend != backend:
            continue
        entries: dict[str, str] = getattr(meta, fmt.meta_field) or {}
        for variant, rel in entries.items():
            path = Path(bundle_dir) / rel
            if (fmt.backend, variant) not in seen and path.suffix.lower() in fmt.suffixes and path.is_file():
                seen.add((fmt.backend, variant))
                out.append(ModelFile(fmt.backend, variant, path, fmt.name))
    return out


def resolve_model_file(
    bundle_dir: str | Path,
    meta: BundleMeta,
    backend: str = "auto",
    variant: str | None = None,
    available: tuple[str, ...] = (),
) -> ModelFile:
    """Pick the model file to run.

    Args:
        bundle_dir: the bundle folder.
        meta: its ``model.json``.
        backend: ``auto`` or a registered backend name.
        variant: ``fp32``/``fp16``/``int8``... or ``None`` for the format's default.
        available: backends usable on this machine (only consulted for ``auto``).

    Raises:
        CdoError: no file of that backend/variant exists in the bundle.
    """
    if backend == "auto":
        for name in auto_order(variant):
            if name not in available:
                continue
            files = list_model_files(bundle_dir, meta, name)
            pick = _pick(files, variant, _format_for(name).default_variant)
            if pick is not None:
                return pick
        listed = dict.fromkeys(rel for fmt in FORMATS for rel in (getattr(meta, fmt.meta_field) or {}).values())
        missing = sorted((rel for rel in listed if not (Path(bundle_dir) / rel).is_file()),
                         key=lambda rel: not rel.endswith(".onnx"))  # model.onnx first: what most backends run
        if missing:
            raise CdoError(f"{Path(bundle_dir) / missing[0]} is missing (model.json lists it"
                           f"{f'; {len(missing) - 1} more missing' if len(missing) > 1 else ''}): copy the whole "
                           "bundle folder, or re-run cdo-export")
        raise CdoError(
            f"{bundle_dir}: no model file that an available backend ({', '.join(available) or 'none'}) "
            f"can run{f' for variant {variant!r}' if variant else ''}; check model.json 'variants'/'engines'"
        )
    fmt = _format_for(backend)
    files = list_model_files(bundle_dir, meta, backend)
    pick = _pick(files, variant, fmt.default_variant)
    if pick is None:
        have = ", ".join(f.variant for f in files) or "none"
        hint = {"tensorrt": " (build a TensorRT engine for this machine and list it under 'engines' in model.json)",
                "torch": " (build an AOTI package on this machine: cdo-export --aoti, or "
                         "python -m cdo_train.export.aoti RUN_DIR BUNDLE)"}.get(fmt.backend, " (re-run cdo-export)")
        raise CdoError(
            f"{bundle_dir}: no {fmt.name} file for backend {backend!r}"
            f"{f' variant {variant!r}' if variant else ''} (have: {have}){hint}"
        )
    return pick


def _pick(files: list[ModelFile], variant: str | None, default: str) -> ModelFile | None:
    if not files:
        return None
    by_variant = {f.variant: f for f in files}
    if variant is not None:
        return by_variant.get(variant)
    return by_variant.get(default) or files[0]
