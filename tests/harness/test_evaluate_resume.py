"""Resume loses nothing (Must show 3): SIGKILL mid-generation and mid-rendering, then --resume.

The run is killed twice (once while the adapter is generating, once while assets are rendering) and
then completed with ``--resume``. Finished samples must not be generated again (the adapter logs every
call), finished renders must come from the cache (the run's counters), and the final results must equal
an uninterrupted run's byte for byte once the volatile keys are removed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from evaluate_support import FAST, assert_same_run, evaluate_cmd, run_cli, write_adapters

pytestmark = pytest.mark.slow


def _kill_when(cmd: list[str], env: dict, ready, timeout: float = 400) -> None:
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert proc.poll() is None, "the run finished before it could be killed; slow it down"
            assert time.monotonic() < deadline, "the run never reached the kill point"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path: Path):
    adapters = write_adapters(tmp_path)
    log = tmp_path / "calls.log"
    args = ["--model", f"{adapters}:SlowLogged", "--benchmark", "demo", "--limit", "6", *FAST]
    run = tmp_path / "run"
    records = run / "state" / "generated"
    renders = run / "cache" / "renders"

    # 1. killed while generating (each request sleeps 1 s)
    _kill_when(evaluate_cmd(run, *args), {"ADAPTER_LOG": str(log), "SLOW_DELAY": "1"},
               lambda: len(list(records.glob("*.json"))) >= 3)
    done_at_kill = {p.name.split("__")[0] for p in records.glob("*.json")}
    assert 3 <= len(done_at_kill) < 6 and not (run / "results.json").exists()

    # 2. resumed, then killed again while rendering
    _kill_when(evaluate_cmd(run, *args, "--resume"), {"ADAPTER_LOG": str(log), "SLOW_DELAY": "0"},
               lambda: len(list(renders.glob("*/*/render.json"))) >= 4)
    rendered_at_kill = len(list(renders.glob("*/*/render.json")))

    # 3. resumed to the end
    proc = run_cli(evaluate_cmd(run, *args, "--resume"), env={"ADAPTER_LOG": str(log), "SLOW_DELAY": "0"})
    assert proc.returncode == 0, proc.stderr[-3000:]

    calls = log.read_text().split()
    for case in done_at_kill:
        assert calls.count(case) == 1, f"{case} was generated again after the kill"
    # Only a request in flight at the first kill may have been generated twice.
    assert sorted(set(calls)) == [f"demo-00{i}" for i in range(6)] and len(calls) <= 7
    counters = json.loads((run / "results.json").read_text())["execution"]["shards"][0]["counters"]
    assert counters["generated"] == 0 and counters["generation_skipped"] == 6
    assert counters["renders_cached"] >= rendered_at_kill
    assert counters["renders_done"] == 12 - counters["renders_cached"]

    # 4. the same run, uninterrupted
    base = tmp_path / "base"
    base_env = {"ADAPTER_LOG": str(tmp_path / "base.log"), "SLOW_DELAY": "0"}
    proc = run_cli(evaluate_cmd(base, *args), env=base_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_run(run, base)
    assert json.loads((run / "results.json").read_text())["results"]["mme3dr-demo"]["n"] == 6

    # 5. a re-run of a finished run redoes nothing
    proc = run_cli(evaluate_cmd(run, *args, "--resume", "--no-report"),
                   env={"ADAPTER_LOG": str(log), "SLOW_DELAY": "0"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    counters = json.loads((run / "results.json").read_text())["execution"]["shards"][0]["counters"]
    assert counters == {"generated": 0, "generation_skipped": 6, "renders_done": 0, "renders_cached": 12,
                        "features_computed": 0, "features_cached": 12}
    assert_same_run(run, base)


def test_resume_refuses_a_different_configuration(tmp_path: Path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"fingerprint": "0" * 64, "config": {"model": "other"}}))
    proc = run_cli(evaluate_cmd(run, "--model", "primitives", "--benchmark", "demo", "--resume", *FAST))
    assert proc.returncode == 2 and "different configuration" in proc.stderr and "--overwrite" in proc.stderr
