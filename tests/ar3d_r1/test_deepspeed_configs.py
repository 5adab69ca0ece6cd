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
