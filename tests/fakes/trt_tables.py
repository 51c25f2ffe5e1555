"""TensorRT's Python enums per major version, as the real headers and bindings define them.

Read from NVIDIA/TensorRT at tags ``v10.13.3`` and ``v11.1`` (names as bound in
``python/src/infer/pyCore.cpp`` / ``pyGraph.cpp``, values from ``include/NvInfer.h`` and
``include/NvInferRuntimeBase.h``):

* ``NetworkDefinitionCreationFlag``: 10.13.3 ``NvInfer.h`` l.10470-10491 (``kEXPLICIT_BATCH = 0``
  deprecated and ignored, ``kSTRONGLY_TYPED = 1``, ``kPREFER_JIT_PYTHON_PLUGINS = 2``,
  ``kPREFER_AOT_PYTHON_PLUGINS = 3``; EnumMax 4) and bound in ``pyCore.cpp`` l.1850-1859;
  11.1 ``NvInfer.h`` l.11462-11481 (``kSTRONGLY_TYPED = 0`` "deprecated in TensorRT 11.0. Strongly
  typed mode is always enabled ... ignored", ``kPREFER_JIT_PYTHON_PLUGINS = 1``,
  ``kPREFER_AOT_PYTHON_PLUGINS = 2``; EnumMax 3; no ``EXPLICIT_BATCH``), bound in ``pyCore.cpp``
  l.1771-1778.
* ``BuilderFlag``: 10.13.3 ``NvInfer.h`` l.8846-9021 (``kFP16 = 0``, ``kINT8 = 1``, ``kTF32 = 6``
  "enabled by default", ``kPREFER_PRECISION_CONSTRAINTS = 10``, the precision flags deprecated in
  10.12), bound in ``pyCore.cpp`` l.1646-1682; 11.1 ``NvInfer.h`` l.9958-10101 (no FP16/INT8/BF16/
  FP8/INT4/FP4, no precision-constraint flags; ``kTF32 = 6`` still on by default), ``pyCore.cpp``
  l.1599-1623.
* ``LayerType``: ``NvInfer.h`` l.57 (same values in both), ``DataType`` ``NvInferRuntimeBase.h``
  l.142 (10.13.3) / l.148 (11.1), ``TensorIOMode`` l.655 / l.661, ``MemoryPoolType.WORKSPACE = 0``,
  ``ExecutionContextAllocationStrategy`` ``NvInferRuntime.h`` (``kSTATIC = 0``,
  ``kON_PROFILE_CHANGE = 1``, ``kUSER_MANAGED = 2``).
* ``ILayer``: 10.13.3 ``pyGraph.cpp`` l.368-384 binds ``precision`` / ``set_output_type``
  (deprecated in 10.12; "Strongly-typed networks reject calls to method setPrecision /
  setOutputType", ``NvInfer.h`` l.688 / l.769); 11.1 ``pyGraph.cpp`` l.425-439 binds neither.
"""

from __future__ import annotations

NETWORK_FLAGS = {
    10: {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1, "PREFER_JIT_PYTHON_PLUGINS": 2, "PREFER_AOT_PYTHON_PLUGINS": 3},
    11: {"STRONGLY_TYPED": 0, "PREFER_JIT_PYTHON_PLUGINS": 1, "PREFER_AOT_PYTHON_PLUGINS": 2},
}
#: EnumMax<NetworkDefinitionCreationFlag>: bits at or above it are invalid.
NETWORK_FLAG_BITS = {10: 4, 11: 3}
#: flags that are accepted but do nothing (deprecated).
IGNORED_NETWORK_FLAGS = {10: ("EXPLICIT_BATCH",), 11: ("STRONGLY_TYPED",)}

BUILDER_FLAGS = {
    10: {"FP16": 0, "INT8": 1, "DEBUG": 2, "GPU_FALLBACK": 3, "REFIT": 4, "DISABLE_TIMING_CACHE": 5, "TF32": 6,
         "SPARSE_WEIGHTS": 7, "SAFETY_SCOPE": 8, "OBEY_PRECISION_CONSTRAINTS": 9,
         "PREFER_PRECISION_CONSTRAINTS": 10, "DIRECT_IO": 11, "REJECT_EMPTY_ALGORITHMS": 12,
         "VERSION_COMPATIBLE": 13, "EXCLUDE_LEAN_RUNTIME": 14, "FP8": 15, "ERROR_ON_TIMING_CACHE_MISS": 16,
         "BF16": 17, "DISABLE_COMPILATION_CACHE": 18, "STRIP_PLAN": 19, "REFIT_IDENTICAL": 20,
         "WEIGHT_STREAMING": 21, "INT4": 22, "REFIT_INDIVIDUAL": 23, "STRICT_NANS": 24, "MONITOR_MEMORY": 25,
         "FP4": 26, "EDITABLE_TIMING_CACHE": 27, "DISTRIBUTIVE_INDEPENDENCE": 28},
    11: {"DEBUG": 2, "GPU_FALLBACK": 3, "REFIT": 4, "DISABLE_TIMING_CACHE": 5, "TF32": 6, "SPARSE_WEIGHTS": 7,
         "SAFETY_SCOPE": 8, "DIRECT_IO": 11, "VERSION_COMPATIBLE": 12, "EXCLUDE_LEAN_RUNTIME": 13,
         "ERROR_ON_TIMING_CACHE_MISS": 15, "DISABLE_COMPILATION_CACHE": 17, "STRIP_PLAN": 18,
         "REFIT_IDENTICAL": 19, "WEIGHT_STREAMING": 20, "REFIT_INDIVIDUAL": 22, "STRICT_NANS": 23,
         "MONITOR_MEMORY": 24, "EDITABLE_TIMING_CACHE": 26, "DISTRIBUTIVE_INDEPENDENCE": 27},
}
#: flags a new IBuilderConfig has set ("kTF32 ... Enabled by default").
DEFAULT_BUILDER_FLAGS = ("TF32",)
#: weak-typing precision flags (10.x only): a strongly typed network must not be built with them.
PRECISION_FLAGS = ("FP16", "INT8", "BF16", "FP8", "INT4", "FP4")

LAYER_TYPES = {"CONVOLUTION": 0, "CAST": 1, "ACTIVATION": 2, "POOLING": 3, "SCALE": 5, "CONCATENATION": 8,
               "ELEMENTWISE": 9, "UNARY": 11, "PADDING": 12, "SHUFFLE": 13, "REDUCE": 14, "TOPK": 15,
               "GATHER": 16, "MATRIX_MULTIPLY": 17, "CONSTANT": 19, "IDENTITY": 20, "SLICE": 22, "SHAPE": 23,
               "RESIZE": 25, "SELECT": 30, "FILL": 31, "QUANTIZE": 32, "DEQUANTIZE": 33, "SQUEEZE": 47,
               "UNSQUEEZE": 48}
#: DataType member -> (value, module-level alias such as ``trt.float32``, numpy dtype for ``trt.nptype``)
DATA_TYPES = {"FLOAT": (0, "float32", "float32"), "HALF": (1, "float16", "float16"), "INT8": (2, "int8", "int8"),
              "INT32": (3, "int32", "int32"), "BOOL": (4, "bool", "bool"), "UINT8": (5, "uint8", "uint8"),
              "FP8": (6, "fp8", None), "BF16": (7, "bfloat16", None), "INT64": (8, "int64", "int64")}
TENSOR_IO_MODES = {"NONE": 0, "INPUT": 1, "OUTPUT": 2}
MEMORY_POOL_TYPES = {"WORKSPACE": 0}
ALLOCATION_STRATEGIES = {"STATIC": 0, "ON_PROFILE_CHANGE": 1, "USER_MANAGED": 2}
#: ILayer precision API (bound in 10.x, gone in 11.x)
LAYER_PRECISION_API = {10: True, 11: False}

#: trtexec build options per major version (``samples/common/sampleOptions.cpp``: v10.13.3 parses
#: ``--noTF32``/``--fp16``/``--int8``/``--stronglyTyped`` at l.1252-1258, ``--precisionConstraints``
#: l.1318, ``--layerPrecisions``/``--layerOutputTypes`` l.1336-1337, ``--timingCacheFile`` l.1491;
#: v11.1 parses ``--noTF32`` and ``--stronglyTyped`` at l.1213-1214 ("[Deprecated] ... a no-op", help
#: l.2752) and ``--timingCacheFile`` l.1353, and has none of the precision options).
TRTEXEC_OPTIONS = {
    10: {"--onnx", "--saveEngine", "--minShapes", "--optShapes", "--maxShapes", "--memPoolSize", "--timingCacheFile",
         "--noTF32", "--fp16", "--int8", "--bf16", "--stronglyTyped", "--precisionConstraints", "--layerPrecisions",
         "--layerOutputTypes"},
    11: {"--onnx", "--saveEngine", "--minShapes", "--optShapes", "--maxShapes", "--memPoolSize", "--timingCacheFile",
         "--noTF32"},
}
TRTEXEC_DEPRECATED = {10: set(), 11: {"--stronglyTyped"}}
