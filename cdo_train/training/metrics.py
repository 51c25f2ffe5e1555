"""Training's metrics: the project's one metric code lives in :mod:`cdo_deploy.metrics`.

It is torch- and scipy-free so that the line-side runtime (``cdo-bench --data``)
computes exactly the figures training reports; this module re-exports it.

Example:
    >>> image_auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
"""

from cdo_deploy import metrics as _metrics
from cdo_deploy.metrics import *  # noqa: F401,F403 - the re-export is the point

__all__ = list(_metrics.__all__)
