"""Fitting the VQVAE on procedural shapes (Must show 5, short version) and the ``ar3d-r1 vqvae fit`` CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ar3d_r1.policy.fit import FitConfig, codebook_usage, fit_vqvae  # noqa: E402
from ar3d_r1.policy.vqvae import load_vqvae  # noqa: E402

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_codebook_usage_matches_a_hand_count():
    ids = torch.tensor([[0, 0, 1, 3]])
    used, ppl = codebook_usage(ids, 4)
    p = np.array([0.5, 0.25, 0.25])
    assert used == 0.75
    assert ppl == pytest.approx(np.exp(-(p * np.log(p)).sum()))


def test_short_fit_learns_and_saves_the_authors_layout(tmp_path):
    """40 steps of the tiny-cpu set-up: the loss falls, every step is logged, held-out IoU and code use are
    reported at the evaluations, and the weights load strictly. (The IoU target itself is the slow test
    below and benchmarks/vqvae_fit_bench.py: this architecture needs ~300 steps to pass 0.85.)"""
    config = FitConfig.preset("tiny-cpu", n_train=64, n_val=8, steps=40, eval_every=20, batch_size=8,
                              threads=1)
    records = []
    result = fit_vqvae(config, tmp_path, progress=records.append)
    assert [r["step"] for r in records] == list(range(1, 41))
    assert {"val_iou", "codes_used", "perplexity"} <= set(records[19]) and "val_iou" not in records[20]
    assert np.mean([r["recon"] for r in records[-5:]]) < np.mean([r["recon"] for r in records[:5]])
    assert 0.0 <= result.val_iou <= 1.0 and result.codes_used * 256 >= 2  # not collapsed onto one code
    loaded = load_vqvae(tmp_path)
    for (k, a), (k2, b) in zip(result.model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)


@pytest.mark.reference
def test_tiny_cpu_fit_reaches_iou_085_on_held_out_shapes_in_ten_minutes(tmp_path):
    # One intra-op thread (the autouse fixture): measured to pass even with the 2 cores oversubscribed
    # (docs/benchmarks.md), where two threads stall on each other.
    result = fit_vqvae(FitConfig.preset("tiny-cpu", max_seconds=600.0, target_iou=0.85, threads=1), tmp_path)
    assert result.val_iou >= 0.85, result.summary()
    assert result.seconds <= 600.0 + 60.0  # the budget plus the last evaluation and saving


def test_cli_fit_smoke_writes_weights_and_log(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "120"}
    proc = subprocess.run(
        [sys.executable, "-c", "from ar3d_r1.cli import main; main()", "vqvae", "fit", "--preset", "smoke",
         "--out", str(tmp_path / "vq"), "--threads", "1"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "held-out IoU" in proc.stderr and "codes used" in proc.stderr
    log = json.loads((tmp_path / "vq" / "fit_log.json").read_text())
    # six smoke steps reconstruct poorly: the command says the weights are not usable for training
    assert log["result"]["val_iou"] < 0.5 and "will get no reward signal; fit longer" in proc.stderr
    assert log["result"]["steps"] == 6 and log["config"]["vqvae"]["resolution"] == 32
    assert load_vqvae(tmp_path / "vq").config.name == "tiny"
    bad = subprocess.run(
        [sys.executable, "-c", "from ar3d_r1.cli import main; main()", "vqvae", "fit", "--preset", "huge",
         "--out", str(tmp_path / "x")], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode != 0 and "unknown fit preset" in bad.stderr


def test_the_thread_count_follows_the_free_cores_and_says_why(monkeypatch):
    from ar3d_r1.policy.fit import pick_threads

    assert pick_threads(3) == (3, "3 torch thread(s) (--threads)")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr(os, "getloadavg", lambda: (4.7, 1.0, 1.0))  # a busy shared machine
    n, why = pick_threads(0)
    assert n == 1 and why.startswith("1 torch thread(s): 2 core(s), 1-minute load 4.7")
    monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 1.0, 1.0))  # an idle one
    assert pick_threads(0)[0] == 2


def test_the_first_step_is_validated_and_then_by_steps_or_seconds(tmp_path):
    records = []
    fit_vqvae(FitConfig.preset("smoke", steps=4, eval_every=1000, threads=1), progress=records.append)
    assert [("val_iou" in r) for r in records] == [True, False, False, True]  # the first and the last
    records.clear()
    fit_vqvae(FitConfig.preset("smoke", steps=3, eval_every=1000, eval_seconds=0.0, threads=1),
              progress=records.append)
    assert all("val_iou" in r for r in records)


@pytest.mark.slow
def test_ctrl_c_saves_the_weights_so_far_for_a_later_run(tmp_path):
    import signal

    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "120"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from ar3d_r1.cli import main; main()", "vqvae", "fit", "--preset", "smoke",
         "--steps", "1000000", "--out", str(tmp_path / "vq"), "--threads", "1"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    seen = []
    for line in proc.stderr:  # the first validation comes at step 1
        seen.append(line)
        if "val IoU" in line:
            break
    proc.send_signal(signal.SIGINT)
    rest = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, "".join(seen) + rest
    assert "interrupted at step" in rest and "the weights so far are saved in" in rest
    log = json.loads((tmp_path / "vq" / "fit_log.json").read_text())
    assert log["result"]["interrupted"] is True and log["result"]["steps"] >= 1
    assert load_vqvae(tmp_path / "vq").config.name == "tiny"


@pytest.mark.parametrize(("field", "value", "message"), [
    ("steps", 0, "steps must be a finite number >= 1, got 0"),
    ("max_seconds", float("inf"), "max_seconds must be a finite number > 0, got inf"),
    ("threads", -1, "threads must be a finite number >= 0, got -1"),
    ("target_iou", 2.0, "target_iou must be a finite number in [0, 1], got 2.0"),
    ("lr", float("nan"), "lr must be a finite number > 0, got nan"),
])
def test_every_fit_number_is_checked(field, value, message):
    from ar3d_r1.policy.fit import FIT_RANGES

    numbers = {f for f, v in FitConfig().to_dict().items()
               if isinstance(v, int | float) and not isinstance(v, bool)}
    assert numbers <= set(FIT_RANGES)
    with pytest.raises(ValueError) as info:
        FitConfig.preset("smoke", **{field: value})
    assert str(info.value) == message
