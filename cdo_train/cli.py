"""``cdo-train``: train CDO on MVTec-layout or folder data (flags compatible with the original train.py).

Example:
    cdo-train --dataset mvtec2d --data-root demo_data --class-name weave --epochs 10
    cdo-train --dataset folder --data-root my_parts --normal-dir good --abnormal-dir defect --mask-dir masks
    cdo-train --resume result/tf_efficientnet_lite0-none/weave/seed_111        # after Ctrl-C
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

from ._version import __version__
from .config import LEVEL_NORM, LEVEL_NORMS

__all__ = ["main"]

_BOOL = click.BOOL


class _RegistryOption(click.Option):
    """An option whose help ends with the names registered in a registry, read only when --help is shown
    (the registries' modules are torch-free, but importing them for every command would be wasted)."""

    def __init__(self, *args, registry: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._registry = registry

    def get_help_record(self, ctx):
        import importlib

        module, name = self._registry.rsplit(".", 1)
        names = ", ".join(getattr(importlib.import_module(module), name))
        base = self.help or ""
        self.help = f"{base} One of: {names}."
        try:
            return super().get_help_record(ctx)
        finally:
            self.help = base


def _bool_option(name: str, dest: str, help: str):
    # `--MOM` alone means True; `--MOM True/False/1/0` are accepted as in the original train.py.
    return click.option(name, dest, type=_BOOL, is_flag=False, flag_value=True, default=None, help=help)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="cdo-train")
@click.option("--config", "config_files", type=click.Path(dir_okay=False), multiple=True,
              help="YAML preset (repeatable: later files override earlier ones); flags override them.")
@click.option("--dataset", type=click.Choice(["mvtec2d", "mvtec3d", "folder"]), default=None,
              help="Data layout (default mvtec2d); folder: good images, or anomalib-style labelled folders.")
@click.option("--data-root", default=None, help="Dataset root folder (required, here or in a --config).")
@click.option("--class-name", "class_names", multiple=True,
              help="Class to train (repeatable, or 'all'); a folder dataset's class is named after its folder.")
@click.option("--normal-dir", default=None, help="--dataset folder: good training images (under --data-root).")
@click.option("--abnormal-dir", default=None, help="--dataset folder: defective test images (anomalib's name).")
@click.option("--mask-dir", default=None, help="--dataset folder: masks of the abnormal images, matched by file name.")
@click.option("--normal-test-dir", default=None,
              help="--dataset folder: good test images (default: 20% of --normal-dir, as anomalib).")
@click.option("--recursive", is_flag=True, default=None, help="--dataset folder: find good images in sub-folders too.")
@click.option("--calibration-dir", default=None,
              help="Folder of good images (>= 10) that set the thresholds, instead of a hold-out of the training images.")
@click.option("--backbone", default=None, cls=_RegistryOption, registry="cdo_train.backbones.BACKBONES",
              help="Teacher/student network (default tf_efficientnet_lite0).")
@click.option("--teacher-weights", default=None, help="PATH (.pth/.safetensors) or 'random'; default: packaged/cached.")
@_bool_option("--MOM", "mom", "Synthetic anomalies (multi-objective optimisation); default on.")
@_bool_option("--OOM", "oom", "Pixel reweighting (overlap optimisation); default on.")
@click.option("--gamma", type=float, default=None, help="OOM focusing exponent (default 2).")
@_bool_option("--amp", "amp", "CUDA: fp16 autocast with a GradScaler; default on.")
@_bool_option("--cpu-bf16", "cpu_bf16", "CPU: bf16 autocast in the training step where the CPU has native bf16 "
              "(AVX512-BF16, AMX; elsewhere fp32, as bf16 would be slower); evaluation stays fp32; default on.")
@_bool_option("--channels-last", "channels_last", "Channels-last (NHWC) model and batches in training; default: on "
              "CUDA, off on CPU (slower there).")
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
@click.option("--score-levels", type=click.IntRange(0, 3), default=None,
              help="The image score reads the map of the first N feature levels (strides 4, 8, 16); "
                   "default 0 = all three, the paper's. 2 raised image AUROC on stochastic hard surfaces "
                   "but lowered it on others (docs/results/hard_surfaces.md). The anomaly map always sums all "
                   "three; with --head cdo+knn the score is the fused map's.")
@click.option("--level-norm", type=click.Choice(list(LEVEL_NORMS)), default=None,
              help="none: the anomaly map sums the levels' discrepancies as they are (the paper's); z: each "
                   "level is first divided by its standard deviation over the held-out good images, so no level "
                   "drowns the others (docs/results/photo_suite.md). Default: " + LEVEL_NORM + ".")
@click.option("--student", type=click.Choice(["same", "light"]), default=None,
              help="same: the teacher's architecture (the paper's); light: a small asymmetric student.")
@click.option("--head", type=click.Choice(["cdo", "cdo+knn"]), default=None,
              help="cdo: teacher/student discrepancy; cdo+knn: fused with a memory bank of normal teacher patches.")
@click.option("--bank-size", type=int, default=None, help="Memory-bank patches for --head cdo+knn (default 1024).")
@click.option("--output-dir", default=None, help="Where run folders go (default ./result).")
@click.option("--name", default=None, help="Experiment name (default <backbone>-<curriculum>).")
@click.option("--exist-ok", is_flag=True,
              help="Replace a run already in <output-dir>/<name>/<class>/seed_<n> (deleted first, TensorBoard "
                   "files included); without it such a run is never overwritten.")
@click.option("--resume", "resume_dir", default=None, metavar="RUN_DIR",
              help="Continue an interrupted run from its checkpoint (its own config; --device, --no-progress, "
                   "--save-every and --nproc may be given).")
@click.option("--save-every", type=int, default=None,
              help="Save a checkpoint every N epochs (default 10; 0: only on Ctrl-C / SIGTERM).")
@click.option("--curriculum", default=None, cls=_RegistryOption, registry="cdo_train.curriculum.SCHEDULES",
              help="Curriculum schedule (default none).")
@click.option("--knobs", default=None, cls=_RegistryOption, registry="cdo_train.difficulty.KNOBS",
              help="Comma-separated difficulty knobs driven by the curriculum.")
@click.option("--curriculum-param", "curriculum_param", multiple=True, metavar="KEY=VALUE",
              help="Schedule parameter, e.g. stages=3 or saturation=0.8 (repeatable).")
@click.option("--ordering", default=None, cls=_RegistryOption, registry="cdo_train.ordering.ORDERINGS",
              help="Per-sample ordering curriculum scorer.")
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
    from .signals import TrainingInterrupted

    try:
        from .config import TrainConfig, load_config_file

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
            from .trainer import resume, resume_config

            if config_files:
                raise CdoError("--resume continues the run with its own config; it does not take --config")
            if _parallel(nproc):
                cfg, _ckpt = resume_config(resume_dir, **overrides)
                results = _launch(cfg, nproc, resume=resume_dir)
            else:
                results = [resume(resume_dir, **overrides)]
        else:
            cfg = cfg.merged(overrides)
            if cfg.data_root is None:
                raise click.UsageError("missing --data-root (the dataset folder; or a --config that sets data_root)")
            from .trainer import train

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
    from .distributed import in_torchrun

    return nproc is not None or in_torchrun()


def _launch(cfg, nproc: int | None, **kw):
    from .distributed import launch

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
