"""The usage examples in cdo_train's docstrings run (those not marked +SKIP), in every module of the package."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import cdo_train

MODULES = sorted(m.name for m in pkgutil.walk_packages(cdo_train.__path__, "cdo_train."))
# modules whose examples are their documentation of the run's files and state: they must keep some
WITH_EXAMPLES = {"cdo_train.training.config", "cdo_train.training.checkpoint", "cdo_train.training.meters",
                 "cdo_train.training.signals", "cdo_train.data.folders", "cdo_train.data.splits", "cdo_train.data.io",
                 "cdo_train.data.sample", "cdo_train.data.procedural_base", "cdo_train.training.run_folder",
                 "cdo_train.model.discrepancy_levels", "cdo_train.sweep.spec", "cdo_train.sweep.trial",
                 "cdo_train.training.step"}


def test_every_sub_package_is_walked():
    assert WITH_EXAMPLES <= set(MODULES)
    assert {"cdo_train.model.cdo_model", "cdo_train.synth.anomalies", "cdo_train.training.run"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} failed"
    assert result.attempted > 0 or name not in WITH_EXAMPLES, f"{name}: no examples ran"
