"""Unusable input exits 2 with one line that says what to do, never a traceback, and writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mme3dr.cli import app

runner = CliRunner()


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def _bad_outs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    a_file = tmp_path / "a-file"
    a_file.write_text("precious")
    return {"file": (a_file, "is a file, not a folder"),
            "under-a-file": (a_file / "sub", f"{a_file} is a file, so no folder can be made under it"),
            "proc": (Path("/proc/mme3dr-out"), "cannot be used")}


@pytest.mark.parametrize("kind", ["file", "under-a-file", "proc"])
def test_render_refuses_an_unusable_out(tmp_path: Path, kind: str) -> None:
    import trimesh

    trimesh.creation.box().export(tmp_path / "mesh.glb")
    out, why = _bad_outs(tmp_path)[kind]
    result = runner.invoke(app, ["render", str(tmp_path / "mesh.glb"), "--out", str(out)])
    line = _one_line_error(result)
    assert f"--out {out}" in line and why in line
    assert (tmp_path / "a-file").read_text() == "precious"


@pytest.mark.parametrize("kind", ["file", "under-a-file", "proc"])
def test_evaluate_refuses_an_unusable_out(tmp_path: Path, kind: str) -> None:
    out, why = _bad_outs(tmp_path)[kind]
    result = runner.invoke(app, ["evaluate", "--model", "primitives", "--profile", "smoke",
                                 "--out", str(out)])
    line = _one_line_error(result)
    assert f"--out {out}" in line and why in line
    assert (tmp_path / "a-file").read_text() == "precious"


def test_folder_adapter_on_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["evaluate", "--model", "folder:/nonexistent", "--profile", "smoke",
                                 "--out", str(tmp_path / "run")])
    line = _one_line_error(result)
    assert "/nonexistent is not a directory" in line and "--model folder:DIR" in line
    assert not (tmp_path / "run" / "run.json").exists()


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999/v1", "http://[::1:18777/v1", "ftp://h/v1",
                                 "file:///etc/passwd", "http://:8000/v1", "http://127.0.0.1:0/v1"])
def test_an_unusable_judge_url_is_one_line_naming_the_flag(tmp_path: Path, url: str) -> None:
    result = runner.invoke(app, ["judge", str(tmp_path), "--judge", url, "--judge-model", "m"])
    line = _one_line_error(result)
    assert line.startswith("error: --judge ") and repr(url) in line
    result = runner.invoke(app, ["evaluate", "--model", "primitives", "--profile", "smoke", "--out",
                                 str(tmp_path / "run"), "--judge", url, "--judge-model", "m"])
    assert _one_line_error(result).startswith("error: --judge ")
    assert not (tmp_path / "run").exists()  # refused before the evaluation ran


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999/v1", "http://[::1:18777/v1", "file:///etc/passwd"])
def test_an_unusable_judge_url_is_refused_before_the_evaluation_runs(tmp_path, url):
    from mme3dr.errors import UserError
    from mme3dr.harness.config import EvalConfig

    with pytest.raises(UserError, match="^--judge must (be|use)"):
        EvalConfig(model="primitives", out=tmp_path / "run", judge=url, judge_model="m")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_ctrl_c_during_evaluate_says_how_to_go_on(tmp_path):
    """Ctrl-C to the process group (as a terminal sends it): exit 130 and a line naming --resume."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    command = [sys.executable, "-c", "from mme3dr.cli import main; main()", "evaluate", "--model",
               "primitives", "--benchmark", "demo", "--profile", "smoke", "--out", str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.monotonic() + 120
    while not any(out.glob("features/**/*.npz")) and time.monotonic() < deadline:
        time.sleep(0.2)  # the run is rendering and encoding (a full-size demo run takes much longer)
    time.sleep(2)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == (f"interrupted: what finished is kept in {out}; continue with the "
                                            "same command and --resume")
