"""``mme3dr models`` lists the built-in and installed adapters with their extra, weights, GPU and
whether their libraries are importable."""

from __future__ import annotations

import importlib.util
import json

from typer.testing import CliRunner

from mme3dr.cli import app
from mme3dr.models import listing


def test_models_lists_builtins_and_entry_points_with_their_needs():
    result = CliRunner().invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["model"]: r for r in json.loads(result.output)}
    assert {"primitives", "oracle", "shap-e", "llama-mesh", "folder:DIR", "cmd:PROGRAM ARGS..."} <= set(rows)
    assert rows["shap-e"]["extra"] == "shap-e" and rows["shap-e"]["weights"] == "openai/shap-e"
    assert rows["llama-mesh"]["extra"] == "llama-mesh" and rows["llama-mesh"]["gpu"].startswith("yes")
    assert rows["primitives"]["gpu"] == "no" and rows["primitives"]["source"] == "built-in"
    assert all(r["source"].startswith("installed") for name, r in rows.items()
               if name in ("ar3d-r1", "shapellm-omni"))


def test_an_adapter_whose_libraries_are_missing_says_which_extra_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "diffusers" else real(name, *a))
    rows = {r.model: r for r in listing.list_adapters()}
    assert rows["shap-e"].ready == 'no: pip install "mme3dr[shap-e]" (diffusers missing)'
    assert rows["llama-mesh"].ready == "yes"
    table = CliRunner().invoke(app, ["models"], env={"COLUMNS": "200"}).output
    assert "llama-mesh" in table and "cmd:PROGRAM ARGS..." in table


def test_a_narrow_terminal_gets_a_block_per_adapter_not_a_folded_table():
    out = CliRunner().invoke(app, ["models"], env={"COLUMNS": "80"}).output
    lines = out.splitlines()
    assert "┃" not in out and lines[0] == "adapters for `mme3dr evaluate --model ...`"
    start = lines.index("primitives  (built-in; ready: yes)")
    assert lines[start + 1] == "  The primitives baseline adapter (GLB with vertex colours)."
    assert lines[start + 2] == "  extra: -   weights: -   GPU: no"
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]


def test_piped_output_is_laid_out_for_a_log_not_folded_at_80_columns():
    """In a pipe or a log file rich would assume 80 columns; ``main`` gives it 160 unless COLUMNS is set."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    out = subprocess.run([sys.executable, "-c", "from mme3dr.cli import main; main()", "models"],
                         capture_output=True, text=True, env=env, timeout=120).stdout
    row = next(line for line in out.splitlines() if line.startswith("│ primitives "))
    assert "The primitives baseline adapter" in row and len(row) <= 160
