"""Checkpoints of the full training state (stopping on SIGINT / SIGTERM: :mod:`cdo_train.training.signals`).

``<run>/checkpoint.pt`` holds everything a run needs to continue exactly where
it stopped: the student's weights, the optimiser, LR-scheduler and GradScaler
states, the curriculum schedule's and per-sample ordering's state, every RNG
(the trainer's ``torch.Generator`` for batches and synthetic anomalies,
torch's global and CUDA generators, numpy's and Python's), the step and
epoch counters with the position inside the epoch and its batches, the
running loss sums and the evaluation records already logged. The teacher is
not stored: it is rebuilt from its source like at the start of the run.

It is written with ``torch.save`` to a temporary file that is fsynced and
then renamed over the old one (a crash never leaves half a checkpoint), and
read back with ``torch.load(weights_only=True)`` (tensors, numbers, strings,
lists, tuples and dicts only: nothing is unpickled).

Example:
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = save_checkpoint(d, {"step": 3, "rng": rng_state()})
    >>> load_checkpoint(d)["step"]
    3
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cdo_deploy.errors import CdoError

from .run_folder import CHECKPOINT, run_status

__all__ = ["CHECKPOINT", "FORMAT", "load_checkpoint", "rng_state", "save_checkpoint", "set_rng_state"]

FORMAT = 1


def rng_state() -> dict[str, Any]:
    """torch's global (and CUDA) generators, numpy's and Python's global RNG states."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state`'s values."""
    torch.set_rng_state(state["torch"])
    npy = state["numpy"]
    np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``run_dir/checkpoint.pt`` atomically (temporary file, fsync, rename)."""
    path = Path(run_dir) / CHECKPOINT
    tmp = path.with_name(f".{CHECKPOINT}.partial-{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save({"format": FORMAT, **state}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load_checkpoint(run_dir: Path | str) -> dict[str, Any]:
    """Read ``run_dir/checkpoint.pt`` safely (``weights_only=True``).

    Raises:
        CdoError: no run folder, no checkpoint (saying why there may be none), or an unreadable one.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise CdoError(f"no such run folder: {run} (give the run folder, <output>/<experiment>/<class>/seed_<n>)")
    path = run / CHECKPOINT
    if not path.is_file():
        why = ("it finished (its checkpoint is removed at the end)" if run_status(run) == "finished" else
               "it stopped before its first checkpoint (every --save-every epochs, and on Ctrl-C / SIGTERM); "
               "start it again with --exist-ok")
        raise CdoError(f"nothing to resume in {run}: no {CHECKPOINT}, {why}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt, truncated or foreign file: a user-facing problem
        raise CdoError(f"cannot read {path}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CdoError(f"{path} is not a cdo-train checkpoint of format {FORMAT}")
    return state
