"""The ``cmd:`` adapter: a program run by another interpreter, in a stdlib-only virtualenv, through the
contract of docs/evaluate.md (requests file, out dir, one call per batch, failures with stderr)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from cmd_support import stdlib_venv, write_program

from mme3dr.harness.adapter_process import AdapterProcess
from mme3dr.harness.generation import generate_batch
from mme3dr.models.command import CommandModel
from mme3dr.models.protocol import GenerationRequest
from mme3dr.models.registry import ModelSpecError, load_model


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory) -> Path:
    return stdlib_venv(tmp_path_factory.mktemp("stdlib-venv") / "venv")


@pytest.fixture
def program(tmp_path) -> Path:
    return write_program(tmp_path)


def _requests(tmp_path: Path, n: int) -> list[GenerationRequest]:
    out = []
    for i in range(n):
        d = tmp_path / "run" / "work" / f"demo-{i:03d}__0"
        d.mkdir(parents=True)
        out.append(GenerationRequest(f"demo-{i:03d}", f"a red ball number {i}", 1000 + i, 0, d))
    return out


def _model(venv_python, program, mode="ok", **kw) -> CommandModel:
    return CommandModel(f"{venv_python} {program} --mode {mode}", **kw)


def test_one_call_per_batch_with_the_documented_requests_and_logs(tmp_path, venv_python, program,
                                                                  monkeypatch):
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("CMD_CALLS", str(calls))
    loaded = load_model(f"cmd:{venv_python} {program} --mode zup", {"batch_size": "2", "name": "fake"})
    model = loaded.model
    assert loaded.kind == "command" and model.max_batch_size == 2 and model.info.name == "fake"
    assert loaded.file_sha256 is not None  # the script the command runs is named by its content
    reqs = _requests(tmp_path, 3)
    outcomes = generate_batch(model, reqs[:2]) + generate_batch(model, reqs[2:])
    assert [o.failure for o in outcomes] == [None, None, None]
    assert [o.asset.up_axis for o in outcomes] == ["z"] * 3
    assert [o.asset.seconds for o in outcomes] == [0.25] * 3
    assert [json.loads(line) for line in calls.read_text().splitlines()] == [["demo-000_0", "demo-001_0"],
                                                                            ["demo-002_0"]]
    batch = tmp_path / "run" / "work" / "cmd-batches" / "00000"
    lines = [json.loads(line) for line in (batch / "requests.jsonl").read_text().splitlines()]
    assert lines[1] == {"id": "demo-001_0", "prompt": "a red ball number 1", "seed": 1001,
                        "case_id": "demo-001", "sample_index": 0}
    # The program ran in the venv's interpreter, and its stdout is kept per batch.
    assert f"prefix {venv_python.parent.parent}" in (batch / "stdout.txt").read_text()
    assert json.loads((batch / "report.json").read_text())["status"] == 0


def test_non_zero_exit_fails_the_batch_with_the_last_stderr_lines(tmp_path, venv_python, program):
    outcomes = generate_batch(_model(venv_python, program, "fail"), _requests(tmp_path, 2))
    assert [o.failure for o in outcomes] == ["adapter_error"] * 2
    detail = outcomes[0].detail
    assert "exited with status 3" in detail and "CUDA out of memory" in detail and "loading weights" in detail


def test_half_the_files_missing_fails_only_those(tmp_path, venv_python, program):
    outcomes = generate_batch(_model(venv_python, program, "half"), _requests(tmp_path, 4))
    assert [o.failure for o in outcomes] == [None, "missing_output", None, "missing_output"]
    assert "wrote no demo-001_0.<ext>" in outcomes[1].detail


def test_files_outside_out_dir_are_ignored_and_reported(tmp_path, venv_python, program):
    outcomes = generate_batch(_model(venv_python, program, "outside"), _requests(tmp_path, 2))
    assert [o.failure for o in outcomes] == [None, "missing_output"]
    assert "outside --out-dir: demo-001_0.obj" in outcomes[1].detail
    report = json.loads((tmp_path / "run/work/cmd-batches/00000/report.json").read_text())
    assert report["ignored_outside_out_dir"] == ["demo-001_0.obj"] and report["missing"] == ["demo-001_0"]


def test_symlinks_leaving_out_dir_are_refused(tmp_path, venv_python, program):
    outcomes = generate_batch(_model(venv_python, program, "symlink"), _requests(tmp_path, 2))
    assert [o.failure for o in outcomes] == [None, "asset_refused"]
    assert "symlink" in outcomes[1].detail


def test_a_hang_past_timeout_kills_the_program_tree_and_reports_its_stderr(tmp_path, venv_python, program,
                                                                           monkeypatch):
    """Through the harness's adapter process: the adapter, told --timeout, stops the program itself
    (and the program's own child) and the failure carries the program's stderr, not a bare timeout."""
    pid_file = tmp_path / "hang.pid"
    monkeypatch.setenv("HANG_PID", str(pid_file))
    with AdapterProcess(f"cmd:{venv_python} {program} --mode hang") as proc:
        t0 = time.monotonic()
        outcomes = proc.generate(_requests(tmp_path, 2), timeout=1.0)
        elapsed = time.monotonic() - t0
    assert [o.failure for o in outcomes] == ["adapter_error"] * 2
    assert "ran past --timeout (2 s for this batch)" in outcomes[0].detail
    assert "sampling step 1/64" in outcomes[0].detail
    assert elapsed < 5.0
    child = int(pid_file.read_text())
    for _ in range(50):
        if not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]:
            break
        time.sleep(0.1)
    else:
        os.kill(child, 9)
        pytest.fail("the program's child survived the timeout")


def test_bad_specs_and_arguments_are_one_line_errors(tmp_path, venv_python, program):
    with pytest.raises(ModelSpecError, match="needs a command line"):
        load_model("cmd:")
    with pytest.raises(ModelSpecError, match="needs a command line"):
        load_model("cmd")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_model("cmd:/no/such/program --x")
    with pytest.raises(ValueError, match="batch_size"):
        _model(venv_python, program, batch_size="zero")
    with pytest.raises(ValueError, match="up_axis"):
        _model(venv_python, program, up_axis="x")


@pytest.mark.parametrize("side, says", [
    ('{"up_axis": "z", "up_axis": "y"}', "key 'up_axis' appears more than once"),
    ('{"seconds": -3}', "seconds must be a finite number >= 0, got -3"),
    ('{"seconds": 1e999}', "seconds must be a finite number >= 0, got inf"),
    ('{"seconds": NaN}', "seconds must be a finite number >= 0, got nan"),
    ('{"up_axis": "-x"}', "up_axis must be 'y' or 'z', got '-x'"),
    ('[1, 2]', "not a JSON object"),
])
def test_a_bad_side_json_refuses_its_asset_and_says_why(tmp_path, side, says):
    from mme3dr.models.command import _apply_side_json
    from mme3dr.models.protocol import Asset

    (tmp_path / "c1.json").write_text(side)
    got = _apply_side_json(Asset(path=tmp_path / "c1.obj"), tmp_path / "c1.json")
    assert got.meta["refused"] == f"c1.json is not valid: {says}"
    (tmp_path / "c1.json").write_text('{"up_axis": "z", "seconds": 2.5}')
    good = _apply_side_json(Asset(path=tmp_path / "c1.obj"), tmp_path / "c1.json")
    assert (good.up_axis, good.seconds, good.meta) == ("z", 2.5, {})


def test_an_asset_with_an_unknown_up_axis_is_refused_where_it_is_made(tmp_path):
    from mme3dr.models.protocol import Asset

    with pytest.raises(ValueError, match=r"Asset.up_axis must be one of 'y', 'z', got '-x'"):
        Asset(path=tmp_path / "a.glb", up_axis="-x")
