"""cdo-inspect's options are InspectConfig's fields: their choices, defaults and help come from the schema."""

from __future__ import annotations

import typing
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cdo_deploy.cli import inspect as inspect_cli
from cdo_deploy.errors import CdoError
from cdo_deploy.inspection import InspectConfig

_CLI_ONLY = {"bundle", "fail_on_errors", "status", "verbose", "quiet"}


def _params() -> dict[str, click.Parameter]:
    return {p.name: p for p in inspect_cli.inspect_main.params if p.name}


def test_every_field_but_camera_and_drift_is_an_option_and_every_option_a_field_or_cli_only():
    from cdo_deploy.cli._camera import _NAMES

    params = _params()
    assert set(InspectConfig.model_fields) - set(params) == {"camera", "drift"}
    assert set(params) - set(InspectConfig.model_fields) == (_CLI_ONLY | set(_NAMES)) - {"bundle"}


def test_choices_defaults_and_help_are_the_schemas():
    ctx = click.Context(inspect_cli.inspect_main)
    for name, field in InspectConfig.model_fields.items():
        param = _params().get(name)
        if param is None or name == "bundle":
            continue
        assert param.default is None, name  # not given: the schema's default applies
        _, text = param.get_help_record(ctx)
        assert field.description.split()[0] in text, name
        if typing.get_origin(field.annotation) is typing.Literal:
            assert tuple(param.type.choices) == typing.get_args(field.annotation)
        default = field.get_default()
        if not field.is_required() and default is not None and not isinstance(default, bool):
            shown = default * 1e3 if name == "settle_s" else default
            assert f"default: {shown}" in text, (name, text)


@pytest.fixture
def parsed(monkeypatch):
    """``parsed(*args)``: the InspectConfig cdo-inspect builds from ``args`` (nothing is run)."""
    seen = []

    def fake_run(cfg, *a, **kw):
        seen.append(cfg)
        raise CdoError("stopped")

    monkeypatch.setattr(inspect_cli, "run_inspection", fake_run)

    def parse(*args: str) -> InspectConfig:
        r = CliRunner().invoke(inspect_cli.inspect_main, ["bundle", *args])
        assert seen, r.output
        return seen.pop()

    return parse


def test_no_options_give_the_schemas_defaults(parsed):
    assert parsed("--source", "in") == InspectConfig(Path("bundle"), "in")


def test_options_that_differ_from_their_field(parsed):
    cfg = parsed("-s", "in", "--settle-ms", "250", "--no-quarantine", "--csv", "--once", "--overlays", "all",
                 "--max-batch", "3", "--sensitivity", "0.7", "-o", "x")
    assert (cfg.settle_s, cfg.quarantine, cfg.csv, cfg.once, cfg.overlays) == (0.25, False, True, True, "all")
    assert (cfg.max_batch, cfg.sensitivity, cfg.out) == (3, 0.7, Path("x"))


def test_inspect_config_keeps_positional_construction_and_checks_values():
    cfg = InspectConfig("b", "src", out=Path("o"), once=True)
    assert (cfg.bundle, cfg.source, cfg.once) == (Path("b"), "src", True)
    with pytest.raises(CdoError, match="option 'max_batch' must be an integer >= 1, got 0"):
        InspectConfig("b", "src", max_batch=0)
    with pytest.raises(CdoError, match="unknown option 'onse'"):
        InspectConfig("b", "src", onse=True)
    with pytest.raises(TypeError):
        InspectConfig("b", "src", source="again")
