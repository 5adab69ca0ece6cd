"""Must show 2: ``kill -9`` (or SIGTERM) of ``evaluate --workers 2`` leaves no process of the run alive
within 5 s: not the render workers, not the adapter process, not multiprocessing's resource tracker.

The run's processes are found by a marker in their environment, which every child inherits."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from evaluate_support import FAST, evaluate_cmd, write_adapters
from process_tags import tagged


@pytest.mark.skipif(not Path("/proc/self/environ").is_file(), reason="needs Linux /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)],
                         ids=["SIGKILL", "SIGTERM"])
def test_killing_evaluate_leaves_no_process_alive(tmp_path: Path, sig) -> None:
    adapters = write_adapters(tmp_path)
    tag = uuid.uuid4().hex
    log = tmp_path / "adapter.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MME3DR_TEST_TAG": tag, "ADAPTER_LOG": str(log),
           "SLOW_DELAY": "120"}
    proc = subprocess.Popen(
        evaluate_cmd(tmp_path / "run", "--model", f"{adapters}:SlowLogged", "--benchmark", "demo", "--limit",
                     "2", "--workers", "2", "--no-report", *FAST),
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # evaluate + 2 render workers + the resource tracker + the adapter process, generating.
        deadline = time.monotonic() + 180
        while (len(tagged(tag)) < 5 or not log.is_file()) and time.monotonic() < deadline:
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.2)
        assert len(tagged(tag)) >= 5 and log.is_file(), f"run never got going: {tagged(tag)}"
        os.kill(proc.pid, sig)
        proc.wait(30)
        start = time.monotonic()
        while tagged(tag) and time.monotonic() - start < 5:
            time.sleep(0.1)
        assert tagged(tag) == {}, f"still alive {time.monotonic() - start:.1f} s after the kill"
    finally:
        for pid in tagged(tag):  # never leave strays behind for the next test
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
