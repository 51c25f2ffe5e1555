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
from typing import Any, Callable

import click

from ..errors import CdoError
from ..inspection import InspectConfig, run_inspection
from ..schema_options import option_flags, schema_option
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


def _option(flag: str, dest: str | None = None, **kw: Any) -> Callable[[Any], Any]:
    """The option of an :class:`InspectConfig` field (see :func:`~cdo_deploy.schema_options.schema_option`)."""
    return schema_option(InspectConfig, flag, dest, **kw)


@click.command("cdo-inspect", context_settings=CONTEXT)
@click.argument("bundle", type=click.Path(path_type=Path))
@_option("--source", short="-s", required=True)
@_option("--out", short="-o", type=click.Path(path_type=Path))
@_option("--once", is_flag=True)
@_option("--include-existing", is_flag=True)
@_option("--fresh", is_flag=True)
@_option("--backend", registry="cdo_deploy.backends.BACKENDS")
@_option("--device")
@_option("--variant")
@_option("--threshold")
@_option("--pixel-threshold")
@_option("--sensitivity")
@_option("--max-batch")
@_option("--max-wait-ms")
@_option("--queue-size")
@_option("--workers")
@_option("--overlays")
@_option("--route", is_flag=True)
@_option("--no-quarantine", "quarantine", is_flag=True, flag_value=False,
         note="--no-quarantine leaves them in place.")
@click.option("--fail-on-errors", is_flag=True,
              help="Exit with status 1 when any image could not be inspected (errors > 0 in the summary).")
@_option("--csv", is_flag=True)
@_option("--mqtt", metavar="HOST:PORT/TOPIC")
@_option("--settle-ms", "settle_s", scale=1e3, metavar="MS")
@_option("--max-frames")
@_option("--min-region-area")
@_option("--http", metavar="[HOST:]PORT")
@_option("--http-token-file", type=click.Path(path_type=Path))
@click.option("--status/--no-status", default=None, help="Live status line on stderr (default: if a terminal).")
@click.option("-v", "--verbose", count=True, help="More log output (-vv: debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@user_errors
@camera_options
def inspect_main(bundle: Path, fail_on_errors: bool, status: bool | None, verbose: int, quiet: bool,
                 camera: CameraSettings | None, **options: Any) -> None:
    """Inspect parts with a cdo BUNDLE: OK/NG per image or frame, OUT/results.jsonl,
    overlays of defects; runs until the source ends (--once, video) or SIGINT/SIGTERM."""
    # every option but --fail-on-errors, --status, -v, -q and the camera's is a field of InspectConfig: its
    # type, range, default and help are declared there once; the schema checks the values
    setup_logging(verbose, quiet)
    cfg = inspect_config(bundle, camera, options)
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


def inspect_config(bundle: Path, camera: CameraSettings | None, options: dict[str, Any]) -> InspectConfig:
    """The :class:`InspectConfig` of the given options (``None``: not given, the schema's default);
    a bad value is a one-line ``CdoError`` naming its flag."""
    given = {k: v for k, v in options.items() if v is not None}
    values = {**given, "bundle": bundle, "camera": camera}
    if isinstance(given.get("settle_s"), (int, float)):
        values["settle_s"] = given["settle_s"] / 1e3  # --settle-ms
    return InspectConfig.from_options(values, option_flags(), shown=given)
