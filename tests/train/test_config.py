"""The one configuration schema: ``TrainConfig`` checks every value with one-line errors, and
``cdo-train``'s options take their choices, defaults and help from it."""

from __future__ import annotations

import typing

import pytest
from click.testing import CliRunner

from cdo_deploy.errors import CdoError
from cdo_train.cli import _cli
from cdo_train.training.config import RESUME_OVERRIDES, STUDENTS, TrainConfig
from cdo_train.export.formats import ExportOptions
from tests.conftest import run_cli


@pytest.mark.parametrize("overrides, message", [
    ({"batch_size": 0}, "config key 'batch_size' must be an integer >= 1, got 0"),
    ({"holdout_fraction": 1.0}, "config key 'holdout_fraction' must be a number in [0, 1), got 1.0"),
    ({"image_size": 40}, "config key 'image_size' must be an integer >= 32, a multiple of 16, got 40"),
    ({"seeds": "2"}, "config key 'seeds' must be an integer >= 1, got '2' (str)"),
    ({"mom": 1}, "config key 'mom' must be true or false, got 1 (int)"),
    ({"student": "tiny"}, "config key 'student' must be one of same, light, got 'tiny'"),
    ({"lr_fianl": 0.1}, "unknown config key 'lr_fianl' (did you mean lr_final?)"),
])
def test_a_bad_value_or_key_is_one_line_naming_the_key_and_what_it_takes(overrides, message):
    for build in (lambda: TrainConfig(**overrides), lambda: TrainConfig().merged(overrides)):
        with pytest.raises(CdoError) as e:
            build()
        assert str(e.value) == message


@pytest.mark.parametrize("args, message", [
    (["--image-size", "100"], "Error: config key 'image_size' must be an integer >= 32, a multiple of 16, got 100"),
    (["--config", "BAD"], "Error: config key 'gamma' must be a number >= 0, got 'strong' (str)"),
    (["--config", "UNKNOWN"], "Error: unknown config key 'batchsize' (did you mean batch_size, bank_size?)"),
])
def test_cdo_train_schema_errors_are_one_line_with_a_non_zero_exit(tmp_path, args, message):
    (tmp_path / "bad.yaml").write_text("gamma: strong\n")
    (tmp_path / "unknown.yaml").write_text("batchsize: 4\n")
    args = [str(tmp_path / "bad.yaml") if a == "BAD" else str(tmp_path / "unknown.yaml") if a == "UNKNOWN" else a
            for a in args]
    r = run_cli("cdo-train", "--data-root", tmp_path, *args, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip() == message and not r.stdout


def test_cli_choices_and_defaults_come_from_the_schema():
    params = {p.name: p for p in _cli.params}
    for name in ("student", "head", "dataset"):
        assert tuple(params[name].type.choices) == typing.get_args(TrainConfig.model_fields[name].annotation)
    assert tuple(params["student"].type.choices) == STUDENTS
    assert all(params[name].default is None for name in TrainConfig.model_fields if name in params)  # presets win
    text = " ".join(CliRunner().invoke(_cli, ["--help"], terminal_width=400).output.split())
    for flag, default in (("--batch-size", 8), ("--eval-every", 250), ("--head", "cdo"), ("--MOM", "on")):
        description = TrainConfig.model_fields[flag.lstrip("-").lower().replace("-", "_")].description
        assert any(f"{description} [default: {default}{end}" in text for end in "];"), flag  # ; then the range
    assert "Training batch size. [default: 8; >= 1]" in text


def test_resume_overrides_and_the_checkpoint_round_trip():
    assert RESUME_OVERRIDES == ("device", "progress", "save_every")
    cfg = TrainConfig(dataset="folder", data_root="parts", normal_dir="good", abnormal_dir="bad", mask_dir="masks",
                      class_names="line1", epochs=3, knobs=["size"], curriculum="linear", synth={"realistic": 0.5})
    again = TrainConfig().merged(cfg.to_dict())
    assert again.to_dict() == cfg.to_dict() and again.folder("mask_dir") == cfg.folder("mask_dir")
    assert (again.class_names, again.knobs, again.epochs, again.steps) == (("line1",), ("size",), 3, None)


def test_export_options_are_checked_by_their_schema():
    for kw, message in [({"opset": 16}, "--opset must be an integer in [17, 24], got 16"),
                        ({"calib_method": "max"}, "--calib-method must be one of minmax, percentile, entropy or "
                                                  "null, got 'max'"),
                        ({"model_name": "my model"}, "--model-name must be letters, digits, '-' and '_', "
                                                     "got 'my model'"),
                        ({"fp61": True}, "unknown export option 'fp61' (did you mean fp16?)")]:
        with pytest.raises(CdoError) as e:
            ExportOptions.from_kwargs(**kw)
        assert str(e.value) == message
    assert ExportOptions(calib_images=8, int8=True).validate().n_calib == 8
