"""cdo_deploy: the line-side runtime. Never imports torch.

numpy, OpenCV, ONNX Runtime and (optionally) TensorRT with cuda-bindings only.
The runtime classes are imported lazily, so ``cdo_deploy.bundle`` stays cheap
for ``cdo_train``'s exporter.

Example:
    >>> import cdo_deploy
    >>> insp = cdo_deploy.Inspector("bundle/", device="cpu")   # doctest: +SKIP
    >>> insp(image_bgr).decision                                # doctest: +SKIP
    'OK'
"""

from __future__ import annotations

import importlib
from typing import Any

from .bundle import BundleMeta, load_bundle_meta
from .errors import CdoError
from .registry import Registry

__all__ = [
    "BenchRow",
    "BundleMeta",
    "CdoError",
    "InspectConfig",
    "Inspector",
    "Prediction",
    "Region",
    "Registry",
    "StageTimes",
    "load_bundle_meta",
    "run_inspection",
]

_LAZY = {
    "Inspector": ".inspector",
    "InspectConfig": ".inspection",
    "run_inspection": ".inspection",
    "Prediction": ".results",
    "Region": ".results",
    "StageTimes": ".results",
    "BenchRow": ".results",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
