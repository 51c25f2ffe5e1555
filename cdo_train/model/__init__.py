"""The CDO model and its parts: teacher backbones and weights, students, discrepancy heads, memory bank.

:class:`~cdo_train.model.cdo_model.CDOModel` (with its
:class:`~cdo_train.model.cdo_model.ModelConfig`) is the network ``cdo-train`` trains and
``cdo-export`` exports; the other modules hold its parts. Nothing here knows about
training runs, configs or run folders. Submodules are imported on demand (this package
imports nothing), so :mod:`.students`' names load without PyTorch.
"""
