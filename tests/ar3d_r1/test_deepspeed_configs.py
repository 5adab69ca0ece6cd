"""The paper preset's DeepSpeed configs load through accelerate and agree with the preset's batch."""

from __future__ import annotations

import importlib.util
import json

import pytest

from ar3d_r1.config import preset
from ar3d_r1.deepspeed import config_path

GPUS = 8


@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_config_loads_through_accelerate_plugin(stage):
    from accelerate.utils import DeepSpeedPlugin

    path = config_path(f"zero{stage}.json")
    plugin = DeepSpeedPlugin(hf_ds_config=str(path))
    cfg = preset("paper", "train")
    assert plugin.zero_stage == stage
    assert plugin.hf_ds_config.is_zero3() == (stage == 3)
    ds = plugin.deepspeed_config
    assert ds["train_micro_batch_size_per_gpu"] == cfg.per_device_train_batch_size
    assert ds["gradient_accumulation_steps"] == cfg.gradient_accumulation_steps
    assert plugin.gradient_accumulation_steps == cfg.gradient_accumulation_steps
    assert ds["train_batch_size"] == cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * GPUS
    assert ds["train_batch_size"] == cfg.prompts_per_step(GPUS) * cfg.num_generations  # 2 prompts x G 8
    assert ds["gradient_clipping"] == cfg.max_grad_norm
    assert ds["bf16"]["enabled"] is True
    assert "optimizer" not in ds  # the trainer's AdamW (lr from the preset) is the one DeepSpeed wraps


@pytest.mark.parametrize("stage", [2, 3])
def test_accelerate_launch_config_points_at_the_deepspeed_file(stage):
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType

    launch = load_config_from_file(str(config_path(f"accelerate_zero{stage}.yaml")))
    assert launch.distributed_type == DistributedType.DEEPSPEED
    assert launch.num_processes == GPUS and launch.num_machines == 1
    ds_file = launch.deepspeed_config["deepspeed_config_file"]
    assert ds_file == f"ar3d_r1/deepspeed/zero{stage}.json"
    assert json.loads(config_path(f"zero{stage}.json").read_text())["zero_optimization"]["stage"] == stage


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="deepspeed is not installed")
@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_itself_accepts_the_config(stage):
    """DeepSpeed's own config parser (what ``deepspeed.initialize`` runs). Outside a launched job it sees
    one rank, so ``train_batch_size`` (16 = 1 x 2 x 8 ranks, checked above) is left for it to derive."""
    from deepspeed.runtime.config import DeepSpeedConfig

    raw = json.loads(config_path(f"zero{stage}.json").read_text())
    del raw["train_batch_size"]
    parsed = DeepSpeedConfig(raw)
    assert parsed.zero_optimization_stage == stage
    assert parsed.train_micro_batch_size_per_gpu == 1 and parsed.gradient_accumulation_steps == 2
    assert parsed.train_batch_size == 2  # 1 x 2 x (1 rank here)
    assert parsed.bfloat16_config.enabled and parsed.gradient_clipping == 1.0


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="deepspeed is not installed")
def test_zero2_smoke_run_equals_the_plain_run(stand_ins, reference_run, tmp_path):
    """The repository's zero2.json (fp32 here; batch fields for 1 CPU process × 2 rows × 4 accumulation
    steps) through ``accelerate launch --use_deepspeed``: DeepSpeed's engine, its ZeRO-2 optimizer and
    its accumulation boundaries give the plain run's parameters within 1e-6. (accelerate 1.15 does not
    initialise torch.distributed for DeepSpeed on CPU: with 2 processes each sees a world of 1, so the
    cross-rank part of ZeRO-2 needs GPUs.)"""
    import socket
    import subprocess
    import sys

    import torch
    from scale_fixtures import run_env, scale_cmd

    ds = json.loads(config_path("zero2.json").read_text())
    ds.update(train_batch_size=8, train_micro_batch_size_per_gpu=2, gradient_accumulation_steps=4)
    ds["bf16"]["enabled"] = False  # CPU, and a 1e-6 comparison
    (tmp_path / "zero2.json").write_text(json.dumps(ds))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "zero2"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--use_deepspeed",
              "--deepspeed_config_file", str(tmp_path / "zero2.json"), "--num_processes", "1",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(port)]
    cmd = scale_cmd(stand_ins, out, "--per_device_train_batch_size", "2",
                    "--gradient_accumulation_steps", "4")
    done = subprocess.run(launch + cmd[1:], env=run_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "distributed_type.txt").read_text().split() == ["DistributedType.DEEPSPEED", "1"]
    ref, got = torch.load(reference_run / "params.pt"), torch.load(out / "params.pt")
    worst = max(float((ref[k] - got[k]).abs().max()) for k in ref)
    print(f"zero2 vs plain: max |diff| = {worst:.3g}")
    assert worst <= 1e-6, worst
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [1, 2, 3, 4]
    assert all(r["grad_norm"] is not None and r["grad_norm"] > 0 for r in recs)


def test_3dgen_r1_launch_files_match_the_preset_and_the_authors_layout():
    """7 training processes on GPUs 1-7 (GPU 0 serves UnifiedReward-2.0), ZeRO-3, the preset's batch:
    8 completions (1 prompt x G 8) per micro-step x 2 x 7 = 112 = 14 prompts x 8."""
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DeepSpeedPlugin

    from ar3d_r1.rewards.endpoints import load_endpoints

    launch = load_config_from_file(str(config_path("accelerate_zero3_3dgen_r1.yaml")))
    assert launch.num_processes == 7 and str(launch.gpu_ids) == "1,2,3,4,5,6,7"
    assert launch.deepspeed_config["deepspeed_config_file"] == "ar3d_r1/deepspeed/zero3_3dgen_r1.json"
    plugin = DeepSpeedPlugin(hf_ds_config=str(config_path("zero3_3dgen_r1.json")))
    cfg = preset("3dgen-r1", "train")
    ds = plugin.deepspeed_config
    assert plugin.zero_stage == 3 and ds["bf16"]["enabled"] is True and cfg.mixed_precision == "bf16"
    assert ds["train_micro_batch_size_per_gpu"] == cfg.per_device_train_batch_size == cfg.num_generations
    assert ds["gradient_accumulation_steps"] == cfg.gradient_accumulation_steps == 2
    assert ds["train_batch_size"] == cfg.prompts_per_step(7) * cfg.num_generations == 112
    assert ds["gradient_clipping"] == cfg.max_grad_norm
    from pathlib import Path

    import ar3d_r1.rewards as rewards

    ends = load_endpoints(Path(rewards.__file__).with_name("reward_endpoints_3dgen_r1.yaml"))
    ep = ends["unifiedreward2"]
    assert ep.judge.base_url == "http://127.0.0.1:8090/v1" and ep.judge.concurrency == 8
    assert (ep.decoding.temperature, ep.decoding.max_tokens) == (0.1, 512) and ends.cache_dir is None
