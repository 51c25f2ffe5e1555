"""Reading a ``cdo-train`` run folder: the one reader and the one "is this run finished" check.

A run folder ``<output>/<experiment>/<class>/seed_<n>`` holds ``config.yaml`` (the
training config), ``calibration.json`` (thresholds, :mod:`cdo_train.training.evaluation`),
``metrics.jsonl`` (one evaluation per line), ``summary.json`` (``status``
``finished`` or ``interrupted``), the weights (``model.safetensors`` +
``model_config.json``) and, while it can be resumed, ``checkpoint.pt``.

:func:`run_status` is the only decoding of the status: the exporter, ``--resume``,
``tools/comparison.py`` and ``tools/peers.py`` all ask it. Torch-free (json + yaml),
so the tools read runs without loading PyTorch; weights are loaded by
:func:`cdo_train.training.saved_model.load_model`.

Example:
    >>> import tempfile
    >>> run = Path(tempfile.mkdtemp())
    >>> run_status(run) is None
    True
    >>> _ = (run / SUMMARY).write_text('{"status": "interrupted"}')
    >>> run_status(run), read_run_info(run).status
    ('interrupted', 'interrupted')
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cdo_deploy.errors import CdoError

__all__ = ["CALIBRATION", "CHECKPOINT", "CONFIG", "METRICS", "MODEL_CONFIG", "SUMMARY", "WEIGHTS", "RunInfo",
           "read_metrics", "read_run_info", "run_seed", "run_status"]

log = logging.getLogger(__name__)

CONFIG = "config.yaml"
CALIBRATION = "calibration.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
WEIGHTS = "model.safetensors"
MODEL_CONFIG = "model_config.json"
CHECKPOINT = "checkpoint.pt"


def run_status(run_dir: str | Path) -> str | None:
    """``finished``, ``interrupted`` or ``None`` (never finished, nothing to resume).

    A folder without ``summary.json`` but with ``checkpoint.pt`` is ``interrupted`` (killed before
    it could write its summary); summaries written before runs had a status are finished ones; an
    unreadable summary is ``None``.
    """
    path = Path(run_dir) / SUMMARY
    if not path.is_file():
        return "interrupted" if (Path(run_dir) / CHECKPOINT).is_file() else None
    try:
        return str(json.loads(path.read_text()).get("status", "finished"))
    except (OSError, ValueError, AttributeError):
        return None


def run_seed(run_dir: str | Path) -> int | None:
    """The seed of a ``seed_<n>`` folder, else ``None``."""
    try:
        return int(Path(run_dir).name.split("_", 1)[1])
    except (IndexError, ValueError):
        return None


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The evaluations of a run, from ``metrics.jsonl`` (``[]`` without one)."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class RunInfo:
    """The run folder's config, calibration and summary (empty dicts when absent) and its status."""

    run_dir: Path
    config: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    status: str | None = None

    @property
    def finished(self) -> bool:
        return self.status == "finished"


def _read(path: Path, loader: Any, warn: bool) -> dict[str, Any]:
    if not path.is_file():
        if warn:
            log.warning("%s is missing: going on without it", path)
        return {}
    try:
        data = loader(path.read_text())
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise CdoError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise CdoError(f"{path} does not hold a mapping")
    return data


def read_run_info(run_dir: str | Path, warn_missing: bool = True) -> RunInfo:
    """Read ``config.yaml``, ``calibration.json`` and ``summary.json`` of a run, and its :func:`run_status`.

    Args:
        run_dir: the run folder.
        warn_missing: log a warning for each of the three files that is missing.

    Raises:
        CdoError: one of them is unreadable or not a mapping.
    """
    run = Path(run_dir)
    return RunInfo(run, _read(run / CONFIG, yaml.safe_load, warn_missing),
                   _read(run / CALIBRATION, json.loads, warn_missing),
                   _read(run / SUMMARY, json.loads, warn_missing), run_status(run))
