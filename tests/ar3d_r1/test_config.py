"""Configs: the paper preset's numbers, YAML and CLI-flag round trips, batch arithmetic."""

from __future__ import annotations

import dataclasses

import pytest

from ar3d_r1.config import HiGRPOConfig, SFTConfig, load_config, parse_args, preset, save_config


def test_paper_preset_holds_the_papers_numbers_and_dapo_clip():
    c = preset("paper")
    assert (c.learning_rate, c.beta, c.num_generations, c.per_device_train_batch_size) == (1e-6, 0.01, 8, 1)
    assert (c.gradient_accumulation_steps, c.max_steps, c.lam) == (2, 1200, 1.0)
    assert (c.epsilon_low, c.epsilon_high) == (0.2, 0.28)  # DAPO's: the paper gives none
    assert (c.temperature, c.top_k, c.top_p) == (0.7, 8192, 0.7)
    assert c.prompts_per_step(8) == 2  # 1 × 2 × 8 GPUs = 16 completions = 2 prompts × G 8
    with pytest.raises(ValueError, match="not a multiple of num_generations"):
        c.prompts_per_step(1)


def test_yaml_and_flags_round_trip(tmp_path):
    base = preset("tiny-cpu")
    c = parse_args(HiGRPOConfig, ["--learning_rate", "0", "--two_step", "false", "--algorithm", "gspo"], base)
    assert c.learning_rate == 0.0 and c.two_step is False and c.algorithm == "gspo"
    assert c.num_generations == base.num_generations  # untouched fields keep the preset's values
    assert load_config(save_config(c, tmp_path / "c.yaml")) == c
    s = preset("tiny-cpu", "sft", max_steps=7)
    assert isinstance(s, SFTConfig) and load_config(save_config(s, tmp_path / "s.yaml")) == s
    (tmp_path / "bad.yaml").write_text("kind: train\nlearning_rat: 1\n")
    with pytest.raises(ValueError, match="learning_rat"):
        load_config(tmp_path / "bad.yaml")


def test_switch_validation_and_algorithm_presets():
    with pytest.raises(ValueError, match="aggregation"):
        HiGRPOConfig(aggregation="mean")
    with pytest.raises(ValueError, match="at least 2"):
        HiGRPOConfig(num_generations=1)
    g = preset("paper").with_algorithm("dr-grpo")
    assert (g.aggregation, g.scale_rewards, g.beta) == ("seq-sum-norm", "none", 0.0)
    assert g.dynamic_sampling == "off"
    assert not preset("paper").off_policy()
    assert dataclasses.replace(preset("paper"), num_iterations=2).off_policy()
