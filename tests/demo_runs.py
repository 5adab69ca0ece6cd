"""Demo runs shared by the compare and audit tests: each made once per pytest session (on disk under the
session's base temp folder, so test folders that both ask for one share it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: Small, fast settings (the evaluate tests' FAST): the smoke encoders at 64 px.
FAST = ("--profile", "smoke", "--render-size", "64")
CLI = [sys.executable, "-c", "from mme3dr.cli import main; main()"]


def run_cli(args: list[str], timeout: float = 900) -> subprocess.CompletedProcess:
    # One BLAS thread: compare's many small eigenproblems slow down a hundredfold when BLAS threads fight
    # over a loaded CI machine's cores.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "120", "OPENBLAS_NUM_THREADS": "1",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=timeout)


def demo_run(tmp_path_factory, name: str, *args: str) -> Path:
    """``mme3dr evaluate --benchmark demo <FAST> <args>`` into ``<basetemp>/demo-runs/<name>`` (once)."""
    root = tmp_path_factory.getbasetemp() / "demo-runs"
    out = root / name
    if not (out / "results.json").is_file():
        proc = run_cli(["evaluate", "--out", str(out), "--benchmark", "demo", *FAST,
                        "--cache-dir", str(root / "cache"), *args])
        (root / f"{name}.log").write_text(proc.stdout + proc.stderr)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return out
