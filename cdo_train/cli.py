"""``cdo-train``: train CDO on MVTec-layout or folder data (flags compatible with the original train.py).

Example:
    cdo-train --dataset mvtec2d --data-root demo_data --class-name weave --epochs 10
    cdo-train --dataset folder --data-root my_parts --normal-dir good --abnormal-dir defect --mask-dir masks
    cdo-train --resume result/tf_efficientnet_lite0-none/weave/seed_111        # after Ctrl-C
    cdo-train --config configs/paper.yaml --class-name all --MOM True --OOM True --gamma 2
    cdo-train --config configs/demo.yaml --config configs/curriculum_step.yaml --curriculum-param stages=3
    cdo-train --config configs/demo.yaml --class-name all --nproc 4          # 4 GPUs (see cdo_train.training.distributed)
    torchrun --standalone --nproc_per_node 4 -m cdo_train.cli --config configs/demo.yaml --class-name all
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from cdo_deploy.errors import CdoError
from cdo_deploy.schema_options import schema_option

from ._version import __version__
from .training.config import TrainConfig, load_config_file

__all__ = ["main"]


def _field(flag: str, dest: str | None = None, **kw):
    """The option ``flag`` of the TrainConfig field ``dest`` (by default, named like the flag): its type
    (choices), default and help come from the schema (:func:`cdo_deploy.schema_options.schema_option`);
    ``default=None`` leaves the field to presets, and the schema checks the value.

    A true/false field's flag alone means True, and ``--MOM True/False/1/0`` are accepted as in the
    original train.py."""
    return schema_option(TrainConfig, flag, dest, **kw)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="cdo-train")
@click.option("--config", "config_files", type=click.Path(dir_okay=False), multiple=True,
              help="YAML preset (repeatable: later files override earlier ones); flags override them.")
@_field("--dataset")
@_field("--data-root")
@_field("--class-name", "class_names", type=str, multiple=True, note="Repeatable.")
@_field("--normal-dir")
@_field("--abnormal-dir")
@_field("--mask-dir")
@_field("--normal-test-dir")
@_field("--recursive", is_flag=True)
@_field("--calibration-dir")
@_field("--backbone", registry="cdo_train.model.backbones.BACKBONES")
@_field("--teacher-weights")
@_field("--MOM", "mom")
@_field("--OOM", "oom")
@_field("--gamma")
@_field("--hard-quantile")
@_field("--penalty-dir")
@_field("--penalty-weight")
@_field("--penalty-batch")
@_field("--amp")
@_field("--cpu-bf16")
@_field("--channels-last")
@click.option("--gpu-id", type=int, default=None, help="Same as --device cuda:N.")
@_field("--device")
@_field("--steps")
@_field("--epochs")
@_field("--batch-size")
@_field("--lr")
@_field("--image-size")
@_field("--seed")
@_field("--seeds")
@_field("--eval-every")
@_field("--score-levels")
@_field("--level-norm")
@_field("--student")
@_field("--head")
@_field("--bank-size")
@_field("--seg-steps")
@_field("--output-dir")
@_field("--name")
@click.option("--exist-ok", is_flag=True,
              help="Replace a run already in <output-dir>/<name>/<class>/seed_<n> (deleted first, TensorBoard "
                   "files included); without it such a run is never overwritten.")
@click.option("--resume", "resume_dir", default=None, metavar="RUN_DIR",
              help="Continue an interrupted run from its checkpoint (its own config; --device, --no-progress, "
                   "--save-every and --nproc may be given).")
@_field("--save-every")
@_field("--curriculum", registry="cdo_train.training.curriculum.SCHEDULES")
@_field("--knobs", type=str, note="Comma-separated.", registry="cdo_train.synth.difficulty.KNOBS")
@click.option("--curriculum-param", "curriculum_param", multiple=True, metavar="KEY=VALUE",
              help="Schedule parameter, e.g. stages=3 or saturation=0.8 (repeatable).")
@_field("--ordering", registry="cdo_train.training.ordering.ORDERINGS")
@click.option("--ordering-param", "ordering_param", multiple=True, metavar="KEY=VALUE",
              help="Ordering parameter: start=0.3 (fraction of images at t=0), warmup_steps=20 (repeatable).")
@click.option("--nproc", type=click.IntRange(1), default=None,
              help="Train in N processes, one per GPU (DDP for one class, classes spread over the processes "
                   "for several), with the fast GPU path; gloo on CPU. Under torchrun its world size is used.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.option("-v", "--verbose", count=True)
def _cli(config_files, class_names, gpu_id, knobs, curriculum_param, ordering_param, nproc, no_progress, verbose,
         exist_ok, resume_dir, **flags):
    """Train CDO teacher/student models; one run folder per class and seed.

    A finished run is never overwritten (--exist-ok replaces it); Ctrl-C or SIGTERM saves a checkpoint
    that --resume RUN_DIR continues. The last lines name the run folders cdo-export takes.
    """
    logging.basicConfig(level=logging.DEBUG if verbose > 1 else logging.INFO, format="%(message)s")
    from .training.signals import TrainingInterrupted

    try:
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
        if resume_dir is not None:
            from .training.trainer import resume, resume_config

            if config_files:
                raise CdoError("--resume continues the run with its own config; it does not take --config")
            if _parallel(nproc):
                cfg, ckpt = resume_config(resume_dir, **overrides)  # read once; spawned processes read their own
                results = _launch(cfg, nproc, resume=(Path(resume_dir), ckpt))
            else:
                results = [resume(resume_dir, **overrides)]
        else:
            cfg = cfg.merged(overrides)
            if cfg.data_root is None:
                raise click.UsageError("missing --data-root (the dataset folder; or a --config that sets data_root)")
            from .training.trainer import train

            results = _launch(cfg, nproc, exist_ok=exist_ok) if _parallel(nproc) else train(cfg, exist_ok=exist_ok)
    except TrainingInterrupted as e:
        click.echo(f"Interrupted: {e}", err=True)
        sys.exit(128 + e.signum)
    except CdoError as e:
        raise click.ClickException(str(e)) from None
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun every process runs this: the first one prints
    cols = ("image_auroc", "pixel_auroc", "pixel_ap", "aupro")
    click.echo(f"{'class':<16}{'seed':>6}" + "".join(f"{c:>13}" for c in cols)
               + f"{'wall s':>9}{'core-s':>9}{'img/s':>8}")
    for r in results:
        vals = "".join(f"{r.last.get(c):>13.4f}" if isinstance(r.last.get(c), float) else f"{'-':>13}" for c in cols)
        ips = f"{r.train_images_per_s:>8.1f}" if r.train_images_per_s is not None else f"{'-':>8}"
        click.echo(f"{r.class_name:<16}{r.seed:>6}{vals}{r.seconds:>9.1f}{r.cpu_seconds:>9.1f}{ips}")
    click.echo(f"run folder{'s' * (len(results) != 1)} (cdo-export RUN_DIR -o BUNDLE):")
    for r in results:
        click.echo(f"  {r.run_dir}")


def _parallel(nproc: int | None) -> bool:
    from .training.distributed import in_torchrun

    return nproc is not None or in_torchrun()


def _launch(cfg, nproc: int | None, **kw):
    from .training.distributed import launch

    return launch(cfg, nproc or int(os.environ["WORLD_SIZE"]), **kw)


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
