"""The usage examples in cdo_deploy's docstrings run (those not marked +SKIP)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import cdo_deploy

MODULES = sorted(m.name for m in pkgutil.walk_packages(cdo_deploy.__path__, "cdo_deploy."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{name}: {result.failed} doctest(s) failed"
