"""A run's model on disk: :func:`save_model` writes it into a run folder, :func:`load_model` rebuilds it.

Weights are stored as safetensors (no pickle): ``model.safetensors`` holds the
whole ``CDOModel`` state (teacher, student, normalisation) and
``model_config.json`` the :class:`~cdo_train.model.cdo_model.ModelConfig` that rebuilds it
(file names: :mod:`.run_folder`).

Example:
    >>> model = load_model("result/exp/weave/seed_111")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from cdo_deploy.errors import CdoError

from ..model.cdo_model import CDOModel, ModelConfig
from .run_folder import MODEL_CONFIG, WEIGHTS

__all__ = ["load_model", "save_model"]


def save_model(model: CDOModel, run_dir: Path) -> None:
    """Write the model's whole state (``model.safetensors``) and its config (``model_config.json``) into ``run_dir``."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(run_dir / WEIGHTS))
    (run_dir / MODEL_CONFIG).write_text(json.dumps(model.cfg.to_dict(), indent=2) + "\n")


def load_model(run_dir: str | Path, device: str | torch.device = "cpu") -> CDOModel:
    """Rebuild the trained model of a run folder (eval mode)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    run = Path(run_dir)
    if not run.is_dir():
        raise CdoError(f"no such run folder: {run}")
    for name in (WEIGHTS, MODEL_CONFIG):
        if not (run / name).is_file():
            raise CdoError(f"{run / name} is missing: {run} is not a finished cdo-train run")
    try:
        mcfg = ModelConfig(**json.loads((run / MODEL_CONFIG).read_text()))
    except (json.JSONDecodeError, TypeError) as e:
        raise CdoError(f"cannot read {run / MODEL_CONFIG}: {e}") from None
    try:
        state = load_file(str(run / WEIGHTS))
    except (SafetensorError, OSError) as e:
        raise CdoError(f"corrupt weights {run / WEIGHTS}: {e}") from None
    model = CDOModel(mcfg, load_teacher=False)
    own = model.state_dict()
    # runs saved before unused backbone stages were dropped hold their (never used) weights too
    state = {k: v for k, v in state.items() if k in own or not k.startswith(("teacher.blocks.", "student.blocks."))}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CdoError(f"weights in {run / WEIGHTS} do not fit {mcfg.backbone}: {str(e).splitlines()[0]}") from None
    return model.to(device).eval()
