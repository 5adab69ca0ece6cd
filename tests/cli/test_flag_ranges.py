"""Every numeric flag of every command is range-checked when parsed: exit 2, the flag named, no
traceback, and nothing written (the command body never runs)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mme3dr.cli import app

runner = CliRunner()

# (command words, flag, bad value); every other argument is valid or a harmless placeholder.
EV = ["evaluate", "--model", "primitives", "--out", "OUT"]
CASES = [
    (EV, "--workers", "0"),
    (EV, "--workers", "-1"),
    (EV, "--render-size", "0"),
    (EV, "--render-size", "100000"),
    (EV, "--num-shards", "0"),
    (EV, "--shard-index", "-1"),
    (EV, "--limit", "0"),
    (EV, "--samples-per-prompt", "0"),
    (EV, "--timeout", "-5"),
    (EV, "--judge-concurrency", "0"),
    (EV, "--judge-timeout", "0"),
    (EV, "--judge-retries", "-1"),
    (["judge", "run", "--judge", "http://x/v1", "--judge-model", "m"], "--judge-concurrency", "0"),
    (["judge", "run", "--judge", "http://x/v1", "--judge-model", "m"], "--judge-timeout", "-1"),
    (["judge", "run", "--judge", "http://x/v1", "--judge-model", "m"], "--judge-retries", "-1"),
    (["render", "mesh.glb", "--out", "OUT"], "--size", "0"),
    (["render", "mesh.glb", "--out", "OUT"], "--workers", "0"),
    (["render", "mesh.glb", "--out", "OUT"], "--max-faces", "0"),
    (["score", "renders", "--reference", "ref", "--prompts", "p.csv", "--out", "OUT"], "--batch-size", "0"),
    (["manifest", "show"], "--limit", "-1"),
    (["data", "convert-blend", "--blend-zip", "x.zip"], "--limit", "-1"),
    (["data", "convert-blend", "--blend-zip", "x.zip"], "--batch", "0"),
    (["submit", "run", "--out", "OUT", "--evaluator", "x", "--relationship", "first-party", "--contact", "c"],
     "--thumbnails", "-1"),
]


@pytest.mark.parametrize(("words", "flag", "value"), CASES, ids=[f"{c[0][0]}{c[1]}={c[2]}" for c in CASES])
def test_out_of_range_numbers_are_refused_at_parse_time(tmp_path: Path, words, flag, value) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, [*(str(out) if w == "OUT" else w for w in words), flag, value])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{flag}'" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_resume_and_overwrite_together_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, ["evaluate", "--model", "primitives", "--out", str(out), "--resume",
                                 "--overwrite"])
    assert result.exit_code == 2
    assert "pass only one of them" in result.output and not out.exists()


def test_unknown_profile_is_one_line_without_stray_quotes(tmp_path: Path) -> None:
    result = runner.invoke(app, ["evaluate", "--model", "primitives", "--out", str(tmp_path / "run"),
                                 "--profile", "nope"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: --profile 'nope' is not one of: paper, smoke, ar3d-r1-script"
    assert not (tmp_path / "run").exists()
