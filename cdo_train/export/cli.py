"""``cdo-export RUN_DIR -o BUNDLE``: write the deploy bundle of a trained run.

Example:
    cdo-export result/exp/weave/seed_111 -o bundle
    cdo-export result/exp/weave/seed_111 -o bundle --fp16 --int8 --triton-repo triton_models
    cdo-export result/exp/weave/seed_111 -o bundle --int8 --calib-method percentile --openvino
    cdo-export result/exp/weave/seed_111 -o bundle --fp16 --engine --engine-precision fp16   # on the GPU machine
    cdo-export result/exp/weave/seed_111 -o bundle --aoti --max-batch 64     # torch backend, on the GPU machine
    cdo-export --list-formats
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from cdo_deploy.errors import CdoError
from cdo_deploy.thresholds import fmt_threshold

from .formats import (
    AOTI_PRECISIONS,
    CALIB_METHODS,
    ENGINE_PRECISIONS,
    INT8_ACTIVATIONS,
    INT8_THRESHOLDS,
    MAX_OPSET,
    MEASURED_ON,
    MIN_OPSET,
    ExportOptions,
    format_rows,
)

__all__ = ["main"]

_DEFAULTS = {name: f.default for name, f in ExportOptions.model_fields.items()}  # shown in --help, written once


def _list_formats() -> None:
    from cdo_deploy.cpu import cpu_info

    rows = format_rows()
    cols = ("format", "flag", "file", "cpu", "gpu", "here")
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    click.echo("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        click.echo("  ".join(r[c].ljust(widths[c]) for c in cols))
    click.echo(f"\nmeasured on {MEASURED_ON}:")
    for r in rows:
        click.echo(f"  {r['format']}: speed {r['speed']}; accuracy {r['accuracy']}; depends on {r['depends on']}")
    click.echo(f"\nthis CPU: {cpu_info().describe()}")


def _export_with_progress(run_dir: Path, bundle: Path, opts: ExportOptions):
    """``export_run`` with a bar over its stages (ETA; on an interactive terminal only, log lines above it)."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from .exporter import export_run, export_stages

    stages = export_stages(opts)
    with tqdm(total=len(stages), desc="cdo-export", unit="stage", leave=False, dynamic_ncols=True,
              disable=None) as bar, logging_redirect_tqdm():
        def stage(name: str) -> None:
            bar.n = stages.index(name) if name in stages else bar.n
            bar.set_postfix_str(name)

        result = export_run(run_dir, bundle, opts, on_stage=stage)
        bar.n = len(stages)
        bar.refresh()
    return result


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("run_dir", required=False, type=click.Path(path_type=Path))
@click.option("-o", "--output", "bundle", type=click.Path(path_type=Path), help="Bundle folder to write.")
@click.option("--opset", type=int, default=_DEFAULTS["opset"], show_default=True,
              help=f"ONNX opset ({MIN_OPSET}..{MAX_OPSET}).")
@click.option("--fp16", is_flag=True, help="Also write model_fp16.onnx (fp16 backbones, fp32 head).")
@click.option("--int8", is_flag=True, help="Also write model_int8.onnx (Q/DQ, calibrated on good training images).")
@click.option("--calib-images", type=int, default=None, help="Good images used for int8 calibration [64].")
@click.option("--calib-dir", type=click.Path(path_type=Path), default=None,
              help="Folder of good images for int8 calibration (default: the run's training images).")
@click.option("--calib-method", type=click.Choice(CALIB_METHODS), default=None,
              help="int8 calibration [minmax]: min/max, 99.999th percentile or entropy of the activations.")
@click.option("--int8-keep-ends/--no-int8-keep-ends", default=None,
              help="Keep each backbone's first convolution and those feeding the head in fp32.")
@click.option("--int8-tolerance", type=float, default=None,
              help="int8 check tolerance [0.5]: AUROC/AUPRO points and % of test decisions; "
                   "any flipped held-out good part fails.")
@click.option("--int8-activations", type=click.Choice(INT8_ACTIVATIONS), default=None,
              help="int8 activation type: uint8 (asymmetric, fastest and most accurate on CPUs) or int8 "
                   "(symmetric, for TensorRT) [uint8; int8 with --engine-precision int8].")
@click.option("--int8-thresholds", type=click.Choice(INT8_THRESHOLDS), default=None,
              help="int8 decisions at its own thresholds, re-calibrated on its outputs by training's rule "
                   "[own], or at the fp32 bundle's.")
@click.option("--accept-int8", is_flag=True,
              help="Write the int8 variant even when it fails the check (loud warning, recorded in model.json).")
@click.option("--openvino", is_flag=True, help="Also write an OpenVINO IR of every ONNX variant (needs openvino).")
@click.option("--engine", is_flag=True, help="Build a TensorRT engine here (needs TensorRT and the target GPU).")
@click.option("--engine-precision", type=click.Choice(ENGINE_PRECISIONS), default=None,
              help="Engine precision [fp16]; fp16 adds the fp16 variant, int8 needs --int8.")
@click.option("--min-batch", type=int, default=_DEFAULTS["min_batch"], show_default=True,
              help="Smallest batch (engine profile).")
@click.option("--opt-batch", type=int, default=_DEFAULTS["opt_batch"], show_default=True,
              help="Batch to optimise for (engine, Triton).")
@click.option("--max-batch", type=int, default=_DEFAULTS["max_batch"], show_default=True,
              help="Largest batch (engine, Triton).")
@click.option("--workspace-mb", type=int, default=_DEFAULTS["workspace_mb"], show_default=True,
              help="TensorRT builder workspace, MiB.")
@click.option("--aoti", is_flag=True,
              help="Also write an AOTInductor package for the torch backend (fp16 on this GPU, else fp32 CPU).")
@click.option("--aoti-precision", type=click.Choice(AOTI_PRECISIONS), default=None,
              help="AOTI backbone precision [fp16 on CUDA, fp32 on CPU].")
@click.option("--triton-repo", type=click.Path(path_type=Path), default=None,
              help="Also write a Triton model repository there (<repo>/<name>/config.pbtxt, 1/model.onnx).")
@click.option("--model-name", default=_DEFAULTS["model_name"], show_default=True,
              help="Triton model name.")
@click.option("--simplify/--no-simplify", default=None, help="Fold constants with onnxslim [on when installed].")
@click.option("--force", "-f", is_flag=True, help="Replace an existing bundle folder / Triton model.")
@click.option("--allow-interrupted", is_flag=True,
              help="Export a run that was interrupted (weights as they were; cdo-train --resume finishes it).")
@click.option("--list-formats", is_flag=True, help="Show the export formats and whether they work here, then exit.")
@click.option("-v", "--verbose", count=True)
def _cli(run_dir, bundle, list_formats, verbose, **flags):
    """Export a cdo-train run folder to a deploy bundle (model.onnx + model.json)."""
    if list_formats:
        _list_formats()
        return
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s")
    if verbose < 2:
        logging.getLogger("onnxslim").setLevel(logging.WARNING)
    try:
        if run_dir is None or bundle is None:
            raise CdoError("usage: cdo-export RUN_DIR -o BUNDLE_DIR (see cdo-export --help)")
        opts = ExportOptions(**flags).validate()
        result = _export_with_progress(run_dir, bundle, opts)
    except CdoError as e:
        raise click.ClickException(str(e)) from None
    meta = result.meta
    click.echo(f"bundle {result.bundle_dir}: {len(result.files)} file(s), {meta.backbone} {meta.height}x{meta.width}, "
               f"thresholds image {fmt_threshold(meta.image_threshold)} pixel {fmt_threshold(meta.pixel_threshold)} "
               f"({meta.threshold_source})")
    for warning in result.warnings:
        click.echo(f"WARNING: {warning}", err=True)
    inspect, bench = result.next_commands()
    click.echo(f"next: {inspect}")
    click.echo(f"speed: {bench}")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    _cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="cdo-export")
