"""Reduced-precision ONNX variants: fp16 backbones, int8 Q/DQ backbones, fp32 head.

TensorRT 11 takes precision from the graph (strong typing), so both variants
carry their precision explicitly; the head always stays fp32 because the
discrepancy ``2 - 2 cos`` of nearly equal features cancels in fp16/int8.

fp16 (:func:`to_fp16`), the same scheme as ModelOpt AutoCast with a node block
list, done directly on the graph:
    1. the backbone nodes (:data:`~cdo_train.export.graph.BACKBONE_SCOPES`) get
       fp16 initializers and ``Constant`` values (shared ones are duplicated);
    2. a ``Cast`` to fp16 is inserted where a float tensor enters the backbones
       (the normalised image) and a ``Cast`` to fp32 where one leaves them
       (the feature maps);
    3. input cast/normalisation and the head are untouched; inputs and outputs
       keep their types (uint8 in, fp32 out).

int8 (:func:`quantize_int8`): ONNX Runtime's static quantization in QDQ format,
symmetric int8 activations and per-channel weights (zero points 0, as TensorRT
requires), float biases, calibrated on good training images (``minmax``,
``percentile`` or ``entropy``, :data:`CALIB_METHODS`); nodes outside the
backbones are excluded, and with ``keep_ends`` also each backbone's first
convolution and the convolutions whose outputs leave the backbones (the
features the discrepancy compares), see :func:`end_convs`. ``activations="uint8"``
(the CPU default of ``cdo-export``) makes the activations asymmetric uint8
instead. Its Q/DQ nodes are renamed ``qdq:<name>``: ONNX
Runtime names them after the tensor they quantize (``/model/head/Cast_output_0_QuantizeLinear``),
which would put them under the fp32 layer patterns of a weak-typed TensorRT build
(:data:`cdo_deploy.engine_plan.FP32_LAYERS`), and trtexec would then force their int8 outputs to fp32.

Example:
    >>> fp16 = to_fp16(onnx.load("bundle/model.onnx"))          # doctest: +SKIP
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .formats import CALIB_METHODS
from .graph import BACKBONE_SCOPES, is_backbone_node

__all__ = ["CALIB_METHODS", "HISTOGRAM_MAX_IMAGES", "end_convs", "quantize_int8", "to_fp16"]

log = logging.getLogger(__name__)

_FLOAT, _FLOAT16 = 1, 10
QDQ_PREFIX = "qdq:"
#: ONNX Runtime's percentile/entropy calibrators hold every activation of every calibration image in
#: memory (about 0.1 GB per 256 px image for lite0; 200 images were killed at 18.7 GB): at most this many.
HISTOGRAM_MAX_IMAGES = 32
_PASS_THROUGH = {"Add", "Clip", "Relu", "Mul", "Sigmoid", "HardSigmoid", "HardSwish", "Identity", "BatchNormalization"}
# inputs that must stay fp32 whatever the data type (ONNX type constraints)
_KEEP_FP32_INPUTS = {"Resize": (1, 2), "Upsample": (1,)}


def _tensor_types(model: Any) -> dict[str, int]:
    import onnx

    g = onnx.shape_inference.infer_shapes(model).graph
    types = {vi.name: vi.type.tensor_type.elem_type for vi in (*g.input, *g.output, *g.value_info)}
    types.update({t.name: t.data_type for t in g.initializer})
    return types


def to_fp16(model: Any) -> Any:
    """fp16 copy of ``model``: backbones in fp16, input handling and head in fp32.

    Args:
        model: the fp32 ``onnx.ModelProto`` written by :func:`~cdo_train.export.graph.export_onnx`.

    Returns:
        A new, checked ``onnx.ModelProto`` with the same inputs and outputs.
    """
    import onnx
    from onnx import helper, numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    del g.value_info[:]
    types = _tensor_types(m)
    inits = {t.name: t for t in g.initializer}
    backbone = [n for n in g.node if is_backbone_node(n.name)]
    if not backbone:
        raise ValueError("no backbone nodes found: was the graph exported by cdo-export?")
    produced_inside = {o for n in backbone for o in n.output}
    used_outside = {i for n in g.node if not is_backbone_node(n.name) for i in n.input} | {o.name for o in g.output}

    # feature maps leaving the backbones: fp16 inside, a Cast back to fp32 under the original name
    leaving = {o: f"{o}__fp16" for n in backbone for o in n.output if o in used_outside and types.get(o) == _FLOAT}
    casts_out = [helper.make_node("Cast", [fp16], [name], to=_FLOAT, name=f"{name}__to_fp32")
                 for name, fp16 in leaving.items()]
    entering: dict[str, str] = {}  # fp32 tensors and initializers entering the backbones -> fp16 twins
    new_inits, casts_in = [], []
    for node in backbone:
        keep = _KEEP_FP32_INPUTS.get(node.op_type, ())
        for k, name in enumerate(node.input):
            if name in leaving:
                node.input[k] = leaving[name]
            elif name and k not in keep and name not in produced_inside and types.get(name) == _FLOAT:
                if name not in entering:
                    entering[name] = f"{name}__fp16"
                    if name in inits:
                        arr = numpy_helper.to_array(inits[name]).astype(np.float16)
                        new_inits.append(numpy_helper.from_array(arr, entering[name]))
                    else:
                        casts_in.append(helper.make_node("Cast", [name], [entering[name]], to=_FLOAT16,
                                                         name=f"{name}__to_fp16"))
                node.input[k] = entering[name]
        for k, name in enumerate(node.output):
            node.output[k] = leaving.get(name, name)
        if node.op_type == "Cast" and any(a.name == "to" and a.i == _FLOAT for a in node.attribute):
            for a in node.attribute:
                if a.name == "to":
                    a.i = _FLOAT16
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value" and a.t.data_type == _FLOAT:
                    a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float16), a.t.name))
    g.initializer.extend(new_inits)
    used = {i for n in g.node for i in n.input}
    keep_inits = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep_inits)
    _insert_sorted(g, casts_in + casts_out)
    onnx.checker.check_model(m, full_check=True)
    return m


def _insert_sorted(graph: Any, extra: list[Any]) -> None:
    """Add nodes and re-sort the graph topologically (ONNX requires it)."""
    nodes = list(graph.node) + extra
    producer = {o: i for i, n in enumerate(nodes) for o in n.output}
    order, state = [], [0] * len(nodes)

    def visit(i: int) -> None:
        stack = [(i, iter(nodes[i].input))]
        state[i] = 1
        while stack:
            j, it = stack[-1]
            nxt = next((producer[x] for x in it if x in producer and state[producer[x]] == 0), None)
            if nxt is None:
                stack.pop()
                state[j] = 2
                order.append(nodes[j])
            else:
                state[nxt] = 1
                stack.append((nxt, iter(nodes[nxt].input)))

    for i in range(len(nodes)):
        if state[i] == 0:
            visit(i)
    del graph.node[:]
    graph.node.extend(order)


class _DropRecordsFrom(logging.Filter):
    """Drops log records emitted from files under a package folder."""

    def __init__(self, package: str) -> None:
        super().__init__()
        self.part = f"{package}/"

    def filter(self, record: logging.LogRecord) -> bool:
        return self.part not in record.pathname.replace("\\", "/")


class _ImageReader:
    """ONNX Runtime calibration reader: uint8 (N,H,W,3) images in batches."""

    def __init__(self, images: np.ndarray, batch: int = 8) -> None:
        self._batches: Iterator[np.ndarray] = iter([images[i:i + batch] for i in range(0, len(images), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {"image": np.ascontiguousarray(batch)}


def end_convs(model: Any) -> list[str]:
    """Names of each backbone's first Conv and of the Convs whose outputs leave the backbones.

    From each tensor a non-backbone node consumes, the walk goes back through
    element-wise nodes (activation, residual ``Add``: the input a Conv produced)
    to the first Conv; the first Conv of each backbone in graph order is added.
    """
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    names: list[str] = []
    for scope in BACKBONE_SCOPES:
        first = next((n for n in g.node if n.op_type == "Conv" and n.name.startswith(scope)), None)
        if first is not None:
            names.append(first.name)
    leaving = {i for n in g.node if not is_backbone_node(n.name) for i in n.input
               if i in producer and is_backbone_node(producer[i].name)}
    for tensor in sorted(leaving):
        node = producer.get(tensor)
        for _ in range(8):
            if node is None or node.op_type == "Conv" or node.op_type not in _PASS_THROUGH:
                break
            ins = [producer[i] for i in node.input if i in producer]
            node = next((x for x in ins if x.op_type == "Conv"), ins[0] if ins else None)
        if node is not None and node.op_type == "Conv" and node.name not in names:
            names.append(node.name)
    return names


def quantize_int8(fp32_path: Path, out_path: Path, calib_images: np.ndarray, method: str = "minmax",
                  keep_ends: bool = False, activations: str = "int8") -> Any:
    """Write the int8 Q/DQ variant of ``fp32_path`` to ``out_path`` and return it.

    Args:
        fp32_path: the exported fp32 ONNX file (without metadata is fine).
        out_path: where to write the quantized model.
        calib_images: good images, uint8 (N, H, W, 3) at model resolution.
        method: one of :data:`CALIB_METHODS`.
        keep_ends: leave the :func:`end_convs` in fp32.
        activations: ``int8`` (symmetric, zero point 0: TensorRT, OpenVINO) or ``uint8``
            (asymmetric, ONNX Runtime's preferred x86 format; not for TensorRT).

    Returns:
        The quantized ``onnx.ModelProto``.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if method not in CALIB_METHODS:
        raise ValueError(f"calibration method {method!r} is not one of {CALIB_METHODS}")
    if method != "minmax" and len(calib_images) > HISTOGRAM_MAX_IMAGES:
        log.warning("%s calibration keeps every activation in memory: using %d of the %d images (minmax has no "
                    "such limit)", method, HISTOGRAM_MAX_IMAGES, len(calib_images))
        pick = np.linspace(0, len(calib_images) - 1, HISTOGRAM_MAX_IMAGES).round().astype(int)
        calib_images = calib_images[pick]
    model = onnx.load(str(fp32_path))
    exclude = [n.name for n in model.graph.node if not is_backbone_node(n.name)]
    if keep_ends:
        exclude += end_convs(model)
    calib = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
             "entropy": CalibrationMethod.Entropy}[method]
    symmetric = activations == "int8"
    quiet = _DropRecordsFrom("onnxruntime")  # ORT's quantizer logs per-tensor chatter on the root logger
    logging.root.addFilter(quiet)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_static(
                # histogram calibrators stack per-batch arrays: equal batches (of 1) for them
                str(fp32_path), str(out_path), _ImageReader(calib_images, 8 if method == "minmax" else 1),
                quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8,
                weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=exclude, calibrate_method=calib,
                extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True, "QuantizeBias": False,
                               "CalibPercentile": 99.999},
            )
    finally:
        logging.root.removeFilter(quiet)
    q = onnx.load(str(out_path))
    for node in q.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and not node.name.startswith(QDQ_PREFIX):
            node.name = QDQ_PREFIX + node.name
    onnx.checker.check_model(q, full_check=True)
    onnx.save(q, str(out_path))
    return q
