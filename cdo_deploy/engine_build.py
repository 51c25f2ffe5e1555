"""Build a TensorRT engine for a bundle, on the machine that will run it (no torch).

Engines are tied to one GPU model and one TensorRT version, so they are built
where they run (``cdo-inspect build-engine BUNDLE``, or ``cdo-export --engine``
on that machine) with the TensorRT Python API:

1. ``trt.OnnxParser`` parses the ONNX file of the requested precision; every
   parser error is logged and the first one is raised as a :class:`CdoError`;
2. the network is created with ``1 << int(NetworkDefinitionCreationFlag.STRONGLY_TYPED)``
   when strongly typed (``EXPLICIT_BATCH`` is never used: it is the only mode
   since TensorRT 10 and gone in 11);
3. one optimisation profile covers the batch range for input ``image``
   ``(B, H, W, 3)``; the workspace pool is limited;
4. a timing cache is loaded from and saved to ``timing.cache`` in the bundle
   (or the given file), so rebuilds skip kernel timing;
5. ``model_<precision>.engine`` is written next to ``model.json`` and listed
   under ``engines``.

Precision comes from the ONNX variant written by ``cdo-export``:

============  ===================  ==============================  =========================================
precision     ONNX file            TensorRT >= 11 (always strong)  TensorRT 10.x (default: weak typing)
============  ===================  ==============================  =========================================
``fp32``      ``model.onnx``       strongly typed                  no precision flag, TF32 off
``fp16``      ``model_fp16.onnx``  strongly typed, as is           ``BuilderFlag.FP16``
``int8``      ``model_int8.onnx``  strongly typed, Q/DQ as is      ``BuilderFlag.INT8`` (explicit Q/DQ)
============  ===================  ==============================  =========================================

With weak typing (10.x) every layer outside the backbones (input cast and
normalisation, discrepancy head) is pinned to fp32 with
``PREFER_PRECISION_CONSTRAINTS``, because the discrepancy cancels in fp16.
``strongly_typed=True`` uses the 11.x scheme on 10.x too (the ONNX variants
already carry their precision). TensorRT 11 removed ``BuilderFlag.FP16/INT8``,
the precision-constraint flags and the INT8 calibrators.

Example:
    >>> plan = plan_build({"fp32": "model.onnx", "fp16": "model_fp16.onnx"}, "fp16", trt_major=11)
    >>> plan.onnx_file, plan.strongly_typed, plan.builder_flags
    ('model_fp16.onnx', True, ())
    >>> plan_build({"fp16": "model_fp16.onnx"}, "fp16", trt_major=10).builder_flags
    ('FP16', 'PREFER_PRECISION_CONSTRAINTS')
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .bundle import INPUT_NAME, load_bundle_meta
from .errors import CdoError

if TYPE_CHECKING:
    import tensorrt as trt

__all__ = ["BACKBONE_SCOPES", "ENGINE_PRECISIONS", "BuildPlan", "build_engine", "plan_build"]

log = logging.getLogger(__name__)

ENGINE_PRECISIONS = ("fp32", "fp16", "int8")
#: ONNX node-name prefixes of the teacher and student (``cdo-export`` naming); parser layers keep them.
BACKBONE_SCOPES = ("/model/teacher/", "/model/student/")
TIMING_CACHE = "timing.cache"
_INSTALL = ("TensorRT is not installed: pip install tensorrt (TensorRT >= 10 matching the NVIDIA driver), "
            "on the GPU machine that will run the engine")


@dataclass(frozen=True)
class BuildPlan:
    """What :func:`build_engine` does for one precision and TensorRT major version.

    Attributes:
        precision: ``fp32``, ``fp16`` or ``int8``.
        onnx_file: ONNX file in the bundle that is parsed.
        engine_file: engine file written next to ``model.json``.
        strongly_typed: network created with the ``STRONGLY_TYPED`` flag.
        builder_flags: ``BuilderFlag`` names set (weak typing only).
        pin_head_fp32: layers outside the backbones pinned to fp32 (weak typing only).
    """

    precision: str
    onnx_file: str
    engine_file: str
    strongly_typed: bool
    builder_flags: tuple[str, ...]
    pin_head_fp32: bool

    def trtexec(self, hw: tuple[int, int], batches: tuple[int, int, int], cache: str = TIMING_CACHE) -> str:
        """The equivalent ``trtexec`` command line (for users who build engines by hand)."""
        h, w = hw
        shapes = " ".join(f"--{k}Shapes={INPUT_NAME}:{b}x{h}x{w}x3" for k, b in zip(("min", "opt", "max"), batches))
        flags = " --stronglyTyped" if self.strongly_typed else "".join(
            f" --{f.lower()}" for f in self.builder_flags if f in ("FP16", "INT8"))
        return (f"trtexec --onnx={self.onnx_file}{flags} {shapes} --saveEngine={self.engine_file} "
                f"--timingCacheFile={cache}")


def plan_build(variants: dict[str, str], precision: str, trt_major: int,
               strongly_typed: bool | None = None) -> BuildPlan:
    """Choose the ONNX file and the build mode (see the module docstring's table).

    Args:
        variants: ``model.json`` ``variants`` (precision -> ONNX file).
        precision: ``fp32``, ``fp16`` or ``int8``.
        trt_major: TensorRT major version.
        strongly_typed: ``None`` = strong on TensorRT >= 11, weak on 10.x.

    Raises:
        CdoError: unknown precision, missing variant, TensorRT < 10, or weak typing on 11.x.
    """
    if precision not in ENGINE_PRECISIONS:
        raise CdoError(f"engine precision must be one of {', '.join(ENGINE_PRECISIONS)}, got {precision!r}")
    if trt_major < 10:
        raise CdoError(f"TensorRT {trt_major}.x is too old: cdo engines need TensorRT >= 10")
    onnx_file = variants.get(precision)
    if not onnx_file:
        flag = {"fp32": "", "fp16": " --fp16", "int8": " --int8"}[precision]
        raise CdoError(f"the bundle has no {precision} ONNX variant (have: {', '.join(variants) or 'none'}); "
                       f"re-export with cdo-export RUN_DIR -o BUNDLE{flag}")
    strong = trt_major >= 11 if strongly_typed is None else strongly_typed
    if not strong and trt_major >= 11:
        raise CdoError("TensorRT >= 11 builds strongly typed networks only (weak typing was removed)")
    flags: tuple[str, ...] = ()
    if not strong and precision != "fp32":
        flags = (precision.upper(), "PREFER_PRECISION_CONSTRAINTS")
    return BuildPlan(precision, onnx_file, f"model_{precision}.engine", strong, flags,
                     pin_head_fp32=not strong and precision != "fp32")


def _pin_head_fp32(network: "trt.INetworkDefinition") -> int:
    """Pin float compute layers outside the backbones to fp32 (weak typing); returns how many.

    Casts, Q/DQ, constants and shape layers keep their own types (Q/DQ layers are
    named after tensors by ONNX Runtime's quantizer, not after backbone scopes).
    """
    import tensorrt as trt

    pinned = 0
    floats = (trt.float32, trt.float16)
    kinds = trt.LayerType
    skip = (kinds.CONSTANT, kinds.SHAPE, kinds.CAST, kinds.QUANTIZE, kinds.DEQUANTIZE, kinds.IDENTITY)
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.name.startswith(BACKBONE_SCOPES) or layer.type in skip:
            continue
        outs = [k for k in range(layer.num_outputs) if layer.get_output(k).dtype in floats]
        if not outs:
            continue
        layer.precision = trt.float32
        for k in outs:
            layer.set_output_type(k, trt.float32)
        pinned += 1
    return pinned


def _parse(parser: "trt.OnnxParser", onnx_path: Path, version: str) -> None:
    if parser.parse_from_file(str(onnx_path)):
        return
    errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
    for e in errors:
        log.error("TensorRT ONNX parser: %s", e)
    first = errors[0] if errors else "no error reported"
    more = f" (+{len(errors) - 1} more, see the log)" if len(errors) > 1 else ""
    raise CdoError(f"TensorRT {version} cannot parse {onnx_path}: {first}{more}")


def _write_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_bytes(bytes(data))
    os.replace(tmp, path)


def build_engine(
    bundle_dir: str | Path,
    precision: str = "fp16",
    min_batch: int = 1,
    opt_batch: int = 8,
    max_batch: int = 32,
    workspace_mb: int = 2048,
    timing_cache: str | Path | None = None,
    strongly_typed: bool | None = None,
) -> Path:
    """Build ``model_<precision>.engine`` for this GPU and list it in ``model.json``.

    Args:
        bundle_dir: a bundle written by ``cdo-export``.
        precision: ``fp32``, ``fp16`` or ``int8`` (needs the matching ONNX variant).
        min_batch, opt_batch, max_batch: the optimisation profile's batch sizes.
        workspace_mb: builder workspace memory pool limit, MiB.
        timing_cache: timing cache file (default ``<bundle>/timing.cache``), read if present, then updated.
        strongly_typed: ``None`` = strong on TensorRT >= 11, weak (builder flags) on 10.x.

    Returns:
        Path of the engine file.

    Raises:
        CdoError: TensorRT missing or too old, bad options, missing variant, parser or build failure.
    """
    bundle = Path(bundle_dir)
    meta = load_bundle_meta(bundle)
    if not 1 <= min_batch <= opt_batch <= max_batch:
        raise CdoError(f"batch range must satisfy 1 <= min <= opt <= max, got {min_batch}/{opt_batch}/{max_batch}")
    if workspace_mb < 64:
        raise CdoError(f"workspace must be >= 64 MiB, got {workspace_mb}")
    try:
        import tensorrt as trt
    except ImportError:
        raise CdoError(_INSTALL) from None
    if not hasattr(trt, "Builder"):  # a stubs-only 'tensorrt' folder imports as an empty namespace
        raise CdoError(_INSTALL)
    major = int(str(trt.__version__).split(".")[0])
    plan = plan_build(meta.variants, precision, major, strongly_typed)
    onnx_path = bundle / plan.onnx_file
    if not onnx_path.is_file():
        raise CdoError(f"{onnx_path} is listed in model.json but missing; re-run cdo-export")

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if plan.strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    _parse(parser, onnx_path, trt.__version__)

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    for name in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    if plan.pin_head_fp32:
        log.info("weak typing: %d layers outside the backbones pinned to fp32", _pin_head_fp32(network))

    h, w = meta.height, meta.width
    profile = builder.create_optimization_profile()
    lo, opt, hi = (trt.Dims([b, h, w, 3]) for b in (min_batch, opt_batch, max_batch))
    profile.set_shape(INPUT_NAME, lo, opt, hi)
    config.add_optimization_profile(profile)

    cache_path = Path(timing_cache) if timing_cache is not None else bundle / TIMING_CACHE
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    if not config.set_timing_cache(cache, ignore_mismatch=False):
        log.warning("timing cache %s was made on another device or TensorRT version: starting a new one", cache_path)
        config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)

    log.info("building %s engine from %s with TensorRT %s (%s typing, batch %d/%d/%d)", precision, plan.onnx_file,
             trt.__version__, "strong" if plan.strongly_typed else "weak", min_batch, opt_batch, max_batch)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise CdoError(f"TensorRT {trt.__version__} failed to build an engine from {onnx_path} (see the log above)")
    engine_path = bundle / plan.engine_file
    _write_atomic(engine_path, serialized)
    _write_atomic(cache_path, config.get_timing_cache().serialize())
    meta.engines[precision] = plan.engine_file
    meta.save(bundle)
    log.info("engine %s: %.1f MB (timing cache %s)", engine_path, engine_path.stat().st_size / 1e6, cache_path)
    return engine_path
