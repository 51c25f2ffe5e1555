"""The Triton model repository: layout, and config.pbtxt parsed as Triton's ModelConfig text format.

Triton's own ``model_config.proto`` comes with ``tritonclient[grpc]``; when it is
not installed, the subset of it that cdo writes is declared here with the same
field names, numbers and enum values (from triton-inference-server/common).
"""

from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from cdo_deploy.bundle import load_bundle_meta, sha256_file
from cdo_train.export.triton import config_pbtxt
from cdo_train.export.verify import onnx_session, run_onnx

_F = descriptor_pb2.FieldDescriptorProto
DATA_TYPES = ("TYPE_INVALID", "TYPE_BOOL", "TYPE_UINT8", "TYPE_UINT16", "TYPE_UINT32", "TYPE_UINT64", "TYPE_INT8",
              "TYPE_INT16", "TYPE_INT32", "TYPE_INT64", "TYPE_FP16", "TYPE_FP32", "TYPE_FP64", "TYPE_STRING",
              "TYPE_BF16")


def _field(msg, name, number, ftype, repeated=False, type_name=None):
    f = msg.field.add(name=name, number=number, type=ftype,
                      label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL)
    if type_name:
        f.type_name = type_name


def _subset_model_config():
    fdp = descriptor_pb2.FileDescriptorProto(name="cdo_tests_model_config.proto", package="inference", syntax="proto3")
    dt = fdp.enum_type.add(name="DataType")
    for i, n in enumerate(DATA_TYPES):
        dt.value.add(name=n, number=i)
    reshape = fdp.message_type.add(name="ModelTensorReshape")
    _field(reshape, "shape", 1, _F.TYPE_INT64, repeated=True)
    inp = fdp.message_type.add(name="ModelInput")
    fmt = inp.enum_type.add(name="Format")
    for i, n in enumerate(("FORMAT_NONE", "FORMAT_NHWC", "FORMAT_NCHW")):
        fmt.value.add(name=n, number=i)
    for msg, dims_no in ((inp, 4), (fdp.message_type.add(name="ModelOutput"), 3)):
        _field(msg, "name", 1, _F.TYPE_STRING)
        _field(msg, "data_type", 2, _F.TYPE_ENUM, type_name=".inference.DataType")
        _field(msg, "dims", dims_no, _F.TYPE_INT64, repeated=True)
        _field(msg, "reshape", 5, _F.TYPE_MESSAGE, type_name=".inference.ModelTensorReshape")
    _field(inp, "format", 3, _F.TYPE_ENUM, type_name=".inference.ModelInput.Format")
    dyn = fdp.message_type.add(name="ModelDynamicBatching")
    _field(dyn, "preferred_batch_size", 1, _F.TYPE_INT32, repeated=True)
    _field(dyn, "max_queue_delay_microseconds", 2, _F.TYPE_UINT64)
    policy = fdp.message_type.add(name="ModelVersionPolicy")
    latest = policy.nested_type.add(name="Latest")
    _field(latest, "num_versions", 1, _F.TYPE_UINT32)
    _field(policy, "latest", 1, _F.TYPE_MESSAGE, type_name=".inference.ModelVersionPolicy.Latest")
    cfg = fdp.message_type.add(name="ModelConfig")
    for name, no, t, rep, tn in (("name", 1, _F.TYPE_STRING, False, None), ("platform", 2, _F.TYPE_STRING, False, None),
                                 ("version_policy", 3, _F.TYPE_MESSAGE, False, ".inference.ModelVersionPolicy"),
                                 ("max_batch_size", 4, _F.TYPE_INT32, False, None),
                                 ("input", 5, _F.TYPE_MESSAGE, True, ".inference.ModelInput"),
                                 ("output", 6, _F.TYPE_MESSAGE, True, ".inference.ModelOutput"),
                                 ("dynamic_batching", 11, _F.TYPE_MESSAGE, False, ".inference.ModelDynamicBatching")):
        _field(cfg, name, no, t, rep, tn)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("inference.ModelConfig"))


def _model_config_class():
    try:
        from tritonclient.grpc import model_config_pb2

        return model_config_pb2.ModelConfig
    except ImportError:
        return _subset_model_config()


def test_repository_layout_and_config(exported):
    model_dir = exported.triton / "weave_cdo"
    assert sorted(p.name for p in model_dir.iterdir()) == ["1", "config.pbtxt", "model.json"]
    assert sha256_file(model_dir / "1" / "model.onnx") == load_bundle_meta(exported.bundle).onnx_sha256
    cfg = text_format.Parse((model_dir / "config.pbtxt").read_text(), _model_config_class()())
    assert (cfg.name, cfg.platform, cfg.max_batch_size) == ("weave_cdo", "onnxruntime_onnx", 16)
    (inp,) = cfg.input
    types = type(cfg.input[0]).DESCRIPTOR.fields_by_name["data_type"].enum_type.values_by_number
    assert inp.name == "image" and types[inp.data_type].name == "TYPE_UINT8" and list(inp.dims) == [64, 64, 3]
    amap, score = cfg.output
    assert (amap.name, types[amap.data_type].name, list(amap.dims)) == ("anomaly_map", "TYPE_FP32", [1, 64, 64])
    assert (score.name, types[score.data_type].name, list(score.dims)) == ("score", "TYPE_FP32", [1])
    assert score.HasField("reshape") and list(score.reshape.shape) == []
    assert list(cfg.dynamic_batching.preferred_batch_size) == [4, 16]
    assert 0 < cfg.dynamic_batching.max_queue_delay_microseconds
    assert all(b <= cfg.max_batch_size for b in cfg.dynamic_batching.preferred_batch_size)


def test_triton_model_runs_as_triton_would_feed_it(exported):
    """Triton stacks requests on the batch axis and reshapes ``score`` (B,) to (B, 1)."""
    sess = onnx_session(exported.triton / "weave_cdo" / "1" / "model.onnx")
    batch = np.random.default_rng(3).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    amap, score = run_onnx(sess, batch, batch_size=3)
    assert amap.shape == (3, 64, 64) and score.reshape(3, 1).shape == (3, 1)


def test_config_text_clamps_preferred_sizes_and_rejects_bad_text():
    text = config_pbtxt("m", 32, 48, max_batch=8, preferred=(4, 8, 64))
    cfg = text_format.Parse(text, _model_config_class()())
    assert list(cfg.dynamic_batching.preferred_batch_size) == [4, 8] and list(cfg.input[0].dims) == [32, 48, 3]
    with pytest.raises(text_format.ParseError):
        text_format.Parse(text.replace("max_batch_size", "max_batch"), _model_config_class()())
