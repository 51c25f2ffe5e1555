"""What a TensorRT engine build does, per precision and TensorRT major version (pure logic, no TensorRT).

One :class:`BuildPlan` drives both the Python builder (:func:`cdo_deploy.engine_build.build_engine`)
and the equivalent ``trtexec`` line (:meth:`BuildPlan.trtexec`), so the two cannot drift apart.

============  ===================  ==================================  ==============================================
precision     ONNX file            TensorRT >= 11 (always strong)      TensorRT 10.x (default: weak typing)
============  ===================  ==================================  ==============================================
``fp32``      ``model.onnx``       as is                               no precision flag
``fp16``      ``model_fp16.onnx``  as is (fp16 backbones in the ONNX)  ``FP16`` + head pinned to fp32 (``prefer``)
``int8``      ``model_int8.onnx``  as is (Q/DQ in the ONNX)            ``INT8`` + ``FP16`` + head pinned to fp32
============  ===================  ==================================  ==============================================

Every plan clears ``TF32`` (on by default in both versions): the head is fp32 in every variant and
its discrepancy ``2 - 2 cos`` and blur lose accuracy at TF32's 10-bit mantissa. Network flags:
TensorRT 10.x strong typing is ``1 << NetworkDefinitionCreationFlag.STRONGLY_TYPED`` (= ``1 << 1``);
TensorRT 11 networks are always strongly typed and its ``STRONGLY_TYPED`` (now value 0) is deprecated
and ignored, so no flag is passed. TensorRT 11 removed ``BuilderFlag.FP16/INT8``, the precision-
constraint flags and the layer precision API; its ``trtexec`` dropped ``--fp16``, ``--int8``,
``--precisionConstraints`` and ``--layerPrecisions`` and made ``--stronglyTyped`` a no-op.

Weak typing (10.x) pins the layers matching :data:`FP32_LAYERS` -- cdo-export's node names for the
input normalisation and the head -- to fp32 with ``PREFER_PRECISION_CONSTRAINTS``. The Python
builder also pins the ONNX parser's helper layers (``ONNXTRT_*``, unnamed) that hang off a pinned
layer, and leaves those inside the backbones free; ``trtexec`` can select layers by name only, so
its line pins the named layers (``--layerPrecisions``/``--layerOutputTypes`` with wildcards).

Example:
    >>> plan = plan_build({"fp32": "model.onnx", "fp16": "model_fp16.onnx"}, "fp16", trt_major=11)
    >>> plan.onnx_file, plan.strongly_typed, plan.network_flags, plan.builder_flags
    ('model_fp16.onnx', True, (), ())
    >>> plan_build({"fp16": "model_fp16.onnx"}, "fp16", trt_major=10).builder_flags
    ('FP16', 'PREFER_PRECISION_CONSTRAINTS')
    >>> plan.trtexec((256, 256), (1, 8, 32))  # doctest: +NORMALIZE_WHITESPACE
    'trtexec --onnx=model_fp16.onnx --noTF32 --minShapes=image:1x256x256x3 --optShapes=image:8x256x256x3
     --maxShapes=image:32x256x256x3 --memPoolSize=workspace:2048M --saveEngine=model_fp16.engine
     --timingCacheFile=timing.cache'
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from .bundle import INPUT_NAME
from .errors import CdoError

__all__ = ["BACKBONE_SCOPES", "ENGINE_PRECISIONS", "FP32_LAYERS", "TIMING_CACHE", "BuildPlan", "is_parser_helper",
           "matches_layer", "plan_build"]

ENGINE_PRECISIONS = ("fp32", "fp16", "int8")
#: ONNX node-name prefixes of the teacher and student (``cdo-export`` naming); parser layers keep them.
BACKBONE_SCOPES = ("/model/teacher/", "/model/student/")
#: layer-name patterns (trtexec syntax: at most one ``*``) of cdo-export's input normalisation and head.
FP32_LAYERS = ("/Transpose*", "/Div*", "/model/Sub*", "/model/Div*", "/model/head/*")
TIMING_CACHE = "timing.cache"
_TRTEXEC_FLAG = {"FP16": "--fp16", "INT8": "--int8", "PREFER_PRECISION_CONSTRAINTS": "--precisionConstraints=prefer"}


def matches_layer(pattern: str, name: str) -> bool:
    """trtexec's layer-name match: exact, or one ``*`` standing for any run of characters."""
    if "*" not in pattern:
        return pattern == name
    head, tail = pattern.split("*", 1)
    return len(name) >= len(head) + len(tail) and name.startswith(head) and name.endswith(tail)


def is_parser_helper(name: str) -> bool:
    """A layer the ONNX parser added for its own needs (``ONNXTRT_*``) or left unnamed."""
    return name.startswith(("ONNXTRT_", "(Unnamed Layer"))


@dataclass(frozen=True)
class BuildPlan:
    """What one engine build does.

    Attributes:
        precision: ``fp32``, ``fp16`` or ``int8``.
        onnx_file: ONNX file in the bundle that is parsed.
        engine_file: engine file written next to ``model.json``.
        trt_major: TensorRT major version the plan is for.
        strongly_typed: the network is strongly typed (always on 11.x).
        network_flags: ``NetworkDefinitionCreationFlag`` names passed to ``create_network``.
        builder_flags: ``BuilderFlag`` names set (weak typing only).
        cleared_flags: ``BuilderFlag`` names cleared (``TF32``).
        fp32_layers: layer-name patterns pinned to fp32 (weak typing only).
    """

    precision: str
    onnx_file: str
    engine_file: str
    trt_major: int
    strongly_typed: bool
    network_flags: tuple[str, ...]
    builder_flags: tuple[str, ...]
    cleared_flags: tuple[str, ...]
    fp32_layers: tuple[str, ...]

    @property
    def pin_head_fp32(self) -> bool:
        """Whether the head is pinned to fp32 (weak typing with a reduced precision)."""
        return bool(self.fp32_layers)

    def trtexec(self, hw: tuple[int, int], batches: tuple[int, int, int], workspace_mb: int = 2048,
                cache: str = TIMING_CACHE) -> str:
        """The ``trtexec`` command that builds what :func:`~cdo_deploy.engine_build.build_engine` builds.

        Args:
            hw: model input (H, W) in pixels.
            batches: optimisation profile (min, opt, max) batch sizes.
            workspace_mb: workspace pool limit, MiB.
            cache: timing cache file.

        Returns:
            One shell-quoted command line for this plan's TensorRT major version.
        """
        h, w = hw
        args = ["trtexec", f"--onnx={self.onnx_file}"]
        if "STRONGLY_TYPED" in self.network_flags:
            args.append("--stronglyTyped")
        args += [_TRTEXEC_FLAG[f] for f in self.builder_flags]
        if self.fp32_layers:
            spec = ",".join(f"{p}:fp32" for p in self.fp32_layers)
            args += [f"--layerPrecisions={spec}", f"--layerOutputTypes={spec}"]
        if "TF32" in self.cleared_flags:
            args.append("--noTF32")
        args += [f"--{k}Shapes={INPUT_NAME}:{b}x{h}x{w}x3" for k, b in zip(("min", "opt", "max"), batches)]
        args += [f"--memPoolSize=workspace:{workspace_mb}M", f"--saveEngine={self.engine_file}",
                 f"--timingCacheFile={cache}"]
        return " ".join(shlex.quote(a) for a in args)


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
    weak_reduced = not strong and precision != "fp32"
    flags: tuple[str, ...] = ()
    if weak_reduced:  # int8: FP16 too, so the layers without Q/DQ are not left in fp32
        flags = (("INT8", "FP16") if precision == "int8" else ("FP16",)) + ("PREFER_PRECISION_CONSTRAINTS",)
    return BuildPlan(precision, onnx_file, f"model_{precision}.engine", trt_major, strong,
                     network_flags=("STRONGLY_TYPED",) if strong and trt_major < 11 else (),
                     builder_flags=flags, cleared_flags=("TF32",),
                     fp32_layers=FP32_LAYERS if weak_reduced else ())
