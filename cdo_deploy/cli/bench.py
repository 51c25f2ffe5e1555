"""``cdo-bench BUNDLE``: measure backends side by side (see :mod:`cdo_deploy.bench`)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..backends import HINTS
from ..bench import BenchConfig, bench_rounds, format_table, run_bench
from ..errors import CdoError
from ._common import CONTEXT, csv_list, progress, setup_logging, user_errors


def _hw(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        h, w = (int(v) for v in value.lower().split("x"))
        return h, w
    except ValueError:
        raise click.BadParameter(f"use HxW, e.g. 1024x1280, got {value!r}") from None


@click.command("cdo-bench", context_settings=CONTEXT)
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Labelled parts (MVTec class folder, or good/ + <defect>/ [+ mask/<defect>/]): adds image "
                   "AUROC, pixel AUROC, AUPRO and OK/NG agreement with fp32, and times these parts.")
@click.option("--backend", "backends", default="onnxruntime,openvino,tensorrt", show_default=True,
              callback=csv_list(str), help="Comma-separated backends; each gets a row, failures included.")
@click.option("--batch", "batches", default="1,8", show_default=True, callback=csv_list(int),
              help="Comma-separated batch sizes.")
@click.option("--warmup", default=5, show_default=True, type=click.IntRange(0), help="Untimed runs per row.")
@click.option("--iters", default=50, show_default=True, type=click.IntRange(1), help="Timed runs per row.")
@click.option("--device", default="auto", show_default=True,
              help="auto, cpu, cuda[:N], tensorrt[:N] (onnxruntime) or gpu[:N]/npu (openvino).")
@click.option("--threads", default=0, show_default=True, type=click.IntRange(0),
              help="CPU inference threads per runtime (0 = the runtime's default; ONNX Runtime stops spinning).")
@click.option("--hint", default="latency", show_default=True, type=click.Choice(HINTS),
              help="Performance hint (OpenVINO).")
@click.option("--variant", "variants", default=None, callback=csv_list(str),
              help="Only these variants (fp32,fp16,int8...); default: all in the bundle.")
@click.option("--image-size", "image_hw", default=None, callback=_hw,
              help="Synthetic part size HxW when neither --data nor calibration images are there "
                   "(default: twice the model size).")
@click.option("--torch", "torch_run", type=click.Path(path_type=Path), default=None,
              help="Training run folder: add the PyTorch eager model as the reference row (needs cdo[train]).")
@click.option("--json", "json_path", type=click.Path(path_type=Path), default=Path("cdo_bench.json"),
              show_default=True, help="Where to write the rows as JSON.")
@click.option("-v", "--verbose", count=True, help="More log output (-vv: debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@user_errors
def bench_main(bundle: Path, data: Path | None, backends: tuple[str, ...], batches: tuple[int, ...], warmup: int,
               iters: int, device: str, threads: int, hint: str, variants: tuple[str, ...] | None,
               image_hw: tuple[int, int] | None, torch_run: Path | None, json_path: Path, verbose: int,
               quiet: bool) -> None:
    """Measure every backend x variant of BUNDLE side by side, all rows interleaved:
    pre-processing, inference, post-processing and end-to-end latency (p50/p90/p99 ms
    per batch, good and defective parts apart), images/s and, with --data, image
    AUROC, pixel AUROC, AUPRO and OK/NG agreement with fp32; print a table and
    write JSON. Exits 1 when no row was measured."""
    setup_logging(verbose, quiet)
    cfg = BenchConfig(bundle=bundle, backends=backends, batches=batches, warmup=warmup, iters=iters,
                      device=device, variants=variants, image_hw=image_hw, torch_run=torch_run, data=data,
                      threads=threads, hint=hint)
    with progress(bench_rounds(cfg), "cdo-bench: timing") as update:
        report = run_bench(cfg, on_progress=update)
    click.echo(format_table(report))
    doc = {"bundle": str(bundle), "data": None if data is None else str(data), "warmup": warmup, "iters": iters,
           "device": device, "threads": threads, "hint": hint, **report.to_dict()}
    try:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(doc, indent=2) + "\n")
    except OSError as e:
        raise CdoError(f"cannot write {json_path}: {e}") from None
    click.echo(f"wrote {json_path}")
    rows = report.rows
    if not any(r.status == "ok" for r in rows):
        first = rows[0] if rows else None
        why = f"{first.backend} {first.variant}: {first.status}, {first.note}" if first else "no rows"
        raise CdoError(f"no row was measured ({why}); install the backend or choose --backend/--variant "
                       "that this bundle and machine have")
