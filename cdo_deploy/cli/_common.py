"""Shared CLI plumbing: logging set-up and CdoError -> one-line ``Error:``."""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from typing import Any, Callable, Iterator, TypeVar

import click

from ..errors import CdoError

F = TypeVar("F", bound=Callable[..., Any])

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def setup_logging(verbose: int, quiet: bool) -> None:
    """WARNING by default, INFO with -v, DEBUG with -vv, ERROR with -q; quiets OpenCV's own log."""
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    try:
        import cv2.utils.logging as cvlog

        cvlog.setLogLevel(cvlog.LOG_LEVEL_INFO if verbose >= 2 else cvlog.LOG_LEVEL_SILENT)
    except ImportError:
        pass


def user_errors(fn: F) -> F:
    """Turn ``CdoError`` into ``click.ClickException`` (one line, exit status 1)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CdoError as e:
            raise click.ClickException(str(e)) from None

    return wrapper  # type: ignore[return-value]


def csv_list(kind: Callable[[str], Any]) -> Callable[[click.Context, click.Parameter, str | None], Any]:
    """Click callback parsing ``a,b,c`` into a tuple of ``kind``."""

    def parse(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
        if value is None:
            return None
        try:
            return tuple(kind(v.strip()) for v in value.split(",") if v.strip())
        except ValueError:
            raise click.BadParameter(f"expected a comma-separated list, got {value!r}") from None

    return parse


@contextlib.contextmanager
def progress(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar with ETA on stderr, on an interactive terminal only; yields ``update(n)``."""
    if not sys.stderr.isatty():
        yield lambda n: None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr, show_eta=True, show_pos=True) as bar:
        yield bar.update
