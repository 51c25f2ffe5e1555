"""Command-line entry points ``cdo-inspect`` and ``cdo-bench`` (thin wrappers).

Each parses options, calls one public function and prints what it returns;
``CdoError`` becomes one ``Error: ...`` line and exit status 1.
"""

from __future__ import annotations

from .bench import bench_main
from .inspect import inspect_main

__all__ = ["bench_main", "inspect_main"]
