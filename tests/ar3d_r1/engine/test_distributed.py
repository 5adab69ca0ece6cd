"""Data parallelism: the row split, the one-process identities, and the multi-process equivalence run."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from scale_fixtures import run_env, scale_cmd

from ar3d_r1.engine.distributed import gather_rows, global_sums, process_rows


def test_process_rows_are_contiguous_blocks_in_process_order():
    blocks = [process_rows(16, 8, k) for k in range(8)]
    assert [(b.start, b.stop) for b in blocks] == [(2 * k, 2 * k + 2) for k in range(8)]
    # the paper set-up: 16 rows on 8 GPUs, G = 8 -> the first group spans processes 0-3
    assert {k for k in range(8) if set(range(0, 8)) & set(range(16)[blocks[k]])} == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="does not split"):
        process_rows(10, 4, 0)


def test_one_process_collectives_are_identities():
    from accelerate import Accelerator

    acc = Accelerator(cpu=True)
    r = np.array([0.5, np.nan, 2.0])
    out = gather_rows(acc, r)
    np.testing.assert_array_equal(out, r)
    assert out is not r
    assert global_sums(acc, {"b": 2.0, "a": 1.0}) == {"a": 1.0, "b": 2.0}


def _params(path):
    import torch

    return torch.load(path / "params.pt")


@pytest.mark.slow
def test_two_processes_equal_one_process_with_the_same_global_batch(stand_ins, reference_run, tmp_path):
    """Must-show 1: gloo, 2 processes × (2 rows × 2 accumulation steps) vs 1 process × (2 × 4); each group
    of 8 spans both processes. Parameters after 4 steps agree within 1e-6, and training moved them."""
    import socket

    import torch

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "two"
    # accelerate 1.15 starts several CPU processes only through torch.distributed.run (--multi_gpu) or
    # mpirun; on a machine without CUDA the processes then run MULTI_CPU over gloo.
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(port)]
    cmd = scale_cmd(stand_ins, out, "--per_device_train_batch_size", "2",
                    "--gradient_accumulation_steps", "2")
    done = subprocess.run(launch + cmd[1:], env=run_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "MULTI_CPU" in (out / "distributed_type.txt").read_text()
    one, two = _params(reference_run), _params(out)
    initial = _params_initial(stand_ins)
    assert one.keys() == two.keys()
    worst = max(float((one[k] - two[k]).abs().max()) for k in one)
    moved = max(float((one[k] - initial[k]).abs().max()) for k in one)
    assert worst <= 1e-6, worst
    assert moved > 1e-4, moved
    recs1 = [json.loads(x) for x in (reference_run / "metrics.jsonl").read_text().splitlines()]
    recs2 = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs2] == [1, 2, 3, 4]
    for a, b in zip(recs1, recs2, strict=True):  # the logs describe the same global batches
        assert a["reward/total"] == pytest.approx(b["reward/total"], abs=1e-12)
        assert a["step1/tokens"] == b["step1/tokens"]
    assert torch.isfinite(torch.tensor([r["step1/loss"] for r in recs2])).all()


def _params_initial(stand_ins):
    from ar3d_r1.policy.loading import load_policy

    model, _ = load_policy(stand_ins / "policy")
    return {k: v.detach().double() for k, v in model.named_parameters()}
