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
    config = FitConfig.preset("tiny-cpu", n_train=64, n_val=8, steps=40, eval_every=20, batch_size=8)
    records = []
    result = fit_vqvae(config, tmp_path, progress=records.append)
    assert [r["step"] for r in records] == list(range(1, 41))
    assert {"val_iou", "codes_used", "perplexity"} <= set(records[19]) and "val_iou" not in records[20]
    assert np.mean([r["recon"] for r in records[-5:]]) < np.mean([r["recon"] for r in records[:5]])
    assert 0.0 <= result.val_iou <= 1.0 and result.codes_used * 256 >= 2  # not collapsed onto one code
    loaded = load_vqvae(tmp_path)
    for (k, a), (k2, b) in zip(result.model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)


@pytest.mark.slow
def test_tiny_cpu_fit_reaches_iou_085_on_held_out_shapes_in_ten_minutes(tmp_path):
    # One intra-op thread (the autouse fixture): measured to pass even with the 2 cores oversubscribed
    # (docs/benchmarks.md), where two threads stall on each other.
    result = fit_vqvae(FitConfig.preset("tiny-cpu", max_seconds=600.0, target_iou=0.85), tmp_path)
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
    assert log["result"]["steps"] == 6 and log["config"]["vqvae"]["resolution"] == 32
    assert load_vqvae(tmp_path / "vq").config.name == "tiny"
    bad = subprocess.run(
        [sys.executable, "-c", "from ar3d_r1.cli import main; main()", "vqvae", "fit", "--preset", "huge",
         "--out", str(tmp_path / "x")], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode != 0 and "unknown fit preset" in bad.stderr
