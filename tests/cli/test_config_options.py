"""`mme3dr evaluate`'s options are EvalConfig's fields (issue 22): one definition, so an option cannot
exist in the command and not in the config; a bad value is the config's one-line user error."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import typer
from typer.testing import CliRunner

from mme3dr.cli import app
from mme3dr.harness.config import JUDGE_PROFILES, PROFILES, EvalConfig

runner = CliRunner()


def _evaluate_params() -> dict[str, object]:
    command = typer.main.get_command(app).commands["evaluate"]
    return {p.name: p for p in command.params}


def test_every_config_field_is_an_option_and_every_option_a_field():
    params = _evaluate_params()
    assert set(params) == {f.name for f in fields(EvalConfig)}
    for f in fields(EvalConfig):
        assert params[f.name].help == f.metadata["help"]  # the help text is the field's


def test_the_choices_are_the_libraries_own():
    from mme3dr.features.profiles import PROFILES as FEATURE_PROFILES
    from mme3dr.judge.client import PROFILES as CLIENT_PROFILES

    assert set(PROFILES) == set(FEATURE_PROFILES)
    assert set(JUDGE_PROFILES) <= set(CLIENT_PROFILES)


def test_a_value_outside_the_choices_is_one_line_naming_the_flag(tmp_path: Path):
    result = runner.invoke(app, ["evaluate", "--model", "primitives", "--out", str(tmp_path / "run"),
                                 "--judge", "http://127.0.0.1:9/v1", "--judge-model", "m",
                                 "--judge-profile", "nope"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: --judge-profile 'nope' is not one of: openai, transformers, vllm"
    assert not (tmp_path / "run").exists()


def test_python_gets_the_same_checks_as_the_command():
    import pytest

    from mme3dr.errors import UserError

    with pytest.raises(UserError, match="--judge and --judge-model go together"):
        EvalConfig(model="primitives", out="x", judge="http://127.0.0.1:9/v1")
    with pytest.raises(UserError, match="--shard-index must be in 0..1"):
        EvalConfig(model="primitives", out="x", num_shards=2, shard_index=2)
    cfg = EvalConfig(model="primitives", out="x", categories=["spatial"], timeout=0,
                     prompt_source="raw-captions-column")
    assert cfg.categories == ("spatial",) and cfg.timeout is None
    assert cfg.prompt_source == "raw_captions_column"
