"""Configs: the paper preset's numbers, YAML and CLI-flag round trips, batch arithmetic."""

from __future__ import annotations

import dataclasses

import pytest

from ar3d_r1.config import ConfigError, HiGRPOConfig, SFTConfig, load_config, parse_args, preset, save_config


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
    with pytest.raises(ValueError, match="num_generations must be an integer >= 2, got 1: advantages"):
        HiGRPOConfig(num_generations=1)
    g = preset("paper").with_algorithm("dr-grpo")
    assert (g.aggregation, g.scale_rewards, g.beta) == ("seq-sum-norm", "none", 0.0)
    assert g.dynamic_sampling == "off"
    assert not preset("paper").off_policy()
    assert dataclasses.replace(preset("paper"), num_iterations=2).off_policy()


def test_the_algorithm_flag_sets_that_methods_switches_and_other_flags_override_them():
    base = preset("tiny-cpu")
    dapo = parse_args(HiGRPOConfig, ["--algorithm", "dapo"], base)
    assert (dapo.dynamic_sampling, dapo.beta, dapo.epsilon_high, dapo.aggregation) == ("refill", 0.0, 0.28,
                                                                                       "token-mean")
    assert dapo.learning_rate == base.learning_rate  # everything else stays the preset's
    flags = ["--beta", "0.02", "--algorithm", "dapo", "--max_refill_rounds", "5"]
    mixed = parse_args(HiGRPOConfig, flags, base)
    assert (mixed.beta, mixed.dynamic_sampling, mixed.max_refill_rounds) == (0.02, "refill", 5)
    assert parse_args(HiGRPOConfig, [], base) == base


def test_the_authors_switches_are_validated():
    with pytest.raises(ValueError, match="joint.*shared"):
        HiGRPOConfig(loss_segments="joint")
    with pytest.raises(ValueError, match="mesh_mask"):
        HiGRPOConfig(mesh_mask="ones")
    with pytest.raises(ValueError, match="kl_log_ratio_clamp"):
        HiGRPOConfig(kl_log_ratio_clamp=-1.0)
    c = HiGRPOConfig(advantage_mode="shared", loss_segments="joint", loss_normaliser="micro-batch",
                     mesh_mask="all", clip_ratio=False)
    assert c.loss_segments == "joint"


def test_3dgen_r1_preset_and_its_switches():
    from ar3d_r1.config import HiGRPOConfig

    cfg = preset("3dgen-r1", "train")
    assert (cfg.learning_rate, cfg.beta, cfg.num_generations, cfg.temperature, cfg.max_steps) == (
        1e-6, 0.01, 8, 1.0, 900)
    assert (cfg.save_steps, cfg.gradient_accumulation_steps, cfg.per_device_train_batch_size) == (200, 2, 8)
    assert cfg.prompts_per_step(7) == 14 and cfg.mixed_precision == "bf16" and "lm_head" in cfg.frozen_modules
    assert preset("3dgen-r1", "sft") == preset("paper", "sft")
    with pytest.raises(ValueError, match="two_step must be true with rollout_style 'reasoning-then-mesh'"):
        HiGRPOConfig(rollout_style="reasoning-then-mesh", two_step=False)
    for field, bad in (("rollout_style", "three-step"), ("mesh_pad", "zeros"), ("reward_rig", "eval24"),
                       ("malformed_reward", "half")):
        with pytest.raises(ValueError, match=f"{field} must be one of"):
            HiGRPOConfig(**{field: bad})


@pytest.mark.parametrize("cls", [HiGRPOConfig, SFTConfig])
def test_every_numeric_field_has_a_range(cls):
    from ar3d_r1.config_ranges import RANGES, _type_name

    numeric = {f.name for f in dataclasses.fields(cls) if _type_name(f) in ("int", "float")}
    assert numeric - set(RANGES) == set()


@pytest.mark.parametrize(("field", "value", "message"), [
    ("learning_rate", float("inf"), "learning_rate must be a finite number >= 0, got inf"),
    ("beta", float("nan"), "beta must be a finite number >= 0, got nan"),
    ("per_device_train_batch_size", 0, "per_device_train_batch_size must be an integer >= 1, got 0"),
    ("gradient_accumulation_steps", 0, "gradient_accumulation_steps must be an integer >= 1, got 0"),
    ("render_size", 0, "render_size must be an integer >= 8, got 0"),
    ("epsilon_low", -0.1, "epsilon_low must be a finite number in [0, 1], got -0.1"),
    ("epsilon_high", -0.1, "epsilon_high must be a finite number >= 0, got -0.1"),
    ("save_steps", -1, "save_steps must be an integer >= 0, got -1"),
    ("max_steps", 0, "max_steps must be an integer >= 1, got 0"),
    ("top_p", 0.0, "top_p must be a finite number in (0, 1], got 0.0"),
    ("temperature", 0.0, "temperature must be a finite number > 0, got 0.0"),
    ("max_grad_norm", float("-inf"), "max_grad_norm must be a finite number > 0, got -inf"),
    ("seed", -3, "seed must be an integer >= 0, got -3"),
    ("max_steps", 2.5, "max_steps must be an integer, got 2.5"),
    ("two_step", "yes", "two_step must be true or false, got 'yes'"),
    ("output_dir", " ", "output_dir must not be empty"),
])
def test_every_value_is_checked_when_the_config_is_made(field, value, message):
    with pytest.raises(ValueError) as info:
        dataclasses.replace(preset("tiny-cpu"), **{field: value})
    assert str(info.value) == message


def test_a_yaml_float_without_a_dot_is_a_number(tmp_path):
    (tmp_path / "c.yaml").write_text("learning_rate: 1e-6\n")  # YAML 1.1 reads this as a string
    assert load_config(tmp_path / "c.yaml").learning_rate == 1e-6
    (tmp_path / "d.yaml").write_text("learning_rate: fast\n")
    with pytest.raises(ConfigError, match="d.yaml: learning_rate must be a number, got 'fast'"):
        load_config(tmp_path / "d.yaml")


def test_a_config_file_lays_its_keys_over_the_base(tmp_path):
    (tmp_path / "c.yaml").write_text("kind: train\nlearning_rate: 0.5\n")
    c = load_config(tmp_path / "c.yaml", base=preset("tiny-cpu"))
    assert c == dataclasses.replace(preset("tiny-cpu"), learning_rate=0.5)
    with pytest.raises(ConfigError, match="a HiGRPOConfig file"):
        load_config(tmp_path / "c.yaml", base=preset("tiny-cpu", "sft"))
