"""``cdo-inspect build-engine BUNDLE``: build a TensorRT engine on the target machine.

Engines are tied to a GPU model and a TensorRT version, so they are built where they run,
from the bundle's ONNX graph (fp16/int8 from the matching ONNX variant), and listed in
``model.json`` under ``engines``.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..engine_build import build_engine, trtexec_line
from ._common import CONTEXT, setup_logging, user_errors


@click.command("cdo-inspect build-engine", context_settings=CONTEXT)
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8"]), default="fp16", show_default=True)
@click.option("--min-batch", default=1, show_default=True, type=click.IntRange(1))
@click.option("--opt-batch", default=8, show_default=True, type=click.IntRange(1))
@click.option("--max-batch", default=32, show_default=True, type=click.IntRange(1))
@click.option("--workspace-mb", default=2048, show_default=True, type=click.IntRange(64))
@click.option("--timing-cache", type=click.Path(path_type=Path), default=None,
              help="Timing cache file to reuse and update (default: next to model.json).")
@click.option("--strongly-typed/--weakly-typed", default=None,
              help="TensorRT 10.x: build strongly typed from the ONNX variant (11.x always does).")
@click.option("--trtexec-line", "trtexec_major", type=click.IntRange(10), default=None, metavar="MAJOR",
              help="Print the equivalent trtexec command for TensorRT MAJOR (10, 11) and exit; needs no TensorRT.")
@click.option("-v", "--verbose", count=True)
@user_errors
def build_engine_cmd(bundle: Path, precision: str, min_batch: int, opt_batch: int, max_batch: int,
                     workspace_mb: int, timing_cache: Path | None, strongly_typed: bool | None,
                     trtexec_major: int | None, verbose: int) -> None:
    """Build model_<precision>.engine for this GPU next to BUNDLE/model.json."""
    setup_logging(verbose + 1, False)
    if not min_batch <= opt_batch <= max_batch:
        raise click.ClickException("need --min-batch <= --opt-batch <= --max-batch")
    if trtexec_major is not None:
        click.echo(trtexec_line(bundle, precision, trtexec_major, min_batch, opt_batch, max_batch, workspace_mb,
                                strongly_typed))
        return
    path = build_engine(bundle, precision=precision, min_batch=min_batch, opt_batch=opt_batch, max_batch=max_batch,
                        workspace_mb=workspace_mb, timing_cache=timing_cache, strongly_typed=strongly_typed)
    click.echo(f"engine written: {path}")
    click.echo(f"next: cdo-inspect {bundle} --backend tensorrt --variant {precision} --source ...")
