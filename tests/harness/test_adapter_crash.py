"""Must show 5: adapters that call ``os._exit(3)`` or segfault (ctypes) each cost only their own case,
recorded as ``adapter_crashed`` with the exit status or signal; the other cases finish, and ``--resume``
of a run with a deterministic crash completes instead of dying at the same case again."""

from __future__ import annotations

from pathlib import Path

import pytest
from evaluate_support import FAST, evaluate_cmd, run_cli, stable_bytes

from mme3dr.results import load_results, read_samples

CRASHERS = '''
import ctypes, os

from mme3dr.models.primitives import PrimitivesModel
from mme3dr.models.protocol import ModelInfo


class Crashing(PrimitivesModel):
    """demo-001 exits the process with status 3; demo-003 reads address 0 (SIGSEGV)."""

    info = ModelInfo(name="crashing", deterministic=True)
    max_batch_size = 1

    def generate_one(self, request):
        if request.case_id == "demo-001":
            os._exit(3)
        if request.case_id == "demo-003":
            ctypes.string_at(0)
        return super().generate_one(request)
'''


@pytest.mark.slow
def test_exit_and_segfault_cost_only_their_case_and_resume_completes(tmp_path: Path) -> None:
    adapters = tmp_path / "crashers.py"
    adapters.write_text(CRASHERS)
    out = tmp_path / "run"
    cmd = evaluate_cmd(out, "--model", f"{adapters}:Crashing", "--benchmark", "demo", "--limit", "5",
                       "--no-report", *FAST)
    proc = run_cli(cmd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    by_case = {s.case_id: s for s in read_samples(out / "samples.jsonl")}
    assert by_case["demo-001"].failure == "adapter_crashed"
    assert "exit status 3" in by_case["demo-001"].failure_detail
    assert by_case["demo-003"].failure == "adapter_crashed"
    assert "signal SIGSEGV" in by_case["demo-003"].failure_detail
    assert [c for c, s in sorted(by_case.items()) if s.status == "ok"] == ["demo-000", "demo-002", "demo-004"]
    assert load_results(out / "results.json").failures == {"adapter_crashed": 2}

    before = stable_bytes(out)
    proc = run_cli([*cmd, "--resume"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert stable_bytes(out) == before
