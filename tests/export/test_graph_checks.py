"""The exported graphs respect TensorRT's ONNX parser constraints; the walker catches violations."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from cdo_train.export.checks import tensorrt_problems
from cdo_train.export.formats import module_available
from cdo_train.export.verify import onnx_session, run_onnx

FILES = ("model.onnx", "model_fp16.onnx", "model_int8.onnx")
VARIANTS = ("model.onnx", "model_fp16.onnx", "int8-symmetric")  # the TensorRT walk: int8 as TensorRT takes it


@pytest.fixture(scope="module")
def symmetric_int8(exported, tmp_path_factory):
    """The int8 variant as ``--int8-activations int8`` writes it (for TensorRT), from the bundle's fp32 graph."""
    from cdo_train.export.precision import quantize_int8

    images = np.random.default_rng(3).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    out = tmp_path_factory.mktemp("int8") / "model_int8_symmetric.onnx"
    return quantize_int8(exported.bundle / "model.onnx", out, images, activations="int8")


@pytest.mark.parametrize("name", VARIANTS)
def test_exported_graphs_pass_the_checker_and_the_tensorrt_walk(exported, name, request):
    proto = request.getfixturevalue("symmetric_int8") if name == "int8-symmetric" else \
        onnx.load(str(exported.bundle / name))
    onnx.checker.check_model(proto, full_check=True)
    assert tensorrt_problems(proto) == []
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [17]
    (inp,) = proto.graph.input
    dims = inp.type.tensor_type.shape.dim
    assert inp.name == "image" and inp.type.tensor_type.elem_type == TensorProto.UINT8
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [64, 64, 3]
    outs = {o.name: o.type.tensor_type for o in proto.graph.output}
    assert outs["anomaly_map"].elem_type == outs["score"].elem_type == TensorProto.FLOAT
    # static except the batch, so ONNX readers (polygraphy, TensorRT, Triton) see (batch, 1, H, W)
    shapes = {name: [d.dim_param or d.dim_value for d in t.shape.dim] for name, t in outs.items()}
    assert shapes == {"anomaly_map": [dims[0].dim_param, 1, 64, 64], "score": [dims[0].dim_param]}
    consumers = [n for n in proto.graph.node if "image" in n.input]
    assert [(n.op_type, n.attribute[0].i) for n in consumers] == [("Cast", TensorProto.FLOAT)]


@pytest.mark.skipif(shutil.which("polygraphy") is None or not module_available("onnx_graphsurgeon"),
                    reason="polygraphy not installed (pip install polygraphy onnx-graphsurgeon: the dev extra)")
@pytest.mark.parametrize("name", FILES)
def test_polygraphy_lint_passes_and_inspect_sees_static_output_shapes(exported, name, tmp_path):
    report = tmp_path / "lint.json"
    r = subprocess.run(["polygraphy", "check", "lint", str(exported.bundle / name), "-o", str(report)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    summary = json.loads(report.read_text())["summary"]
    assert summary["passing"] and not summary["failing"], summary
    r = subprocess.run(["polygraphy", "inspect", "model", str(exported.bundle / name)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and "anomaly_map [dtype=float32, shape=('batch', 1, 64, 64)]" in r.stdout, r.stdout


def test_weak_typing_fp32_patterns_cover_the_head_and_no_qdq_node(exported):
    """The trtexec/Python pins (cdo_deploy.engine_plan.FP32_LAYERS) select what cdo-export names the
    input normalisation and head, and never a Q/DQ node (trtexec would force its int8 output to fp32)."""
    from cdo_deploy.engine_plan import BACKBONE_SCOPES, FP32_LAYERS, matches_layer

    for name in FILES:
        nodes = onnx.load(str(exported.bundle / name)).graph.node
        pinned = {n.name for n in nodes if any(matches_layer(p, n.name) for p in FP32_LAYERS)}
        outside = {n.name for n in nodes if not n.name.startswith(BACKBONE_SCOPES)}
        qdq = {n.name for n in nodes if n.op_type in ("QuantizeLinear", "DequantizeLinear")}
        assert not pinned & qdq, (name, sorted(pinned & qdq)[:3])
        assert outside - pinned - qdq == {"/Cast"}, (name, sorted(outside - pinned - qdq)[:5])
        assert all(any(matches_layer(p, n) for n in pinned) for p in FP32_LAYERS), name


def test_default_int8_has_uint8_activations_which_only_tensorrt_rejects(exported):
    """The CPU default: asymmetric uint8 activations; the walk flags only their uint8 tensors / zero points."""
    proto = onnx.load(str(exported.bundle / "model_int8.onnx"))
    inits = {t.name: t for t in proto.graph.initializer}
    act = [n for n in proto.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2]
    assert act and {inits[n.input[2]].data_type for n in act} == {TensorProto.UINT8}
    problems = tensorrt_problems(proto)
    assert problems and all("UINT8" in p or "zero point" in p for p in problems)


def test_precision_lives_in_the_graph_head_stays_fp32(exported, symmetric_int8):
    fp16 = onnx.load(str(exported.bundle / "model_fp16.onnx"))
    init_types = {t.name: t.data_type for t in fp16.graph.initializer}
    convs = {n.name: init_types[n.input[1]] for n in fp16.graph.node if n.op_type == "Conv"}
    backbone = {t for name, t in convs.items() if name.startswith(("/model/teacher/", "/model/student/"))}
    head = {t for name, t in convs.items() if name.startswith("/model/head/")}
    assert backbone == {TensorProto.FLOAT16} and head == {TensorProto.FLOAT}
    int8 = symmetric_int8
    producer = {o: n for n in int8.graph.node for o in n.output}
    quantized = [producer[n.input[0]].name for n in int8.graph.node
                 if n.op_type == "QuantizeLinear" and n.input[0] in producer]
    assert quantized and not [q for q in quantized if q.startswith("/model/head/")]  # features yes, head no
    inits = {t.name: t for t in int8.graph.initializer}
    head_convs = [n for n in int8.graph.node if n.op_type == "Conv" and n.name.startswith("/model/head/")]
    assert head_convs and all(inits[n.input[1]].data_type == TensorProto.FLOAT for n in head_convs)
    qdq = [n for n in int8.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert all(inits[n.input[2]].data_type == TensorProto.INT8 for n in qdq if len(n.input) > 2)


def test_topk_score_and_opset_24_export(trained_run):
    from cdo_train.export.graph import export_onnx
    from cdo_train.model.cdo_model import CDOModel, ModelConfig

    model = CDOModel(ModelConfig("resnet18", image_size=64, teacher_weights="random", score_rule="topk_mean",
                                 topk=50)).eval()
    images = np.random.default_rng(1).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    outs = []
    for opset in (17, 24):
        proto = export_onnx(model, opset=opset)
        assert tensorrt_problems(proto) == [], opset
        topk = [n for n in proto.graph.node if n.op_type == "TopK"]
        assert len(topk) == 1
        outs.append(run_onnx(onnx_session(proto.SerializeToString()), images))
    np.testing.assert_allclose(outs[0][1], outs[1][1], atol=1e-5)


def _model(nodes, inputs, outputs, inits=(), opset=17):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _f(name, elem=TensorProto.FLOAT, shape=(1, 1, 4, 4)):
    return helper.make_tensor_value_info(name, elem, list(shape))


def _const(name, values, dtype=np.int64):
    return onnx.numpy_helper.from_array(np.array(values, dtype=dtype), name)


def test_walker_flags_each_known_parser_constraint():
    u8 = TensorProto.UINT8
    cases = {
        "UINT8 is allowed only": _model([helper.make_node("Cast", ["image"], ["y"], to=u8)],
                                        [_f("image", u8)], [_f("y", u8)]),
        "feeds Relu": _model([helper.make_node("Relu", ["image"], ["y"])], [_f("image", u8)], [_f("y")]),
        "axes input 'ax' is not a constant": _model(
            [helper.make_node("ReduceSum", ["x", "ax"], ["y"])],
            [_f("x"), helper.make_tensor_value_info("ax", TensorProto.INT64, [1])], [_f("y")]),
        "antialiasing": _model([helper.make_node("Resize", ["x", "", "s"], ["y"], mode="linear", antialias=1)],
                               [_f("x")], [_f("y")], [_const("s", [1, 1, 2, 2], np.float32)], opset=18),
        "reflect padding of a non-float": _model(
            [helper.make_node("Pad", ["x", "p"], ["y"], mode="reflect")],
            [_f("x", TensorProto.INT32)], [_f("y", TensorProto.INT32)], [_const("p", [0, 0, 1, 1, 0, 0, 1, 1])]),
        "K = 4000 >= 3840": _model([helper.make_node("TopK", ["x", "k"], ["v", "i"])], [_f("x", shape=(1, 5000))],
                                   [_f("v"), _f("i", TensorProto.INT64)], [_const("k", [4000])]),
        "opset 16 outside 17..24": _model([helper.make_node("Relu", ["x"], ["y"])], [_f("x")], [_f("y")], opset=16),
        "custom domain": _model([helper.make_node("FusedConv", ["x"], ["y"], domain="com.microsoft")],
                                [_f("x")], [_f("y")]),
        "not supported by TensorRT": _model([helper.make_node("Unique", ["x"], ["y"])], [_f("x")], [_f("y")]),
        "zero point is not a constant 0": _model(
            [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])], [_f("x")], [_f("y", TensorProto.INT8)],
            [_const("s", 0.1, np.float32), _const("z", 3, np.int8)]),
    }
    for needle, model in cases.items():
        problems = tensorrt_problems(model)
        assert any(needle in p for p in problems), (needle, problems)
    ok = _model([helper.make_node("Cast", ["image"], ["y"], to=TensorProto.FLOAT)], [_f("image", u8)], [_f("y")])
    assert tensorrt_problems(ok) == []


def test_score_levels_graph_exports_and_matches_torch():
    from cdo_train.export.graph import export_onnx
    from cdo_train.export.verify import torch_reference
    from cdo_train.model.cdo_model import CDOModel, ModelConfig

    model = CDOModel(ModelConfig("resnet18", image_size=64, teacher_weights="random", score_levels=2)).eval()
    images = np.random.default_rng(2).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    proto = export_onnx(model)
    assert tensorrt_problems(proto) == []
    amap, score = run_onnx(onnx_session(proto.SerializeToString()), images)
    ref_map, ref_score = torch_reference(model, images)
    np.testing.assert_allclose(amap, ref_map, atol=1e-4)
    np.testing.assert_allclose(score, ref_score, atol=1e-4)
    assert (score <= amap.reshape(len(amap), -1).max(1) + 1e-5).all()
    assert np.abs(score - amap.reshape(len(amap), -1).max(1)).max() > 1e-4  # not the all-level score
