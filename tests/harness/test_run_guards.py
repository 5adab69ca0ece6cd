"""What `mme3dr evaluate` refuses before it writes or renders anything, and how a run folder is guarded:
a device this machine lacks, a folder adapter that matches no case, a missing weight, a second process,
another renderer on resume, a start that recorded nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from evaluate_support import FAST, evaluate_cmd, run_cli
from typer.testing import CliRunner

from mme3dr.cli import app
from mme3dr.harness.run_state import RunLock, RunState, RunStateError

runner = CliRunner()


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert lines and lines[0].startswith("error: "), result.output
    return result.output.strip()


def test_cuda_without_a_gpu_is_refused_and_leaves_no_run_json(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    out = tmp_path / "run"
    result = runner.invoke(app, ["evaluate", "--model", "primitives", "--profile", "smoke", "--out", str(out),
                                 "--device", "cuda"])
    message = _one_line_error(result)
    assert len(message.splitlines()) == 1 and "--device cuda" in message and "use --device cpu" in message
    assert not (out / "run.json").exists()  # nothing blocks the same command with --device cpu


def test_folder_adapter_matching_no_case_stops_before_rendering(tmp_path: Path) -> None:
    gen = tmp_path / "generated"
    gen.mkdir()
    for name in ("chair.glb", "rose.obj"):
        (gen / name).write_bytes(b"x")
    out = tmp_path / "run"
    result = runner.invoke(app, ["evaluate", "--model", f"folder:{gen}", "--profile", "smoke", "--limit", "2",
                                 "--out", str(out)])
    message = _one_line_error(result)
    assert len(message.splitlines()) == 1
    assert "has no file for any of the 2 requested cases: it holds chair.glb, rose.obj" in message
    assert ("expected names like demo-000_0.<ext>, demo-000/0.<ext>, demo-000/0/<name>.<ext>, "
            "demo-000.<ext>") in message
    assert not (out / "run.json").exists() and not (out / "cache" / "renders").exists()


def test_missing_weight_is_the_weights_message_without_a_traceback(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MME3DR_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "run"
    result = runner.invoke(app, ["evaluate", "--model", "primitives", "--profile", "paper", "--limit", "1",
                                 "--out", str(out)])
    message = _one_line_error(result)
    assert len(message.splitlines()) == 1, message
    assert message.startswith("error: Weights for") and "To fix: put " in message
    assert "mme3dr weights download" in message  # it names the fix
    assert "Traceback" not in message and "│" not in message  # no rich traceback box either


def test_a_start_that_recorded_nothing_never_blocks_the_next_one(tmp_path: Path) -> None:
    state = RunState(tmp_path / "run")
    state.open({"device": "cuda"}, resume=False)
    assert not state.open({"device": "cpu"}, resume=False)  # another config, nothing lost: fine
    state.put("demo-000", 0, {"seed": 1})
    with pytest.raises(RunStateError, match="different configuration"):
        state.open({"device": "cuda"}, resume=False)


def test_the_run_lock_names_the_pid_that_holds_it(tmp_path: Path) -> None:
    pid = f"in use by another mme3dr evaluate \\(PID {os.getpid()}\\)"
    with RunLock(tmp_path), pytest.raises(RunStateError, match=pid), RunLock(tmp_path):
        pass
    with RunLock(tmp_path):  # released on exit
        pass


def test_resume_on_another_renderer_is_refused_unless_allowed(tmp_path: Path) -> None:
    out = tmp_path / "run"
    # --backend egl: pinned, so that the real renderer cannot change between the three runs.
    args = ["--model", "primitives", "--benchmark", "demo", "--limit", "2", "--no-report", "--backend", "egl",
            *FAST]
    proc = run_cli(evaluate_cmd(out, *args))
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((out / "run.json").read_text())
    mine = doc["renderer"]
    assert set(mine) == {"backend", "gl_renderer"}
    # The run as another machine would have left it.
    doc["renderer"] = {"backend": "egl", "gl_renderer": "NVIDIA H200/PCIe/SSE2 / 4.6.0 NVIDIA 550.54"}
    (out / "run.json").write_text(json.dumps(doc))
    proc = run_cli(evaluate_cmd(out, *args, "--resume"))
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert "backend 'egl' (NVIDIA H200" in line and f"backend {mine['backend']!r}" in line
    assert "--allow-renderer-change" in line
    proc = run_cli(evaluate_cmd(out, *args, "--resume", "--allow-renderer-change"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "run.json").read_text())["renderer"] == mine
