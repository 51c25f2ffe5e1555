"""Build side of the fake ``tensorrt``: Builder, network, parser, config, profile, timing cache.

Semantics mirrored per major version (sources in ``trt_tables``):

* ``create_network(flags)``: bits at or above EnumMax are invalid (None, error logged); 10.x is
  strongly typed only with the ``STRONGLY_TYPED`` bit (1 << 1); 11.x is always strongly typed and
  bit 0 (the deprecated ``STRONGLY_TYPED``) is ignored -- ``1 << 1`` there means
  ``PREFER_JIT_PYTHON_PLUGINS``;
* strongly typed networks reject ``layer.precision = ...`` / ``set_output_type`` (10.x; 11.x does not
  bind them at all); precision builder flags with a strongly typed network fail the build;
* a new ``IBuilderConfig`` has ``TF32`` set;
* ``create_timing_cache`` returns None for a cache of another TensorRT version (createTimingCache
  returns nullptr) and ``set_timing_cache(None, ...)`` raises TypeError (pybind11 cannot bind None
  to ``ITimingCache const&``); a cache from another device is refused unless ``ignore_mismatch``;
* the parser names layers after ONNX nodes and its helper layers ``ONNXTRT_*`` (onnx-tensorrt
  ``ImporterContext.cpp`` ``registerLayer`` l.108-141, ``importerUtils.cpp`` l.171 ``ONNXTRT_Broadcast``).

The serialized "engine" is JSON that the fake runtime reads back (profile, version, what was pinned).
"""

from __future__ import annotations

import json
import types
from typing import Any

from . import trt_tables as T

ENGINE_MAGIC = b"FAKE-TRT-ENGINE\n"
CACHE_MAGIC = b"FAKE-TRT-CACHE\n"

#: what the parser makes of a cdo graph: (layer name, type, producers of its inputs, output dtype)
CDO_LAYERS = (
    ("(Unnamed Layer* 0) [Constant]", "CONSTANT", (), "float32"),
    ("/Cast", "CAST", ("image",), "float32"),
    ("/Transpose", "SHUFFLE", ("/Cast",), "float32"),
    ("/Div", "ELEMENTWISE", ("/Transpose", "(Unnamed Layer* 0) [Constant]"), "float32"),
    ("/model/Sub", "ELEMENTWISE", ("/Div",), "float32"),
    ("/model/Div", "ELEMENTWISE", ("/model/Sub",), "float32"),
    ("/model/teacher/conv1/Conv", "CONVOLUTION", ("/model/Div",), "float32"),
    ("ONNXTRT_Broadcast_12", "SHUFFLE", ("/model/teacher/conv1/Conv",), "float32"),  # helper in the teacher
    ("/model/teacher/layer1/Add", "ELEMENTWISE", ("ONNXTRT_Broadcast_12",), "float32"),
    ("/model/student/conv1/Conv", "CONVOLUTION", ("/model/Div",), "float32"),
    ("/model/head/Mul", "ELEMENTWISE", ("/model/teacher/layer1/Add", "/model/student/conv1/Conv"), "float32"),
    ("ONNXTRT_Broadcast_31", "SHUFFLE", ("/model/head/Mul",), "float32"),  # helper in the head
    ("/model/head/ReduceSum", "REDUCE", ("ONNXTRT_Broadcast_31",), "float32"),
    ("/model/head/Shape", "SHAPE", ("/model/head/ReduceSum",), "int64"),
    ("/model/head/Resize", "RESIZE", ("/model/head/ReduceSum", "/model/head/Shape"), "float32"),
    ("/model/head/Conv", "CONVOLUTION", ("/model/head/Resize",), "float32"),
    ("/model/head/ReduceMax", "REDUCE", ("/model/head/Conv",), "float32"),
)


class HostMemory(bytes):
    """``IHostMemory``: ``bytes(mem)`` gives the data."""


def read_blob(data: bytes, magic: bytes, what: str, version: str, messages: list) -> dict | None:
    """The JSON record of a fake engine or timing cache; None (error logged) if corrupt or of another version."""
    if not data.startswith(magic):
        messages.append(("ERROR", f"{what}: corrupt or not a serialized {what}"))
        return None
    doc = json.loads(data[len(magic):])
    if doc["version"] != version:
        messages.append(("ERROR", f"{what}: made by TensorRT {doc['version']}, this is {version}"))
        return None
    return doc


def builder_classes(trt: types.ModuleType, major: int, state: Any) -> None:  # noqa: C901 - one class per API
    """Attach Builder, OnnxParser and friends to the fake module ``trt``."""
    flag_bit = {name: 1 << v for name, v in T.NETWORK_FLAGS[major].items()}

    def error(msg: str) -> None:
        state.messages.append(("ERROR", msg))

    class Tensor:
        def __init__(self, name: str, dtype: Any, producer: "Layer | None") -> None:
            self.name, self.dtype, self.producer = name, dtype, producer
            self.is_shape_tensor = False

    class Layer:
        def __init__(self, network: "Network", name: str, kind: str, inputs: list, dtype: str) -> None:
            self._net, self.name, self.type = network, name, trt.LayerType[kind]
            self._inputs = inputs
            self._outputs = [Tensor(f"{name}_output_0", getattr(trt, dtype), self)]
            self._precision: Any = None
            self._output_types: dict[int, Any] = {}

        num_inputs = property(lambda self: len(self._inputs))
        num_outputs = property(lambda self: len(self._outputs))

        def get_input(self, i: int) -> Tensor | None:
            return self._inputs[i]

        def get_output(self, i: int) -> Tensor:
            return self._outputs[i]

        def get_output_type(self, i: int) -> Any:
            return self._output_types.get(i, self._outputs[i].dtype)

    class WeakTypingLayer(Layer):  # 10.x binds the precision API
        def _get_precision(self) -> Any:
            return self._precision if self._precision is not None else trt.float32

        def _set_precision(self, dtype: Any) -> None:
            if self._net.strongly_typed:
                self._net.errors.append(f"{self.name}: setPrecision on a strongly typed network")
                return
            self._precision = dtype

        precision = property(_get_precision, _set_precision)

        def set_output_type(self, i: int, dtype: Any) -> None:
            if self._net.strongly_typed:
                self._net.errors.append(f"{self.name}: setOutputType on a strongly typed network")
                return
            self._output_types[i] = dtype

    layer_cls = WeakTypingLayer if T.LAYER_PRECISION_API[major] else Layer

    class Network:
        def __init__(self, flags: int) -> None:
            self.flags = flags
            set_bits = {name for name, bit in flag_bit.items() if flags & bit}
            self.strongly_typed = major >= 11 or "STRONGLY_TYPED" in set_bits
            self.plugin_preference = sorted(set_bits & {"PREFER_JIT_PYTHON_PLUGINS", "PREFER_AOT_PYTHON_PLUGINS"})
            self.layers: list[Layer] = []
            self.errors: list[str] = []

        num_layers = property(lambda self: len(self.layers))

        def get_layer(self, i: int) -> Layer:
            return self.layers[i]

    class OnnxParser:
        def __init__(self, network: Network, logger: Any) -> None:
            self.network = network
            self._errors: list[str] = []

        num_errors = property(lambda self: len(self._errors))

        def parse_from_file(self, path: str) -> bool:
            state.parsed.append(str(path).replace("\\", "/").rsplit("/", 1)[-1])
            if state.parse_errors:
                self._errors = list(state.parse_errors)
                return False
            tensors = {"image": Tensor("image", trt.uint8, None)}
            for name, kind, inputs, dtype in state.layers:
                layer = layer_cls(self.network, name, kind, [tensors[i] for i in inputs], dtype)
                tensors[name] = layer.get_output(0)
                self.network.layers.append(layer)
            return True

        def get_error(self, i: int) -> str:
            return self._errors[i]

    class TimingCache:
        def __init__(self, device: str, entries: int) -> None:
            self.device, self.entries = device, entries

        def serialize(self) -> HostMemory:
            doc = {"version": trt.__version__, "device": self.device, "entries": self.entries}
            return HostMemory(CACHE_MAGIC + json.dumps(doc).encode())

    class Profile:
        def __init__(self) -> None:
            self.shapes: dict[str, tuple] = {}

        def set_shape(self, name: str, lo: Any, opt: Any, hi: Any) -> None:
            dims = tuple(tuple(int(v) for v in d) for d in (lo, opt, hi))
            if not all(a <= b <= c for a, b, c in zip(*dims)):
                error(f"profile for {name}: need min <= opt <= max, got {dims}")
                return
            self.shapes[name] = dims

    class BuilderConfig:
        def __init__(self) -> None:
            self.flags = {trt.BuilderFlag[f] for f in T.DEFAULT_BUILDER_FLAGS}
            self.pools: dict[Any, int] = {}
            self.profiles: list[Profile] = []
            self.cache: TimingCache | None = None

        def set_flag(self, flag: Any) -> None:
            self.flags.add(trt.BuilderFlag(flag))

        def clear_flag(self, flag: Any) -> None:
            self.flags.discard(trt.BuilderFlag(flag))

        def get_flag(self, flag: Any) -> bool:
            return trt.BuilderFlag(flag) in self.flags

        def set_memory_pool_limit(self, pool: Any, size: int) -> None:
            self.pools[trt.MemoryPoolType(pool)] = int(size)

        def add_optimization_profile(self, profile: Profile) -> int:
            if not profile.shapes:
                return -1
            self.profiles.append(profile)
            return len(self.profiles) - 1

        def create_timing_cache(self, serialized: bytes) -> TimingCache | None:
            data = bytes(serialized)
            if not data:
                return TimingCache(state.device_name, 0)
            doc = read_blob(data, CACHE_MAGIC, "timing cache", trt.__version__, state.messages)
            return None if doc is None else TimingCache(doc["device"], doc["entries"])

        def set_timing_cache(self, cache: TimingCache, ignore_mismatch: bool) -> bool:
            if not isinstance(cache, TimingCache):
                raise TypeError("set_timing_cache(): incompatible function arguments. The following argument "
                                "types are supported: (self, cache: tensorrt.ITimingCache, ignore_mismatch: bool)")
            if cache.device != state.device_name and not ignore_mismatch:
                return False
            self.cache = cache
            return True

        def get_timing_cache(self) -> TimingCache | None:
            return self.cache

    class Builder:
        def __init__(self, logger: Any) -> None:
            self.logger = logger

        def create_network(self, flags: int = 0) -> Network | None:
            state.network_flags.append(int(flags))
            if int(flags) >> T.NETWORK_FLAG_BITS[major]:
                error(f"createNetworkV2: invalid flags {flags:#x}")
                return None
            return Network(int(flags))

        def create_builder_config(self) -> BuilderConfig:
            return BuilderConfig()

        def create_optimization_profile(self) -> Profile:
            return Profile()

        def build_serialized_network(self, network: Network, config: BuilderConfig) -> HostMemory | None:
            precision = sorted(f.name for f in config.flags if f.name in T.PRECISION_FLAGS)
            record = {"version": trt.__version__, "strongly_typed": network.strongly_typed,
                      "flags": sorted(f.name for f in config.flags), "errors": list(network.errors),
                      "pinned": {la.name: la._precision.name for la in network.layers if la._precision is not None},
                      "output_types": {la.name: {str(k): v.name for k, v in la._output_types.items()}
                                       for la in network.layers if la._output_types},
                      "workspace": {p.name: v for p, v in config.pools.items()},
                      "profiles": [list(map(list, p.shapes["image"])) for p in config.profiles if "image" in p.shapes],
                      "plugin_preference": network.plugin_preference}
            state.builds.append(record)
            if network.errors:
                error(f"build: {network.errors[0]}")
                return None
            if network.strongly_typed and precision:
                error(f"build: precision flags {precision} are not allowed with a strongly typed network")
                return None
            if len(record["profiles"]) != 1:
                error("build: the dynamic input 'image' needs one optimisation profile")
                return None
            record["profile"] = record["profiles"][0]
            if config.cache is not None:
                config.cache.entries += len(network.layers)
            return HostMemory(ENGINE_MAGIC + json.dumps(record).encode())

    trt.Builder, trt.OnnxParser, trt.Tensor = Builder, OnnxParser, Tensor
