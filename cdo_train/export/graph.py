"""The deployed graph: uint8 images in, anomaly map and score out, all in ONNX.

:class:`DeployGraph` wraps a trained :class:`~cdo_train.model.cdo_model.CDOModel` so the
exported graph is the whole computation::

    image uint8 (B, H, W, 3) RGB
      -> Cast float -> Transpose NCHW -> / 255              (right after the input)
      -> CDOModel.forward: (x - mean) / std, teacher, student,
         DiscrepancyHead (cosine discrepancy per level, sum at stride 4,
         separable reflect-padded blur, one bilinear upsample, max / top-k mean),
         or for a ``--head cdo+seg`` run its SegHead (normalised feature products,
         three convolutions, sigmoid, one bilinear upsample, top-k mean)
      -> anomaly_map float32 (B, 1, H, W), score float32 (B,)

The head is the module the trainer evaluates with, so training metrics are the
deployed graph's metrics. Export uses PyTorch's TorchScript-based exporter at
opset ``min(opset, 20)`` (its maximum) and ``onnx.version_converter`` above
that; then onnxslim folds the shape arithmetic (reflect-pad widths, resize
sizes) into constants and drops no-op casts.

Node names keep the module path, so the backbones are the nodes under
:data:`BACKBONE_SCOPES`; the fp16 and int8 variants convert or quantize only
those, and everything else (input normalisation, head) stays fp32.

Example:
    >>> import torch
    >>> from cdo_train.model.cdo_model import CDOModel, ModelConfig
    >>> m = CDOModel(ModelConfig("resnet18", image_size=64, teacher_weights="random")).eval()
    >>> proto = export_onnx(m, opset=17)                     # doctest: +SKIP
    >>> [i.name for i in proto.graph.input]                  # doctest: +SKIP
    ['image']
"""

from __future__ import annotations

import json
import logging
import warnings
from typing import Any

import torch
from torch import nn

from cdo_deploy.bundle import INPUT_NAME, OUTPUT_NAMES
from cdo_deploy.engine_build import BACKBONE_SCOPES

from .formats import module_available

__all__ = ["BACKBONE_SCOPES", "DeployGraph", "export_onnx", "is_backbone_node", "metadata", "set_metadata"]

log = logging.getLogger(__name__)

METADATA_KEY = "cdo"
TORCH_MAX_OPSET = 20  # the TorchScript exporter's maximum


class DeployGraph(nn.Module):
    """uint8 NHWC images -> ``(anomaly_map (B,1,H,W), score (B,))`` through ``model``.

    Args:
        model: a trained ``CDOModel`` (put in eval mode here).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.eval()

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = image.float().permute(0, 3, 1, 2) / 255.0
        return self.model(x)


def is_backbone_node(name: str) -> bool:
    """Whether an ONNX node belongs to the teacher or the student."""
    return name.startswith(BACKBONE_SCOPES)


def export_onnx(model: nn.Module, opset: int = 17, simplify: bool | None = None) -> Any:
    """Trace ``DeployGraph(model)`` to an ONNX ``ModelProto`` with a dynamic batch.

    Args:
        model: a trained ``CDOModel``.
        opset: target opset (17..24).
        simplify: run onnxslim (``None``: when installed).

    Returns:
        The checked ``onnx.ModelProto`` (input ``image``, outputs ``anomaly_map``, ``score``).
    """
    import io

    import onnx
    from onnx import version_converter

    h, w = model.head.image_size
    graph = DeployGraph(model)
    dummy = torch.zeros(2, h, w, 3, dtype=torch.uint8)
    buf = io.BytesIO()
    batch = {0: "batch"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings and the exporter's deprecation notice
        torch.onnx.export(
            graph, (dummy,), buf, dynamo=False, opset_version=min(opset, TORCH_MAX_OPSET),
            input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES), do_constant_folding=True,
            dynamic_axes={INPUT_NAME: batch, OUTPUT_NAMES[0]: batch, OUTPUT_NAMES[1]: batch},
        )
    proto = onnx.load_from_string(buf.getvalue())
    if opset > TORCH_MAX_OPSET:
        proto = version_converter.convert_version(proto, opset)
        proto.ir_version = max(proto.ir_version, onnx.helper.find_min_ir_version_for(list(proto.opset_import)))
    if simplify or (simplify is None and module_available("onnxslim")):
        import onnxslim

        n_before = len(proto.graph.node)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            proto = onnxslim.slim(proto)
        log.debug("onnxslim: %d -> %d nodes", n_before, len(proto.graph.node))
    elif simplify is None:
        log.info("onnxslim is not installed: graph left unsimplified (pip install onnxslim)")
    _declare_output_shapes(proto, h, w)
    proto.producer_name, proto.producer_version = "cdo-export", _cdo_version()
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _declare_output_shapes(proto: Any, h: int, w: int) -> None:
    """Declare ``anomaly_map`` ``(batch, 1, H, W)`` and ``score`` ``(batch,)``: static except the batch.

    The exporter names the Resize output's dims ``Resizeanomaly_map_dim_*`` (its sizes are computed
    from the input's shape), so ONNX readers (polygraphy, TensorRT, Triton) could not see them.
    """
    dims = {OUTPUT_NAMES[0]: ("batch", 1, h, w), OUTPUT_NAMES[1]: ("batch",)}
    for out in proto.graph.output:
        shape = out.type.tensor_type.shape
        del shape.dim[:]
        for d in dims[out.name]:
            if isinstance(d, str):
                shape.dim.add().dim_param = d
            else:
                shape.dim.add().dim_value = d


def metadata(proto: Any) -> dict[str, Any] | None:
    """The ``cdo`` metadata (``model.json`` content) stored in an ONNX model, if any."""
    for prop in proto.metadata_props:
        if prop.key == METADATA_KEY:
            return json.loads(prop.value)
    return None


def set_metadata(proto: Any, meta: dict[str, Any]) -> None:
    """Store ``meta`` as JSON under the ``cdo`` metadata key (replacing an older value)."""
    for prop in list(proto.metadata_props):
        if prop.key == METADATA_KEY:
            proto.metadata_props.remove(prop)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta, sort_keys=False)


def _cdo_version() -> str:
    from cdo_train._version import __version__

    return __version__
