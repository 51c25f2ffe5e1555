"""Adopt finished runs of another study as a sweep's trials when they computed exactly the same thing.

The curriculum sweep's ``none`` trials are the photo study's 1000-step default runs of the same
classes and seeds: same data, same configuration field for field (only ``output_dir``, ``name`` and
``progress``, which change nothing that is computed, differ). Training them again would cost about
an hour of CPU per three trials, so this links the finished run folders into the sweep's layout
(hard links: no copy of the weights), after which ``cdo-sweep`` finds those trials finished and skips
them. A run whose configuration differs in any other field is refused, with the fields named.

Usage:
    python tools/adopt_runs.py configs/sweeps/curriculum.yaml result/photo/steps1000 --experiment none \
        --set data_root=result/photo_data
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from cdo_train.sweep.spec import Trial, load_sweep
from cdo_train.training.config import TrainConfig
from cdo_train.training.run_folder import read_run_info, run_status

#: fields that name where a run is written or how it reports, not what it computes
PLACE_FIELDS = ("output_dir", "name", "progress")


def _computed(cfg: TrainConfig) -> dict[str, Any]:
    """The fields of ``cfg`` that decide what a run computes (paths resolved, default length explicit)."""
    fields = cfg.model_dump()
    for key in PLACE_FIELDS:
        fields.pop(key, None)
    if fields.get("data_root"):
        fields["data_root"] = str(Path(fields["data_root"]).resolve())
    if fields.get("steps") is None and fields.get("epochs") is None:
        fields["steps"] = cfg.total_steps(0)
    return fields


def differences(run_config: TrainConfig, trial: Trial) -> list[str]:
    """The computed fields in which a finished run's config and a trial's differ (empty: the same run)."""
    a, b = _computed(run_config), _computed(trial.train_config())
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def _link_tree(src: Path, dest: Path) -> None:
    """``dest`` as a copy of ``src`` whose files are hard links (a plain copy where links fail)."""
    def link(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)
    shutil.copytree(src, dest, copy_function=link)


def adopt(sweep_file: Path, source: Path, experiment: str, overrides: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Link ``source/<class>/seed_<n>`` into every unfinished trial of ``experiment`` it equals.

    Returns (adopted trial keys, refusals as one line each).
    """
    adopted, refused = [], []
    for trial in load_sweep(sweep_file, overrides).trials:
        if trial.experiment != experiment or run_status(trial.run_dir) == "finished":
            continue
        run = source / trial.class_name / f"seed_{trial.seed}"
        if run_status(run) != "finished":
            refused.append(f"{trial.key}: {run} is not a finished run")
            continue
        diff = differences(TrainConfig().merged(read_run_info(run, warn_missing=False).config), trial)
        if diff:
            refused.append(f"{trial.key}: {run} differs in {', '.join(diff)}")
            continue
        if trial.run_dir.exists():
            shutil.rmtree(trial.run_dir)
        trial.run_dir.parent.mkdir(parents=True, exist_ok=True)
        _link_tree(run, trial.run_dir)
        adopted.append(trial.key)
    return adopted, refused


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep", type=Path, help="the sweep file (cdo-sweep's)")
    ap.add_argument("source", type=Path, help="an experiment folder of finished runs: <class>/seed_<n>")
    ap.add_argument("--experiment", required=True, help="the sweep experiment whose trials these runs are")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="as cdo-sweep --set (the same values as the sweep is run with)")
    args = ap.parse_args(argv)
    from cdo_train.cli import _key_values

    adopted, refused = adopt(args.sweep, args.source, args.experiment, _key_values(args.sets))
    for key in adopted:
        print(f"adopted {key}")
    for line in refused:
        print(f"not adopted: {line}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
