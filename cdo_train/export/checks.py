"""Walk an ONNX graph and list what TensorRT's ONNX parser would reject.

TensorRT cannot be installed on our CI machines, so the known parser
constraints are checked statically, on every export and in the tests:

1. opset of the default domain within 17..24; no custom-domain ops (they
   would need plugins), no op on :data:`UNSUPPORTED_OPS`;
2. UINT8 only as a network input or output: the only UINT8 tensor is the
   input ``image`` and its only consumer is a Cast to FLOAT (or FLOAT16);
3. ``Reduce*`` ``axes``, ``TopK`` ``K``, ``Slice``/``Squeeze``/``Unsqueeze``
   axes are constants (attribute, initializer or ``Constant`` node);
4. ``Resize`` without antialiasing, mode ``nearest``/``linear``, stretch policy;
5. ``Pad`` mode ``reflect`` only on float tensors;
6. ``TopK`` with ``K < 3840``;
7. ``Conv`` weights are constant (an initializer, possibly through
   ``DequantizeLinear``/``Cast``), Q/DQ zero points are 0 (symmetric).

Example:
    >>> from onnx import TensorProto, helper
    >>> g = helper.make_graph(
    ...     [helper.make_node("Cast", ["image"], ["x"], to=TensorProto.FLOAT),
    ...      helper.make_node("Resize", ["x", "", "s"], ["y"], "up", mode="linear", antialias=1)], "g",
    ...     [helper.make_tensor_value_info("image", TensorProto.UINT8, ["B", 8, 8, 3])],
    ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    ...     [helper.make_tensor("s", TensorProto.FLOAT, [4], [1, 1, 2, 2])])
    >>> tensorrt_problems(helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)]))
    ["Resize 'up': antialiasing is not supported"]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .formats import MAX_OPSET, MIN_OPSET

__all__ = ["TOPK_MAX", "UNSUPPORTED_OPS", "tensorrt_problems"]

TOPK_MAX = 3840
#: ONNX ops the TensorRT 10 ONNX parser does not implement.
UNSUPPORTED_OPS = frozenset({
    "BitShift", "Compress", "ConcatFromSequence", "ConvInteger", "Det", "DynamicQuantizeLinear",
    "ImageDecoder", "MatMulInteger", "MaxRoiPool", "MaxUnpool", "Multinomial", "NegativeLogLikelihoodLoss",
    "Optional", "OptionalGetElement", "OptionalHasElement", "QLinearConv", "QLinearMatMul", "RegexFullMatch",
    "SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase", "SequenceInsert", "SequenceLength",
    "SequenceMap", "SoftmaxCrossEntropyLoss", "SplitToSequence", "StringConcat", "StringNormalizer",
    "StringSplit", "TfIdfVectorizer", "Unique",
})
_AXES_INPUT = {"ReduceSum": 1, "ReduceMax": 1, "ReduceMin": 1, "ReduceMean": 1, "ReduceProd": 1, "ReduceL1": 1,
               "ReduceL2": 1, "ReduceLogSum": 1, "ReduceLogSumExp": 1, "ReduceSumSquare": 1, "Squeeze": 1,
               "Unsqueeze": 1, "Slice": 3, "TopK": 1}
_FLOATS = {1, 10, 11, 16}  # FLOAT, FLOAT16, DOUBLE, BFLOAT16
_UINT8 = 2


def _elem_types(model: Any) -> dict[str, int]:
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - shape inference is best effort here
        inferred = model
    g = inferred.graph
    types = {vi.name: vi.type.tensor_type.elem_type for vi in (*g.input, *g.output, *g.value_info)}
    types.update({t.name: t.data_type for t in g.initializer})
    for node in g.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    types[node.output[0]] = a.t.data_type
    return types


def _constants(graph: Any) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    out = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    out[node.output[0]] = numpy_helper.to_array(a.t)
    return out


def _attr(node: Any, name: str, default: Any = None) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            v = helper.get_attribute_value(a)
            return v.decode() if isinstance(v, bytes) else v
    return default


def _weight_is_constant(name: str, consts: dict[str, np.ndarray], producers: dict[str, Any]) -> bool:
    seen = 0
    while name not in consts and seen < 4:  # initializer -> DequantizeLinear / Cast / Identity -> Conv
        node = producers.get(name)
        if node is None or node.op_type not in ("DequantizeLinear", "Cast", "Identity"):
            return False
        name, seen = node.input[0], seen + 1
    return name in consts


def tensorrt_problems(model: Any, input_name: str = "image") -> list[str]:
    """Everything in ``model`` that TensorRT's ONNX parser is known to reject.

    Args:
        model: an ``onnx.ModelProto``.
        input_name: the UINT8 network input.

    Returns:
        One readable line per problem; empty when the graph is acceptable.
    """
    g = model.graph
    problems: list[str] = []
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    version = opsets.get("ai.onnx")
    if version is None or not MIN_OPSET <= version <= MAX_OPSET:
        problems.append(f"opset {version} outside {MIN_OPSET}..{MAX_OPSET}")
    types = _elem_types(model)
    consts = _constants(g)
    producers = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list[Any]] = {}
    for node in g.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)

    for name, t in types.items():
        if t != _UINT8:
            continue
        if name != input_name:
            problems.append(f"UINT8 tensor {name!r} (UINT8 is allowed only for the network input {input_name!r})")
            continue
        for node in consumers.get(name, []):
            if node.op_type != "Cast" or _attr(node, "to") not in (1, 10):
                problems.append(f"UINT8 tensor {name!r} feeds {node.op_type} {node.name!r} "
                                "(TensorRT takes UINT8 only into a Cast to float right after the input)")
    for out in g.output:
        if out.type.tensor_type.elem_type == _UINT8:
            problems.append(f"UINT8 network output {out.name!r}")

    for node in g.node:
        op, where = node.op_type, f"{node.op_type} {node.name!r}"
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"{where}: custom domain {node.domain!r} (needs a TensorRT plugin)")
        if op in UNSUPPORTED_OPS:
            problems.append(f"{where}: not supported by TensorRT's ONNX parser")
        if op == "Cast" and _attr(node, "to") == _UINT8:
            problems.append(f"{where}: casts to UINT8 inside the network")
        idx = _AXES_INPUT.get(op)
        if idx is not None and len(node.input) > idx and node.input[idx] and node.input[idx] not in consts:
            what = "K" if op == "TopK" else "axes"
            problems.append(f"{where}: {what} input {node.input[idx]!r} is not a constant")
        if op == "TopK":
            k = _attr(node, "k") if len(node.input) < 2 else consts.get(node.input[1])
            if k is not None and int(np.asarray(k).reshape(-1)[0]) >= TOPK_MAX:
                problems.append(f"{where}: K = {int(np.asarray(k).reshape(-1)[0])} >= {TOPK_MAX}")
        if op == "Resize":
            if _attr(node, "antialias", 0):
                problems.append(f"{where}: antialiasing is not supported")
            if _attr(node, "mode", "nearest") not in ("nearest", "linear"):
                problems.append(f"{where}: mode {_attr(node, 'mode')!r} (use nearest or linear)")
            if _attr(node, "keep_aspect_ratio_policy", "stretch") != "stretch":
                problems.append(f"{where}: keep_aspect_ratio_policy must be stretch")
        if op == "Pad" and _attr(node, "mode", "constant") == "reflect" and types.get(node.input[0]) not in _FLOATS:
            problems.append(f"{where}: reflect padding of a non-float tensor ({types.get(node.input[0])})")
        if op in ("Conv", "ConvTranspose") and not _weight_is_constant(node.input[1], consts, producers):
            problems.append(f"{where}: weights {node.input[1]!r} are not constant")
        if op in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2 and node.input[2]:
            zp = consts.get(node.input[2])
            if zp is None or np.any(zp != 0):
                problems.append(f"{where}: zero point is not a constant 0 (TensorRT needs symmetric Q/DQ)")
    return problems
