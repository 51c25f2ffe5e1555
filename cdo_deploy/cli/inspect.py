"""``cdo-inspect BUNDLE --source ...``: OK/NG per part, results log, overlays.

SIGINT/SIGTERM finish what is in flight, flush and fsync the log, print the
summary and exit 0; a second signal exits at once (records written so far are
intact: each one is flushed when written).
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click

from ..backends import BACKENDS
from ..errors import CdoError
from ..inspection import InspectConfig, run_inspection
from ..pipeline import DEFAULT_MAX_BATCH
from ..sources import CameraSettings
from ..status import Summary
from ._camera import camera_options
from ._common import CONTEXT, setup_logging, user_errors


def _install_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)


@click.command("cdo-inspect", context_settings=CONTEXT)
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--source", "-s", required=True,
              help="Folder to watch, image/video file, glob ('lot/*.png'), @list.txt, camera:N, "
                   "rtsp://... / http://... URL, GStreamer pipeline ('gst:...'), or an industrial camera: "
                   "pylon, pylon:SERIAL, pylon:NAME (pip install 'cdo[pylon]').")
@click.option("--out", "-o", type=click.Path(path_type=Path), default=Path("inspect_out"), show_default=True,
              help="Output folder: results.jsonl, overlays/, quarantine/, summary.json.")
@click.option("--once", is_flag=True,
              help="Folder: process the files already there, then exit (the folder is left as it is).")
@click.option("--include-existing", is_flag=True,
              help="Folder: also process files already there, then keep watching (use after a restart).")
@click.option("--fresh", is_flag=True,
              help="OUT holds results of another bundle or other thresholds: move them to OUT/previous/ and "
                   "start anew (without it such a run refuses).")
@click.option("--backend", default="auto", show_default=True, help=f"auto, {', '.join(BACKENDS.list())}.")
@click.option("--device", default="auto", show_default=True,
              help="auto, cpu, cuda[:N]; onnxruntime also tensorrt[:N] (its TensorRT provider).")
@click.option("--variant", default=None, help="Model variant from model.json (fp32, fp16, int8...).")
@click.option("--threshold", type=float, default=None, help="Image threshold (score units), overrides model.json.")
@click.option("--pixel-threshold", type=float, default=None, help="Pixel threshold for defect regions.")
@click.option("--sensitivity", type=click.FloatRange(0, 1), default=None,
              help="0..1: 0.5 = model.json thresholds, higher = more NG (1 = p99 of normal scores).")
@click.option("--max-batch", default=DEFAULT_MAX_BATCH, show_default=True, type=click.IntRange(1),
              help="Micro-batch size limit.")
@click.option("--max-wait-ms", default=5.0, show_default=True, type=click.FloatRange(0),
              help="Longest wait for a micro-batch to fill, ms.")
@click.option("--queue-size", default=64, show_default=True, type=click.IntRange(1),
              help="Capacity of each stage queue (live sources drop the oldest frames beyond it).")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1), help="Pre-processing threads.")
@click.option("--overlays", type=click.Choice(["ng", "all", "none"]), default="ng", show_default=True,
              help="Write heatmap overlays for NG parts, all images, or none.")
@click.option("--route", is_flag=True, help="Move input files into OUT/ok/ and OUT/ng/ after inspection.")
@click.option("--no-quarantine", is_flag=True,
              help="Leave unreadable files in place (default: watching moves them to OUT/quarantine/, "
                   "--once copies them there).")
@click.option("--fail-on-errors", is_flag=True,
              help="Exit with status 1 when any image could not be inspected (errors > 0 in the summary).")
@click.option("--csv", "write_csv", is_flag=True, help="Also write OUT/results.csv.")
@click.option("--mqtt", default=None, metavar="HOST:PORT/TOPIC", help="Publish every decision to an MQTT broker.")
@click.option("--settle-ms", default=500.0, show_default=True, type=click.FloatRange(0),
              help="Folder: a file is complete when unchanged this long (or closed after writing).")
@click.option("--max-frames", type=click.IntRange(1), default=None,
              help="Streams, cameras: stop after N frames (pylon software trigger: fire N triggers).")
@click.option("--min-region-area", default=0, show_default=True, type=click.IntRange(0),
              help="Ignore defect regions smaller than this many pixels.")
@click.option("--http", default=None, metavar="[HOST:]PORT",
              help="Serve a live operator page, Prometheus /metrics and /healthz (read-only); binds 127.0.0.1 "
                   "unless HOST is given (then a token is required). Port 0: any free port.")
@click.option("--http-token-file", type=click.Path(path_type=Path), default=None,
              help="File with the bearer token for --http (default: $CDO_HTTP_TOKEN, else no token).")
@click.option("--status/--no-status", default=None, help="Live status line on stderr (default: if a terminal).")
@click.option("-v", "--verbose", count=True, help="More log output (-vv: debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@user_errors
@camera_options
def inspect_main(bundle: Path, source: str, out: Path, once: bool, include_existing: bool, fresh: bool, backend: str,
                 device: str, variant: str | None, threshold: float | None, pixel_threshold: float | None,
                 sensitivity: float | None, max_batch: int, max_wait_ms: float, queue_size: int, workers: int,
                 overlays: str, route: bool, no_quarantine: bool, fail_on_errors: bool, write_csv: bool,
                 mqtt: str | None, settle_ms: float, max_frames: int | None, min_region_area: int, http: str | None,
                 http_token_file: Path | None, status: bool | None, verbose: int, quiet: bool,
                 camera: CameraSettings | None) -> None:
    """Inspect parts with a cdo BUNDLE: OK/NG per image or frame, OUT/results.jsonl,
    overlays of defects; runs until the source ends (--once, video) or SIGINT/SIGTERM."""
    setup_logging(verbose, quiet)
    cfg = InspectConfig(
        bundle=bundle, source=source, out=out, once=once, include_existing=include_existing, backend=backend,
        device=device, variant=variant, threshold=threshold, pixel_threshold=pixel_threshold,
        sensitivity=sensitivity, max_batch=max_batch, max_wait_ms=max_wait_ms, queue_size=queue_size,
        workers=workers, overlays=overlays, route=route, quarantine=not no_quarantine, csv=write_csv, mqtt=mqtt,
        settle_s=settle_ms / 1e3, max_frames=max_frames, min_region_area=min_region_area, fresh=fresh,
        camera=camera, http=http, http_token_file=http_token_file,
    )
    stop = threading.Event()
    _install_signals(stop)
    live = sys.stderr.isatty() if status is None else status
    tty = sys.stderr.isatty()

    def show(s: Summary) -> None:
        click.echo(("\r" if tty else "") + s.format() + ("\033[K" if tty else ""), err=True, nl=not tty)

    def serving(url: str) -> None:
        click.echo(f"cdo-inspect: live page {url} (metrics: {url}metrics, health: {url}healthz)", err=True)

    result = run_inspection(cfg, stop, on_status=show if live else None, status_every_s=0.5 if tty else 5.0,
                            on_serving=serving)
    if live and tty:
        click.echo("", err=True)
    click.echo(f"cdo-inspect: {result.summary.format()}")
    for line in result.report_lines():
        click.echo(line)
    if fail_on_errors and result.summary.errors:
        raise CdoError(f"{result.summary.errors} image(s) could not be inspected (--fail-on-errors); "
                       f"their records in {result.results} say why")
