"""Torch-free data access: dataset layouts, image IO and the procedural demo dataset.

Example:
    >>> import tempfile
    >>> from cdo_train.data import make_demo_dataset, list_classes, list_samples, load_sample
    >>> root = make_demo_dataset(tempfile.mkdtemp(), classes=["weave"], n_train=2,
    ...                          n_test_good=1, n_test_defect=1, size=32)
    >>> samples = list_samples("mvtec2d", root, list_classes("mvtec2d", root)[0], "test")
    >>> [(s.defect_type, s.label) for s in samples]
    [('good', 0), ('scratch', 1)]
"""

from .io import IMAGE_EXTENSIONS, is_image_file, read_image, read_mask, resize
from .layouts import (
    LAYOUTS,
    SPLITS,
    Sample,
    list_classes,
    list_samples,
    load_sample,
    split_holdout,
    validate_sample,
)
from .procedural import DEFECT_TYPES, DEMO_CLASSES, DEMO_DEFECTS, DemoClass

_LAZY = {"DEFAULT_DEMO_CLASSES", "demo_classes", "make_demo_dataset"}


def __getattr__(name: str):
    # ``demo`` is imported on first use so that ``python -m cdo_train.data.demo``
    # does not find it already imported (runpy warns about that).
    if name in _LAZY:
        from . import demo

        return getattr(demo, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "DEFAULT_DEMO_CLASSES",
    "DEFECT_TYPES",
    "DEMO_CLASSES",
    "DEMO_DEFECTS",
    "DemoClass",
    "IMAGE_EXTENSIONS",
    "LAYOUTS",
    "SPLITS",
    "Sample",
    "demo_classes",
    "is_image_file",
    "list_classes",
    "list_samples",
    "load_sample",
    "make_demo_dataset",
    "read_image",
    "read_mask",
    "resize",
    "split_holdout",
    "validate_sample",
]
