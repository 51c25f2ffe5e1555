"""``cdo-train``: train CDO on MVTec-layout data (flags compatible with the original train.py).

Example:
    cdo-train --dataset mvtec2d --data-root demo_data --class-name weave --epochs 10
    cdo-train --config configs/paper.yaml --class-name all --MOM True --OOM True --gamma 2
    cdo-train --config configs/demo.yaml --config configs/curriculum_step.yaml --curriculum-param stages=3
    cdo-train --config configs/demo.yaml --class-name all --nproc 4          # 4 GPUs (see cdo_train.distributed)
    torchrun --standalone --nproc_per_node 4 -m cdo_train.cli --config configs/demo.yaml --class-name all
"""

from __future__ import annotations

import logging
import os
import sys

import click

from cdo_deploy.errors import CdoError

__all__ = ["main"]

_BOOL = click.BOOL


def _bool_option(name: str, dest: str, help: str):
    # `--MOM` alone means True; `--MOM True/False/1/0` are accepted as in the original train.py.
    return click.option(name, dest, type=_BOOL, is_flag=False, flag_value=True, default=None, help=help)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", "config_files", type=click.Path(dir_okay=False), multiple=True,
              help="YAML preset (repeatable: later files override earlier ones); flags override them.")
@click.option("--dataset", type=click.Choice(["mvtec2d", "mvtec3d", "folder"]), default=None)
@click.option("--data-root", default=None, help="Dataset root folder.")
@click.option("--class-name", "class_names", multiple=True, help="Class to train (repeatable, or 'all').")
@click.option("--backbone", default=None, help="tf_efficientnet_lite0 (default), tf_efficientnet_lite2, resnet18, wide_resnet50_2, hrnet_w32.")
@click.option("--teacher-weights", default=None, help="PATH (.pth/.safetensors) or 'random'; default: packaged/cached.")
@_bool_option("--MOM", "mom", "Synthetic anomalies (multi-objective optimisation); default on.")
@_bool_option("--OOM", "oom", "Pixel reweighting (overlap optimisation); default on.")
@click.option("--gamma", type=float, default=None, help="OOM focusing exponent (default 2).")
@click.option("--gpu-id", type=int, default=None, help="Same as --device cuda:N.")
@click.option("--device", default=None, help="auto (default), cpu or cuda:N.")
@click.option("--steps", type=int, default=None,
              help="Training length in optimiser steps, whatever the dataset size (default 1000).")
@click.option("--epochs", type=int, default=None, help="Training length in passes over the data (instead of --steps).")
@click.option("--batch-size", type=int, default=None)
@click.option("--lr", type=float, default=None)
@click.option("--image-size", type=int, default=None)
@click.option("--seed", type=int, default=None)
@click.option("--seeds", type=int, default=None, help="Run N seeds: seed, seed+1, ...")
@click.option("--eval-every", type=int, default=None, help="Evaluate every N optimiser steps and at the end (default 250).")
@click.option("--student", type=click.Choice(["same", "light"]), default=None,
              help="same: the teacher's architecture (the paper's); light: a small asymmetric student.")
@click.option("--head", type=click.Choice(["cdo", "cdo+knn"]), default=None,
              help="cdo: teacher/student discrepancy; cdo+knn: fused with a memory bank of normal teacher patches.")
@click.option("--bank-size", type=int, default=None, help="Memory-bank patches for --head cdo+knn (default 1024).")
@click.option("--output-dir", default=None, help="Where run folders go (default ./result).")
@click.option("--name", default=None, help="Experiment name (default <backbone>-<curriculum>).")
@click.option("--curriculum", default=None, help="Curriculum schedule (default none).")
@click.option("--knobs", default=None, help="Comma-separated difficulty knobs driven by the curriculum.")
@click.option("--curriculum-param", "curriculum_param", multiple=True, metavar="KEY=VALUE",
              help="Schedule parameter, e.g. stages=3 or saturation=0.8 (repeatable).")
@click.option("--ordering", default=None, help="Per-sample ordering curriculum scorer: teacher or student.")
@click.option("--ordering-param", "ordering_param", multiple=True, metavar="KEY=VALUE",
              help="Ordering parameter: start=0.3 (fraction of images at t=0), warmup_steps=20 (repeatable).")
@click.option("--nproc", type=click.IntRange(1), default=None,
              help="Train in N processes, one per GPU (DDP for one class, classes spread over the processes "
                   "for several), with the fast GPU path; gloo on CPU. Under torchrun its world size is used.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.option("-v", "--verbose", count=True)
def _cli(config_files, class_names, gpu_id, knobs, curriculum_param, ordering_param, nproc, no_progress, verbose,
         **flags):
    """Train CDO teacher/student models; one run folder per class and seed."""
    logging.basicConfig(level=logging.DEBUG if verbose > 1 else logging.INFO, format="%(message)s")
    try:
        from .config import TrainConfig, load_config_file
        from .trainer import train

        cfg = TrainConfig()
        for config_file in config_files:
            cfg = cfg.merged(load_config_file(config_file))
        overrides = dict(flags)
        if curriculum_param:
            overrides["curriculum_params"] = {**cfg.curriculum_params, **_key_values(curriculum_param)}
        if ordering_param:
            overrides["ordering_params"] = {**cfg.ordering_params, **_key_values(ordering_param)}
        if class_names:
            overrides["class_names"] = class_names
        if knobs:
            overrides["knobs"] = [k.strip() for k in knobs.split(",") if k.strip()]
        if gpu_id is not None:
            overrides["device"] = f"cuda:{gpu_id}"
        if no_progress:
            overrides["progress"] = False
        cfg = cfg.merged(overrides)
        from .distributed import in_torchrun, launch

        if nproc is not None or in_torchrun():
            results = launch(cfg, nproc or int(os.environ["WORLD_SIZE"]))
        else:
            results = train(cfg)
    except CdoError as e:
        raise click.ClickException(str(e)) from None
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun every process runs this: the first one prints
    cols = ("image_auroc", "pixel_auroc", "pixel_ap", "aupro")
    click.echo(f"{'class':<16}{'seed':>6}" + "".join(f"{c:>13}" for c in cols) + f"{'time s':>9}")
    for r in results:
        vals = "".join(f"{r.last.get(c):>13.4f}" if isinstance(r.last.get(c), float) else f"{'-':>13}" for c in cols)
        click.echo(f"{r.class_name:<16}{r.seed:>6}{vals}{r.seconds:>9.1f}")
    click.echo(f"runs written under {results[0].run_dir.parent.parent if results else cfg.output_dir}")


def _key_values(items: tuple[str, ...]) -> dict:
    """``("stages=3", "function=root")`` -> ``{"stages": 3, "function": "root"}`` (values parsed as YAML)."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CdoError(f"expected KEY=VALUE, got {item!r} (e.g. --curriculum-param stages=3)")
        try:
            out[key.strip().replace("-", "_")] = yaml.safe_load(value)
        except yaml.YAMLError:
            out[key.strip().replace("-", "_")] = value
    return out


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    _cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="cdo-train")


if __name__ == "__main__":
    main()
