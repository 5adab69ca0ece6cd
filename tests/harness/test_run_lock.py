"""Must show 3: one run per ``--out``. A second ``evaluate`` on a folder in use exits 2 naming the PID
that holds it, and the first run's results equal those of an undisturbed run."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from evaluate_support import FAST, assert_same_run, evaluate_cmd, run_cli, write_adapters


@pytest.mark.slow
def test_second_run_on_the_same_out_is_refused_and_the_first_is_undisturbed(tmp_path: Path) -> None:
    adapters = write_adapters(tmp_path)
    cache = tmp_path / "cache"  # shared: the undisturbed run reuses the renders
    args = ["--model", f"{adapters}:SlowLogged", "--benchmark", "demo", "--limit", "3", "--no-report",
            "--cache-dir", str(cache), *FAST]
    out = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ADAPTER_LOG": str(tmp_path / "log"), "SLOW_DELAY": "3"}
    first = subprocess.Popen(evaluate_cmd(out, *args), env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "log").is_file() and time.monotonic() < deadline:  # generating, lock held
        assert first.poll() is None, first.communicate()[1][-3000:]
        time.sleep(0.2)
    for extra in ([], ["--resume"], ["--overwrite"]):
        second = run_cli(evaluate_cmd(out, *args, *extra), env={"ADAPTER_LOG": str(tmp_path / "log2")})
        assert second.returncode == 2, second.stderr[-3000:]
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and f"PID {first.pid}" in lines[0], second.stderr
        assert "Traceback" not in second.stderr
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-3000:]
    assert not (tmp_path / "log2").exists()  # the refused runs generated nothing

    alone = tmp_path / "alone"
    proc = run_cli(evaluate_cmd(alone, *args), env={"ADAPTER_LOG": str(tmp_path / "log3")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_run(out, alone)
