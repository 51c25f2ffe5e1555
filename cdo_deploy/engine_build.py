"""Build a TensorRT engine for a bundle, on the machine that will run it (no torch).

Engines are tied to one GPU model and one TensorRT version, so they are built
where they run (``cdo-inspect build-engine BUNDLE``, or ``cdo-export --engine``
on that machine) with the TensorRT Python API, following one
:class:`~cdo_deploy.engine_plan.BuildPlan` (precision, typing, flags per
TensorRT major version; the table is in :mod:`cdo_deploy.engine_plan`):

1. ``trt.OnnxParser`` parses the ONNX file of the requested precision; every
   parser error is logged and the first one is raised as a :class:`CdoError`;
2. the network is created with the plan's flags (``1 << int(flag)`` each:
   ``STRONGLY_TYPED`` on 10.x when strongly typed, none on 11.x, where strong
   typing is the only mode and the flag is deprecated);
3. ``TF32`` is cleared; weak typing (10.x) sets the precision flags and pins the
   input normalisation and head to fp32;
4. one optimisation profile covers the batch range for input ``image``
   ``(B, H, W, 3)``; the workspace pool is limited;
5. a timing cache is loaded from and saved to ``timing.cache`` in the bundle
   (or the given file); one made by another TensorRT version or device is
   replaced by a new one;
6. ``model_<precision>.engine`` is written next to ``model.json``, listed
   under ``engines`` and its SHA-256 recorded under ``sha256``; the equivalent
   ``trtexec`` line is logged.

Example:
    >>> from cdo_deploy.engine_build import build_engine
    >>> build_engine("bundle", "fp16", min_batch=1, opt_batch=8, max_batch=32)  # doctest: +SKIP
    PosixPath('bundle/model_fp16.engine')
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .bundle import INPUT_NAME, load_bundle_meta
from .engine_plan import (BACKBONE_SCOPES, ENGINE_PRECISIONS, FP32_LAYERS, TIMING_CACHE, BuildPlan, is_parser_helper,
                          matches_layer, plan_build)
from .errors import CdoError

if TYPE_CHECKING:
    import tensorrt as trt

__all__ = ["BACKBONE_SCOPES", "ENGINE_PRECISIONS", "FP32_LAYERS", "BuildPlan", "build_engine", "plan_build",
           "trtexec_line"]

log = logging.getLogger(__name__)

_INSTALL = ("TensorRT is not installed: pip install 'cdo[tensorrt-cu13]' (or [tensorrt-cu12] for a CUDA 12 driver), "
            "on the GPU machine that will run the engine")


def _pin_fp32(network: "trt.INetworkDefinition", patterns: tuple[str, ...]) -> list[str]:
    """Pin the float compute layers in the fp32 scope to fp32 (weak typing); returns their names.

    The scope is the layers named by ``patterns`` plus the parser's helper layers fed by the scope
    (a helper inside a backbone stays free). Casts, Q/DQ, constants and shape layers keep their types.
    """
    import tensorrt as trt

    floats = (trt.float32, trt.float16)
    kinds = trt.LayerType
    skip = (kinds.CONSTANT, kinds.SHAPE, kinds.CAST, kinds.QUANTIZE, kinds.DEQUANTIZE, kinds.IDENTITY)
    scope: set[str] = set()  # output tensors of layers in the fp32 scope
    pinned = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if is_parser_helper(layer.name):
            inputs = [layer.get_input(k) for k in range(layer.num_inputs)]
            inside = any(t is not None and t.name in scope for t in inputs)
        else:
            inside = any(matches_layer(p, layer.name) for p in patterns)
        if not inside:
            continue
        scope.update(layer.get_output(k).name for k in range(layer.num_outputs))
        outs = [k for k in range(layer.num_outputs) if layer.get_output(k).dtype in floats]
        if layer.type in skip or not outs:
            continue
        layer.precision = trt.float32
        for k in outs:
            layer.set_output_type(k, trt.float32)
        pinned.append(layer.name)
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


def _attach_timing_cache(config: "trt.IBuilderConfig", path: Path, version: str) -> None:
    """Reuse the timing cache at ``path`` if this TensorRT and device accept it, else start a new one.

    ``create_timing_cache`` returns None for a cache of another TensorRT version (or a corrupt
    file), and ``set_timing_cache`` returns False for one made on another device.
    """
    data = path.read_bytes() if path.is_file() else b""
    cache = config.create_timing_cache(data)
    if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
        return
    if data:
        log.warning("timing cache %s was made by another TensorRT version or device (this is TensorRT %s): "
                    "starting a new one, it replaces the old file after the build", path, version)
    cache = config.create_timing_cache(b"")
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        raise CdoError(f"TensorRT {version} cannot create a timing cache (see the log)")


def _write_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_bytes(bytes(data))
    os.replace(tmp, path)


def _check_options(min_batch: int, opt_batch: int, max_batch: int, workspace_mb: int) -> None:
    if not 1 <= min_batch <= opt_batch <= max_batch:
        raise CdoError(f"batch range must satisfy 1 <= min <= opt <= max, got {min_batch}/{opt_batch}/{max_batch}")
    if workspace_mb < 64:
        raise CdoError(f"workspace must be >= 64 MiB, got {workspace_mb}")


def trtexec_line(bundle_dir: str | Path, precision: str, trt_major: int, min_batch: int = 1, opt_batch: int = 8,
                 max_batch: int = 32, workspace_mb: int = 2048, strongly_typed: bool | None = None) -> str:
    """The ``trtexec`` command that builds what :func:`build_engine` would, for TensorRT ``trt_major``.

    Needs no TensorRT: for building by hand where only ``trtexec`` is installed. Run it in the
    bundle folder, then list the engine under ``engines`` in ``model.json``.

    Raises:
        CdoError: bad options, missing variant, TensorRT < 10, or weak typing on 11.x.
    """
    meta = load_bundle_meta(Path(bundle_dir))
    _check_options(min_batch, opt_batch, max_batch, workspace_mb)
    plan = plan_build(meta.variants, precision, trt_major, strongly_typed)
    return plan.trtexec((meta.height, meta.width), (min_batch, opt_batch, max_batch), workspace_mb)


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
    _check_options(min_batch, opt_batch, max_batch, workspace_mb)
    if precision == "int8" and (meta.int8_check.get("settings") or {}).get("activations", "").startswith("uint8"):
        raise CdoError(f"{bundle}: model_int8.onnx has asymmetric uint8 activations (fastest on CPUs); TensorRT "
                       "needs symmetric int8: re-export with cdo-export --int8 --int8-activations int8")
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
    flags = 0
    for name in plan.network_flags:
        flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    network = builder.create_network(flags)
    if network is None:
        raise CdoError(f"TensorRT {trt.__version__} refused to create a network (flags {flags:#x}); see the log")
    parser = trt.OnnxParser(network, logger)
    _parse(parser, onnx_path, trt.__version__)

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    for name in plan.cleared_flags:
        config.clear_flag(getattr(trt.BuilderFlag, name))
    for name in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    if plan.fp32_layers:
        log.info("weak typing: %d layers of the input normalisation and head pinned to fp32",
                 len(_pin_fp32(network, plan.fp32_layers)))

    h, w = meta.height, meta.width
    profile = builder.create_optimization_profile()
    lo, opt, hi = (trt.Dims([b, h, w, 3]) for b in (min_batch, opt_batch, max_batch))
    profile.set_shape(INPUT_NAME, lo, opt, hi)
    config.add_optimization_profile(profile)

    cache_path = Path(timing_cache) if timing_cache is not None else bundle / TIMING_CACHE
    _attach_timing_cache(config, cache_path, trt.__version__)

    log.info("building %s engine from %s with TensorRT %s (%s typing, batch %d/%d/%d)", precision, plan.onnx_file,
             trt.__version__, "strong" if plan.strongly_typed else "weak", min_batch, opt_batch, max_batch)
    log.info("the same build with trtexec: %s", plan.trtexec((h, w), (min_batch, opt_batch, max_batch), workspace_mb,
                                                             cache_path.name))
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise CdoError(f"TensorRT {trt.__version__} failed to build an engine from {onnx_path} (see the log above)")
    engine_path = bundle / plan.engine_file
    _write_atomic(engine_path, serialized)
    _write_atomic(cache_path, config.get_timing_cache().serialize())
    meta.engines[precision] = plan.engine_file
    meta.save(bundle)  # records the engine's sha256 (bundle.record_sha256); every later load checks it
    log.info("engine %s: %.1f MB (timing cache %s)", engine_path, engine_path.stat().st_size / 1e6, cache_path)
    return engine_path
