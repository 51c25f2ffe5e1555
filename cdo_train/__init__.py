"""cdo_train: CDO training with curriculum learning, metrics and ONNX export (PyTorch).

The Python API mirrors the CLIs (:mod:`cdo_train.api`)::

    import cdo_train
    runs = cdo_train.train(dataset="folder", data_root="my_parts/good")   # cdo-train
    cdo_train.export(runs[0], "bundle")                                   # cdo-export
    maps, scores = cdo_train.load_run(runs[0]).predict("part.png")

Submodules are imported on demand so that torch-free parts (``cdo_train.data``,
``cdo_train.training.metrics``, ``cdo_train.training.visualize``) load without PyTorch.
"""

from ._version import __version__
__all__ = ["__version__", "export", "load_run", "resume", "train"]

_API = ("load_run", "resume", "train")


def __getattr__(name: str):
    if name in _API:
        from . import api

        return getattr(api, name)
    if name == "export":  # the subpackage, callable as cdo_train.export(run_dir, out, ...)
        import importlib

        return importlib.import_module(".export", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
