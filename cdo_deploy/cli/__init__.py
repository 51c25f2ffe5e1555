"""Command-line entry points ``cdo-inspect`` and ``cdo-bench`` (thin wrappers).

Each parses options, calls one public function and prints what it returns;
``CdoError`` becomes one ``Error: ...`` line and exit status 1.
``cdo-inspect build-engine BUNDLE`` builds a TensorRT engine on the target machine.
"""

from __future__ import annotations

import sys

from .bench import bench_main
from .inspect import inspect_main

__all__ = ["bench_main", "inspect_entry", "inspect_main"]


def inspect_entry(argv: list[str] | None = None) -> None:
    """``cdo-inspect``: ``build-engine BUNDLE ...`` or ``BUNDLE --source ...``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["build-engine"]:
        from .engine import build_engine_cmd

        build_engine_cmd.main(args=args[1:], prog_name="cdo-inspect build-engine")
    else:
        inspect_main.main(args=args, prog_name="cdo-inspect")
