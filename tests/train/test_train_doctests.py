"""The usage examples of the run-management modules' docstrings run (those not marked +SKIP)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["cdo_train.training.config", "cdo_train.training.checkpoint", "cdo_train.training.meters", "cdo_train.training.signals",
           "cdo_train.data.folders", "cdo_train.data.splits", "cdo_train.data.io", "cdo_train.data.sample",
           "cdo_train.data.procedural_base", "cdo_train.training.run_folder", "cdo_train.model.discrepancy_levels",
           "cdo_train.sweep.spec", "cdo_train.sweep.trial", "cdo_train.training.step"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0, f"{name}: {result.failed} of {result.attempted} failed"
