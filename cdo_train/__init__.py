"""cdo_train: CDO training with curriculum learning, metrics and ONNX export (PyTorch).

Submodules are imported on demand so that torch-free parts (``cdo_train.data``,
``cdo_train.metrics``, ``cdo_train.visualize``) load without PyTorch.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
