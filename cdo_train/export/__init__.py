"""Export a trained run to a deploy bundle: ONNX (fp32/fp16/int8), TensorRT engine, Triton repository.

The bundle format is defined in :mod:`cdo_deploy.bundle`; :data:`EXPORT_FORMATS`
is the one table of what can be written.

The package itself is callable: ``cdo_train.export(run_dir, out, fp16=True)``
does what :func:`cdo_train.api.export` does (the Python twin of ``cdo-export``).

Example:
    >>> from cdo_train.export import ExportOptions, export_run
    >>> res = export_run("result/exp/weave/seed_111", "bundle", ExportOptions(fp16=True))  # doctest: +SKIP
    >>> [f.format for f in res.files]                                                      # doctest: +SKIP
    ['onnx', 'onnx-fp16']
"""

import sys
import types

from .formats import EXPORT_FORMATS, ExportFormat, ExportOptions, format_rows

__all__ = [
    "EXPORT_FORMATS",
    "ExportFormat",
    "ExportOptions",
    "ExportResult",
    "ExportedFile",
    "export_run",
    "format_rows",
    "tensorrt_problems",
]


def __getattr__(name: str):
    # torch-heavy parts load on first use so `cdo-export --help` and option errors stay fast
    if name in ("ExportResult", "ExportedFile", "export_run"):
        from . import exporter

        return getattr(exporter, name)
    if name == "tensorrt_problems":
        from .checks import tensorrt_problems

        return tensorrt_problems
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    """``cdo_train.export`` is both this package and the export function of the Python API."""

    def __call__(self, run_dir, out, **options):
        from .exporter import export_run

        return export_run(run_dir, out, ExportOptions.from_kwargs(**options))


sys.modules[__name__].__class__ = _CallableModule
