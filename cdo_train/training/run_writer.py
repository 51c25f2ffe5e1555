"""Writing a run folder: :class:`RunWriter` creates it and writes a run's logs, scalars, figures and summary.

The folder's file names and its reader are :mod:`.run_folder`'s; the weights are written
and read by :mod:`.saved_model`.

A run folder is never overwritten silently: starting a run whose folder
already holds one fails with a one-line error unless ``exist_ok`` (the CLI's
``--exist-ok``), which deletes the old folder first, TensorBoard files
included. The folder name stays ``<output>/<experiment>/<class>/seed_<n>``
(no ``-2`` suffixes) so that tools find runs where they expect them.
``summary.json`` says ``status: finished`` or ``interrupted`` (then with the
step reached and the ``--resume`` command).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cdo_deploy.errors import CdoError

from .config import TrainConfig
from .run_folder import run_status

__all__ = ["RunWriter", "check_run_dir", "run_dir_of"]

log = logging.getLogger(__name__)
HEADLINE = ("image_auroc", "pixel_auroc", "pixel_ap", "aupro", "image_f1_max")


def run_dir_of(cfg: TrainConfig, class_name: str, seed: int) -> Path:
    """``<output_dir>/<experiment>/<class>/seed_<seed>``."""
    return Path(cfg.output_dir) / cfg.experiment / class_name / f"seed_{seed}"


def check_run_dir(run_dir: Path, exist_ok: bool) -> None:
    """Refuse to start a run in a folder that already holds one, unless ``exist_ok``.

    Raises:
        CdoError: the folder holds a run (finished, interrupted or partial) and not ``exist_ok``; or
            ``exist_ok`` but the folder is not a cdo-train run folder (nothing is deleted then).
    """
    if not run_dir.is_dir() or not any(run_dir.iterdir()):
        return
    if exist_ok:
        if not (run_dir / "config.yaml").is_file():
            raise CdoError(f"{run_dir} is not a cdo-train run folder (no config.yaml): --exist-ok will not delete "
                           "it; choose another --output-dir or --name")
        return
    status = run_status(run_dir)
    if status == "interrupted":
        raise CdoError(f"{run_dir} holds an interrupted run: continue it with cdo-train --resume {run_dir}, or pass "
                       "--exist-ok to start it again (deletes it, TensorBoard files included)")
    what = "a finished run" if status == "finished" else "an unfinished run without a checkpoint"
    raise CdoError(f"{run_dir} already holds {what}: pass --exist-ok to replace it (deletes it, TensorBoard files "
                   "included), or choose another --name or --output-dir")


class RunWriter:
    """Creates a run folder (or reopens one to resume) and writes its logs, scalars, figures and summary.

    Args:
        cfg, class_name, seed: the run.
        exist_ok: replace a run already in the folder (deleted first) instead of failing.
        resume: ``(run folder, evaluation records so far, epoch resumed)`` to continue a run: the
            folder is kept, ``metrics.jsonl`` is rewritten from the records and TensorBoard events from
            the resumed epoch on are purged (they are logged again).
    """

    def __init__(self, cfg: TrainConfig, class_name: str, seed: int, *, exist_ok: bool = False,
                 resume: tuple[Path, list[dict[str, Any]], int] | None = None) -> None:
        self.cfg = cfg
        purge = None
        if resume is None:
            self.run_dir = run_dir_of(cfg, class_name, seed)
            check_run_dir(self.run_dir, exist_ok)
            if self.run_dir.is_dir():
                shutil.rmtree(self.run_dir)
            self.run_dir.mkdir(parents=True)
            self.evals: list[dict[str, Any]] = []
            resolved = {**cfg.to_dict(), "class_names": [class_name], "seed": seed, "seeds": 1}
            (self.run_dir / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
        else:
            self.run_dir, evals, purge = resume[0], list(resume[1]), resume[2]
            self.evals = evals
        (self.run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in self.evals))
        self._tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=purge)
        except ImportError:
            log.warning("tensorboard is not installed: no TensorBoard scalars for %s", self.run_dir)

    def progress(self, total: int, desc: str):
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, leave=False, disable=not self.cfg.progress, dynamic_ncols=True)

    def log_eval(self, record: dict[str, Any]) -> None:
        self.evals.append(record)
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        shown = ", ".join(f"{k} {record[k]:.4f}" for k in HEADLINE if isinstance(record.get(k), float))
        log.info("epoch %d loss %.4f %s", record["epoch"], record["loss"], shown)

    def log_scalars(self, record: dict[str, Any]) -> None:
        if self._tb is None:
            return
        for key, value in record.items():
            if isinstance(value, (int, float)) and key != "epoch" and value is not None:
                self._tb.add_scalar(key, value, record["epoch"])

    def write_json(self, name: str, data: dict[str, Any]) -> None:
        (self.run_dir / name).write_text(json.dumps(data, indent=2) + "\n")

    def figures(self, predictions: tuple[np.ndarray, np.ndarray], test) -> None:
        from .visualize import save_discrepancy_histogram, save_qualitative_grid

        maps, scores = predictions
        save_qualitative_grid(test.images, test.masks, maps, self.run_dir / "qualitative.png",
                              scores=scores, labels=test.labels)
        if test.masks.any():
            stats = save_discrepancy_histogram(maps, test.masks, self.run_dir / "discrepancy_hist.png")
            self.write_json("discrepancy_stats.json", stats)

    def finish(self, last: dict[str, Any], cost: dict[str, Any], interrupted: dict[str, Any] | None = None
               ) -> dict[str, Any]:
        """Write ``summary.json`` (``status`` finished, or interrupted with ``interrupted``'s details).

        ``cost``: ``seconds`` (wall), ``cpu_seconds`` (core-seconds), ``train_images_per_s`` and the step's
        ``precision`` / ``channels_last`` (:meth:`cdo_train.training.run.TrainingRun.cost`)."""
        best: dict[str, Any] = {}
        for rec in self.evals:
            for key in HEADLINE:
                v = rec.get(key)
                if isinstance(v, float) and (key not in best or v > best[key]["value"]):
                    best[key] = {"value": v, "epoch": rec["epoch"]}
        summary = {"run_dir": str(self.run_dir), "status": "interrupted" if interrupted else "finished",
                   "last": last, "best": best, **{k: round(v, 2) if isinstance(v, float) else v for k, v in cost.items()},
                   "model_selection": "last epoch (best is reported only, never used)"}
        if interrupted:
            summary["interrupted"] = {**interrupted, "resume": f"cdo-train --resume {self.run_dir}"}
        self.write_json("summary.json", summary)
        if self._tb is not None:
            self._tb.close()
        return summary
