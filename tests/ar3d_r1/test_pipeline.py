"""The CPU reference pipeline through the real ``ar3d-r1`` commands (issue 16, Must-show 3).

- a shortened run of every command (VQVAE fit, SFT, Hi-GRPO, the paper preset's dry run), a few minutes;
- the full ``tiny-cpu`` proof: fit + SFT + train, then an lr = 0 control; the mean total reward of the
  last 10 steps must exceed the first 10's by at least 3 standard errors, and the control's must not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def ar3d_r1(*args: str, timeout: float, rc: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", "from ar3d_r1.cli import main; main()", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    tail = f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert proc.returncode == rc, f"ar3d-r1 {' '.join(args)} exited {proc.returncode}, not {rc}:\n{tail}"
    return proc


@pytest.mark.slow
def test_every_command_runs_shortened(tmp_path):
    vq, sft = str(tmp_path / "vqvae"), str(tmp_path / "sft")
    ar3d_r1("vqvae", "fit", "--preset", "smoke", "--out", vq, "--threads", "1", timeout=300)
    ar3d_r1("sft", "--preset", "tiny-cpu", "--vqvae", vq, "--output_dir", sft, "--max_steps", "10",
            "--hidden_size", "16", "--num_prompts", "2", timeout=300)
    ar3d_r1("train", "--preset", "tiny-cpu", "--vqvae", vq, "--policy", sft, "--output_dir",
            str(tmp_path / "train"), "--max_steps", "2", "--num_prompts", "2", "--constrain", "true",
            timeout=600)
    records = [json.loads(x) for x in (tmp_path / "train" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    assert (tmp_path / "train" / "final" / "model.safetensors").is_file()


@pytest.mark.slow
def test_the_paper_dry_run_takes_the_served_reward_path(tmp_path):
    """``train --preset paper --dry-run`` keeps task vlm: every reward request of both steps reaches the
    stand-in judge that the run serves (and stops), every reply parses, and the step trains on them."""
    import urllib.request

    import yaml

    dry = tmp_path / "dry"
    proc = ar3d_r1("train", "--preset", "paper", "--dry-run", "--output_dir", str(dry), timeout=900)
    records = [json.loads(x) for x in (dry / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2
    for rec in records:
        assert rec["step1/tokens"] > 0 and rec["step2/tokens"] > 0
        for step, per_sample in (("step1", 7), ("step2", 8)):  # 6 per-view + joint requests per sample
            asked = rec[f"requests/{step}/sent"] + rec[f"requests/{step}/cached"]
            assert asked == per_sample * 16 * (1 - rec[f"{step}/malformed"])
            assert rec[f"requests/{step}/sent"] > 0
            assert rec[f"requests/{step}/unparsed"] == 0 and rec[f"requests/{step}/failed"] == 0
        # the stand-in judge's fixed reply, parsed by the real parsers; HPS from the tiny open_clip
        assert rec["reward/step1/geometric_alignment"] == 3.0 and rec["reward/step1/category_match"] == 1.0
        assert rec["reward/step2/part_completeness"] == 0.5 and -1 <= rec["reward/step1/hps"] <= 1
        assert rec["reward/r_high"] == pytest.approx(rec["reward/step1/hps"] + 4.0)
    assert "reward requests" in proc.stderr and "fixed reply" in proc.stderr
    # it says what it is doing before the minutes of work, not only at the end
    for line in ("dry run: building a random tiny policy and VQVAE",
                 "dry run: starting the stand-in reward VLM",
                 "dry run: the stand-in reward VLM answers at http://127.0.0.1:"):
        assert line in proc.stderr, line
    assert (dry / "checkpoint-1").is_dir() and (dry / "reward_curve.png").is_file()
    config = yaml.safe_load((dry / "config.yaml").read_text())
    assert config["task"] == "vlm" and config["prompts_file"].endswith("captions.txt")
    servers = yaml.safe_load(Path(config["reward_servers"]).read_text())
    url = servers["endpoints"]["qwen_vl"]["base_url"]
    with pytest.raises(OSError):  # the dry run stopped the server it started
        urllib.request.urlopen(url + "/health", timeout=5)
    # the same directory again: refused in one line unless resumed; resumed, a finished run does nothing,
    # says so, and keeps the response cache
    again = ar3d_r1("train", "--preset", "paper", "--dry-run", "--output_dir", str(dry), timeout=300, rc=1)
    assert again.stderr.strip().splitlines()[-1] == (
        f"error: {dry} already holds a run (metrics.jsonl); pass --resume true to continue it or "
        "--overwrite_output_dir true to start over")
    cache = dry / "stand-ins" / "rewards" / "reward-replies"
    cached = sorted(cache.rglob("*"))
    assert cached
    resumed = ar3d_r1("train", "--preset", "paper", "--dry-run", "--output_dir", str(dry), "--resume", "true",
                      timeout=900)
    assert "dry run: nothing to do: the run already finished at step 2" in resumed.stderr
    assert sorted(cache.rglob("*")) == cached
    assert len((dry / "metrics.jsonl").read_text().splitlines()) == 2


@pytest.fixture(scope="module")
def tiny_cpu_warm_start(tmp_path_factory) -> tuple[Path, Path]:
    """The tiny-cpu VQVAE fit and SFT policy, made once for both algorithms' proofs (about 9 minutes idle).
    The fit's preset is 1,000 steps on one thread, so this input is the same whatever the machine's load."""
    root = tmp_path_factory.mktemp("tiny-cpu")
    vq, sft = root / "vqvae", root / "sft"
    ar3d_r1("vqvae", "fit", "--preset", "tiny-cpu", "--out", str(vq), timeout=3700)
    ar3d_r1("sft", "--preset", "tiny-cpu", "--vqvae", str(vq), "--output_dir", str(sft), timeout=900)
    return vq, sft


@pytest.mark.reference
# dapo: clip-higher, no KL, dynamic sampling with refill (ar3d_r1.loss.ALGORITHMS)
@pytest.mark.parametrize("algorithm", ["hi-grpo", "dapo"])
def test_reference_run_reward_rises_against_the_lr0_control(tmp_path, tiny_cpu_warm_start, algorithm):
    from ar3d_r1.reference import load_metrics, reward_rise

    vq, sft = tiny_cpu_warm_start
    common = ("--preset", "tiny-cpu", "--vqvae", str(vq), "--policy", str(sft), "--algorithm", algorithm)
    ar3d_r1("train", *common, "--output_dir", str(tmp_path / "train"), timeout=1800)
    ar3d_r1("train", *common, "--output_dir", str(tmp_path / "control"), "--learning_rate", "0", timeout=1800)
    records = load_metrics(tmp_path / "train")
    run = reward_rise(records)
    control = reward_rise(load_metrics(tmp_path / "control"))
    print(f"{algorithm}: run {run}, control {control}")
    assert run["z"] >= 3.0, run
    assert control["z"] < 3.0, control
    if algorithm == "dapo":  # the refill path ran: every step records its rounds and kept groups
        assert all("refill/rounds" in r and r["refill/groups_kept"] >= 0 for r in records)


@pytest.mark.slow
def test_the_3dgen_r1_dry_run_runs_the_authors_recipe_on_a_fresh_checkout(tmp_path):
    """``train --preset 3dgen-r1 --dry-run`` from a directory holding nothing (every input is built under
    --output_dir): both turns train with the shared advantage, every UnifiedReward request (one per
    video6 view) reaches the served stand-in and parses, the prompts go through the authors' JSON format,
    and the summary says what was exercised."""
    import yaml

    dry = tmp_path / "dry"
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", "from ar3d_r1.cli import main; main()", "train", "--preset",
                           "3dgen-r1", "--dry-run", "--output_dir", str(dry)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(x) for x in (dry / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2
    for rec in records:
        assert rec["skipped"] == 0 and rec["step1/tokens"] > 0 and rec["step2/tokens"] > 0
        assert rec["requests/unified/asked"] == 16 * 6 * (1 - rec["step2/malformed"])
        assert rec["requests/unified/failed"] == 0 and rec["requests/unified/unparsed"] == 0
        assert rec["reward/final/unified"] == 9.0 and 0 <= rec["reward/final/hps"] <= 1  # 3 + 3 + 3
        assert rec["reward/r_low"] == pytest.approx(rec["reward/final/hps"] + 9.0)
        assert rec["rewards/raised/hps"] == rec["rewards/raised/unified"] == 0
    config = yaml.safe_load((dry / "config.yaml").read_text())
    assert config["prompts_file"].endswith("sampled_prompt.json") and config["reward_rig"] == "video6"
    started = proc.stderr.index("dry run: starting the stand-in reward VLM")
    assert started < proc.stderr.index("dry run: 2 optimizer")
    summary = proc.stderr[proc.stderr.index("dry run: 2 optimizer steps"):]
    for part in ("rollout 'reasoning-then-mesh'", "192 UnifiedReward requests", "frozen:",
                 "loss: advantage_mode 'shared', loss_segments 'joint', loss_normaliser 'micro-batch', "
                 "mesh_mask 'all', clip_ratio False"):
        assert part in summary, part
    assert (dry / "final" / "model.safetensors").is_file()
