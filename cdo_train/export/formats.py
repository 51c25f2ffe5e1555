"""The export formats table and the validated export options.

One table (:data:`EXPORT_FORMATS`) says, for every file ``cdo-export`` can
write: its name, the flag that asks for it, its file name, the Python modules
it needs, what to install when they are missing, and whether it runs on CPU
and GPU. It drives option validation, the dependency check done before
anything is written, and ``cdo-export --list-formats``.

Example:
    >>> [f.name for f in EXPORT_FORMATS]
    ['onnx', 'onnx-fp16', 'onnx-int8', 'openvino', 'engine', 'aoti', 'triton']
    >>> ExportOptions(int8=True, engine=True, engine_precision="int8").formats()
    ['onnx', 'onnx-int8', 'engine']
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from pydantic import ConfigDict, Field

from cdo_deploy.errors import CdoError
from cdo_deploy.schema import Bool, Float, Int, Schema

__all__ = [
    "AOTI_PRECISIONS",
    "CALIB_METHODS",
    "ENGINE_PRECISIONS",
    "INT8_ACTIVATIONS",
    "INT8_THRESHOLDS",
    "EXPORT_FORMATS",
    "MAX_OPSET",
    "MIN_OPSET",
    "ExportFormat",
    "ExportOptions",
    "MEASURED",
    "MEASURED_ON",
    "format_rows",
    "get_format",
    "module_available",
]

MIN_OPSET, MAX_OPSET = 17, 24
CalibMethod = Literal["minmax", "percentile", "entropy"]
Int8Activations = Literal["uint8", "int8"]
Int8Thresholds = Literal["own", "bundle"]
EnginePrecision = Literal["fp32", "fp16", "int8"]
AotiPrecision = Literal["fp32", "fp16"]
#: int8 calibration methods (ONNX Runtime's MinMax, Percentile at 99.999 %, Entropy).
CALIB_METHODS: tuple[str, ...] = get_args(CalibMethod)
#: int8 defaults, chosen by tools/int8_study.py (docs/guides/int8.md).
DEFAULT_CALIB_METHOD = "minmax"
DEFAULT_KEEP_ENDS = False
#: int8 check tolerance (--int8-tolerance): AUROC/AUPRO points and % of test decisions (int8_check.py).
DEFAULT_TOLERANCE = 0.5
#: activation types of the int8 variant: uint8 (asymmetric; CPU runtimes) or int8 (symmetric; TensorRT).
INT8_ACTIVATIONS: tuple[str, ...] = get_args(Int8Activations)
ENGINE_PRECISIONS: tuple[str, ...] = get_args(EnginePrecision)
AOTI_PRECISIONS: tuple[str, ...] = get_args(AotiPrecision)
INT8_THRESHOLDS: tuple[str, ...] = get_args(Int8Thresholds)


@dataclass(frozen=True)
class ExportFormat:
    """One kind of file ``cdo-export`` writes.

    Attributes:
        name: short name used in logs and tables.
        flag: the ``cdo-export`` option that asks for it (``-`` = always written).
        file: file name inside the bundle (``{precision}`` filled in for engines).
        needs: Python modules that must be importable.
        install: what to install when one is missing.
        cpu: runs on a CPU (ONNX Runtime).
        gpu: runs on an NVIDIA GPU (ONNX Runtime CUDA/TensorRT EP, TensorRT, Triton).
        variant: key under ``variants`` in ``model.json`` (ONNX files only; ``openvino``: IRs of the
            fp32 and int8 variants under ``openvino``).
    """

    name: str
    flag: str
    file: str
    needs: tuple[str, ...]
    install: str
    cpu: bool
    gpu: bool
    variant: str | None = None


EXPORT_FORMATS: tuple[ExportFormat, ...] = (
    ExportFormat("onnx", "-", "model.onnx", ("torch", "onnx", "onnxruntime"),
                 "pip install 'cdo[train]' (torch, onnx, onnxruntime)", True, True, "fp32"),
    ExportFormat("onnx-fp16", "--fp16", "model_fp16.onnx", ("onnx",), "pip install onnx", True, True, "fp16"),
    ExportFormat("onnx-int8", "--int8", "model_int8.onnx", ("onnxruntime.quantization",),
                 "pip install onnxruntime", True, True, "int8"),
    ExportFormat("openvino", "--openvino", "model_openvino[_int8].xml + .bin", ("openvino",),
                 "pip install 'cdo[openvino]' (openvino)", True, True, "openvino"),
    ExportFormat("engine", "--engine", "model_{precision}.engine", ("tensorrt",),
                 "pip install tensorrt (TensorRT >= 10, on the GPU machine that will run the engine)", False, True),
    ExportFormat("aoti", "--aoti", "model_aoti_{precision}.pt2", ("torch",),
                 "pip install 'cdo[train]' (torch; gcc for CPU packages), on the machine that will run it",
                 True, True, "aoti-{precision}"),
    ExportFormat("triton", "--triton-repo", "<repo>/<model>/config.pbtxt", (), "nothing", True, True),
)


#: Where the figures of :data:`MEASURED` come from (docs/results/performance.md, "Formats").
MEASURED_ON = ("2-core AMD EPYC (AVX2; no AVX-512, VNNI, AMX, BF16), shared; lite0 weave bundle at 256 px; "
               "cdo-bench --data, batch 1, 2 threads, all rows interleaved; ONNX Runtime 1.32, OpenVINO 2026.4")

#: Per format: (speed, accuracy) measured on :data:`MEASURED_ON`, and the hardware the speed depends on.
#: Times are end-to-end p50 relative to ONNX Runtime fp32 (27.9 ms); accuracy is the change from fp32
#: on the 24 labelled test parts (8 good, 16 defective) and the OK/NG decisions that change.
MEASURED: dict[str, tuple[str, str, str]] = {
    "onnx": ("ONNX Runtime 1.00 (27.9 ms), OpenVINO 0.85 (23.6 ms; equal within noise in other runs)",
             "the reference: image AUROC 1.0000, pixel AUROC 0.9988, AUPRO 0.9951",
             "AVX2/FMA"),
    "onnx-fp16": ("ONNX Runtime 1.14, OpenVINO 0.89 (it computes in fp32)", "no change, 0/24 flips",
                  "fp16 speed needs a GPU (TensorRT) or AMX-FP16; none on this CPU"),
    "onnx-int8": ("ONNX Runtime 0.72, OpenVINO 0.60 (uint8 activations; symmetric int8: 1.41 / 0.80)",
                  "pixel AUROC -0.02 pt, AUPRO -0.08 pt, 0/24 flips at its own thresholds (symmetric int8 "
                  "at the fp32 thresholds: 4/24 flips)",
                  "faster here without VNNI; VNNI / AMX-INT8 add int8 dot products (not measured here)"),
    "openvino": ("as OpenVINO on the ONNX files; read+compile 337 ms instead of 643 ms", "as its ONNX variant",
                 "Intel CPUs, GPUs, NPUs (this CPU: AMD, runs the CPU plug-in)"),
    "engine": ("not measured: no TensorRT or NVIDIA GPU here", "-", "NVIDIA GPU, TensorRT >= 10.1"),
    "aoti": ("not measured in this table", "-", "the machine it was compiled on"),
    "triton": ("not measured: no Triton server here", "-", "Triton Inference Server"),
}


def get_format(name: str) -> ExportFormat:
    """The table row called ``name``."""
    for f in EXPORT_FORMATS:
        if f.name == name:
            return f
    raise KeyError(name)


def module_available(module: str) -> bool:
    """Whether ``module`` can really be imported (a stubs-only ``tensorrt`` folder does not count)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return False
    return spec is not None and spec.origin is not None and spec.loader is not None


def format_rows() -> list[dict[str, str]]:
    """The table as rows for display: whether each format's modules are installed here, and what it
    measured (:data:`MEASURED`: speed vs ONNX Runtime fp32, accuracy vs fp32, what the speed depends on)."""
    rows = []
    for f in EXPORT_FORMATS:
        missing = [m for m in f.needs if not module_available(m)]
        speed, accuracy, depends = MEASURED.get(f.name, ("-", "-", "-"))
        rows.append({
            "format": f.name, "flag": f.flag, "file": f.file, "cpu": "yes" if f.cpu else "no",
            "gpu": "yes" if f.gpu else "no", "here": "yes" if not missing else f"no ({f.install})",
            "speed": speed, "accuracy": accuracy, "depends on": depends,
        })
    return rows


class ExportOptions(Schema):
    """What ``cdo-export`` writes, checked when built (types, choices, ranges: one-line ``CdoError`` naming the
    flag); :meth:`validate` rejects incompatible combinations and missing modules.

    Attributes:
        opset: ONNX opset, 17..24.
        fp16: also write ``model_fp16.onnx`` (backbones fp16, input and head fp32).
        int8: also write ``model_int8.onnx`` (Q/DQ, calibrated on good training images).
        calib_images: number of good training images used to calibrate int8 (default 64).
        calib_dir: a folder of good images to calibrate with instead of the run's training images.
        calib_method: int8 calibration, one of ``CALIB_METHODS``; ``None`` = the default (docs/guides/int8.md).
        int8_keep_ends: keep each backbone's first convolution and the convolutions feeding the head
            in fp32; ``None`` = the default.
        int8_tolerance: the int8 check's tolerance ``t`` (:mod:`.int8_check`); ``None`` = 0.5.
        accept_int8: write the int8 variant even when it fails the check (recorded in model.json).
        int8_thresholds: ``own`` (default: re-calibrated on the int8 outputs by training's rule,
            ``model.json`` ``variant_thresholds``) or ``bundle`` (the fp32 thresholds).
        int8_activations: ``uint8`` (asymmetric: every level used by the post-ReLU6 activations;
            the fast format of ONNX Runtime and OpenVINO on CPUs) or ``int8`` (symmetric, zero points
            0, as TensorRT requires); ``None`` = ``int8`` with ``--engine-precision int8``, else ``uint8``.
        openvino: also write an OpenVINO IR of every ONNX variant (``model_openvino*.xml`` + ``.bin``).
        engine: build a TensorRT engine here (needs TensorRT and a GPU).
        engine_precision: ``fp32``, ``fp16`` or ``int8``; ``None`` = fp16.
        min_batch, opt_batch, max_batch: batch range of the engine profile and of Triton.
        workspace_mb: TensorRT builder workspace limit, MiB.
        aoti: also write an AOTInductor package (``cdo_train.export.aoti``) for the torch backend,
            compiled for this machine's GPU (fp16) or CPU (fp32).
        aoti_precision: ``fp16`` or ``fp32``; ``None`` = fp16 on CUDA, fp32 on CPU.
        triton_repo: also write a Triton model repository there.
        model_name: Triton model name.
        simplify: ``None`` = simplify with onnxslim when installed; True requires it.
        verify: compare ONNX Runtime with PyTorch on a few images before writing.
        force: replace an existing bundle folder.
        allow_interrupted: export a run that was interrupted (``summary.json`` status) as it is.
    """

    model_config = ConfigDict(protected_namespaces=())

    opset: Int = Field(17, ge=MIN_OPSET, le=MAX_OPSET)
    fp16: Bool = False
    int8: Bool = False
    calib_images: Int | None = Field(None, ge=1)
    calib_dir: Path | None = None
    calib_method: CalibMethod | None = None
    int8_keep_ends: Bool | None = None
    int8_tolerance: Float | None = Field(None, ge=0, le=100)
    accept_int8: Bool = False
    int8_thresholds: Int8Thresholds | None = None
    int8_activations: Int8Activations | None = None
    openvino: Bool = False
    engine: Bool = False
    engine_precision: EnginePrecision | None = None
    min_batch: Int = Field(1, ge=1)
    opt_batch: Int = Field(8, ge=1)
    max_batch: Int = Field(32, ge=1)
    workspace_mb: Int = Field(2048, ge=64)
    aoti: Bool = False
    aoti_precision: AotiPrecision | None = None
    triton_repo: Path | None = None
    model_name: str = Field("cdo", pattern=r"^[A-Za-z0-9_-]+$",
                            json_schema_extra={"takes": "letters, digits, '-' and '_'"})
    simplify: Bool | None = None
    verify: Bool = True
    force: Bool = False
    allow_interrupted: Bool = False

    _what = "export option"

    @classmethod
    def _label(cls, key: str) -> str:
        return "--" + key.replace("_", "-")  # every option is the cdo-export flag of that name

    @property
    def precision(self) -> str:
        """The engine precision actually used."""
        return self.engine_precision or "fp16"

    @property
    def n_calib(self) -> int:
        return 64 if self.calib_images is None else self.calib_images

    @property
    def method(self) -> str:
        """The int8 calibration method actually used."""
        return self.calib_method or DEFAULT_CALIB_METHOD

    @property
    def keep_ends(self) -> bool:
        """Whether the int8 variant keeps the end convolutions in fp32."""
        return DEFAULT_KEEP_ENDS if self.int8_keep_ends is None else self.int8_keep_ends

    @property
    def activations(self) -> str:
        """The int8 variant's activation type actually used."""
        if self.int8_activations is not None:
            return self.int8_activations
        return "int8" if self.engine and self.precision == "int8" else "uint8"

    @property
    def tolerance(self) -> float:
        return DEFAULT_TOLERANCE if self.int8_tolerance is None else float(self.int8_tolerance)

    def wants_fp16(self) -> bool:
        """fp16 variant requested, or needed by an fp16 engine."""
        return self.fp16 or (self.engine and self.precision == "fp16")

    def formats(self) -> list[str]:
        """Names of the table rows this export writes, in table order."""
        wanted = {"onnx", "onnx-fp16" if self.wants_fp16() else "", "onnx-int8" if self.int8 else "",
                  "openvino" if self.openvino else "", "engine" if self.engine else "", "aoti" if self.aoti else "",
                  "triton" if self.triton_repo is not None else ""}
        return [f.name for f in EXPORT_FORMATS if f.name in wanted]

    @classmethod
    def from_kwargs(cls, **options: object) -> "ExportOptions":
        """Options from keyword arguments (the Python API); an unknown name fails with suggestions.

        Raises:
            CdoError: an unknown option or a bad value.
        """
        return cls(**options)

    def validate(self) -> "ExportOptions":
        """Check option combinations and installed modules; returns ``self``.

        Raises:
            CdoError: the first problem found, naming the flags involved.
        """
        int8_only = {"--calib-images": self.calib_images is not None, "--calib-dir": self.calib_dir is not None,
                     "--calib-method": self.calib_method is not None, "--int8-keep-ends": self.int8_keep_ends is not None,
                     "--int8-tolerance": self.int8_tolerance is not None, "--accept-int8": self.accept_int8,
                     "--int8-thresholds": self.int8_thresholds is not None,
                     "--int8-activations": self.int8_activations is not None}
        for flag, given in int8_only.items():
            if given and not self.int8:
                raise CdoError(f"{flag} only applies to --int8")
        if self.engine and self.precision == "int8" and self.activations != "int8":
            raise CdoError("--engine-precision int8 needs --int8-activations int8 (TensorRT takes symmetric int8 only)")
        if self.calib_dir is not None and not Path(self.calib_dir).is_dir():
            raise CdoError(f"--calib-dir {self.calib_dir} is not a folder")
        if self.engine_precision is not None and not self.engine:
            raise CdoError("--engine-precision only applies to --engine")
        if self.aoti_precision is not None and not self.aoti:
            raise CdoError("--aoti-precision only applies to --aoti")
        if self.engine and self.precision == "int8" and not self.int8:
            raise CdoError("--engine-precision int8 needs --int8 (the engine is built from model_int8.onnx)")
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise CdoError(f"batch range must satisfy 1 <= --min-batch <= --opt-batch <= --max-batch, got "
                           f"{self.min_batch}/{self.opt_batch}/{self.max_batch}")
        if self.simplify and not module_available("onnxslim"):
            raise CdoError("--simplify needs onnxslim (pip install onnxslim)")
        for name in self.formats():
            fmt = get_format(name)
            missing = [m for m in fmt.needs if not module_available(m)]
            if missing:
                raise CdoError(f"{fmt.flag if fmt.flag != '-' else 'export'} needs {', '.join(missing)}, "
                               f"which is not installed ({fmt.install})")
        return self
