"""Fixtures of the at-scale tests: stand-ins built once, and the one-process reference run they compare
against (``scale_run.py`` with ``save_steps`` 1, so the same run serves the resume test)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SCRIPT = HERE / "scale_run.py"
#: One generation = 1 prompt × G 8 = 8 rows; over 2 processes each holds 4, so the group spans both.
RUN_FLAGS = ["--num_generations", "8", "--max_steps", "4", "--save_steps", "1"]


def run_env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def scale_cmd(stand_ins: Path, out: Path, *flags: str) -> list[str]:
    return [sys.executable, str(SCRIPT), "--stand_ins", str(stand_ins), "--output_dir", str(out), *RUN_FLAGS,
            *flags]


@pytest.fixture(scope="session")
def stand_ins(tmp_path_factory) -> Path:
    from scale_run import build_stand_ins

    return build_stand_ins(tmp_path_factory.mktemp("scale-stand-ins"))


@pytest.fixture(scope="session")
def reference_run(stand_ins, tmp_path_factory) -> Path:
    """One process, per-device batch 2 × 4 accumulation steps = the global batch of 8."""
    out = tmp_path_factory.mktemp("scale-reference") / "run"
    cmd = scale_cmd(stand_ins, out, "--per_device_train_batch_size", "2",
                    "--gradient_accumulation_steps", "4")
    done = subprocess.run(cmd, env=run_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out
