"""Group advantages, dynamic sampling and the Hi-GRPO step-1 target against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from ar3d_r1.advantages import dynamic_sampling, group_advantages, hi_grpo_advantages, zero_spread_groups


def test_group_advantages_unbiased_and_population_match_hand_values():
    r = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    centred = torch.tensor([-1.5, -0.5, 0.5, 1.5], dtype=torch.float64)
    unbiased = math.sqrt(5.0 / 3.0)  # Σ(r - 2.5)² = 5, over n - 1 = 3
    population = math.sqrt(5.0 / 4.0)
    torch.testing.assert_close(group_advantages(r, 4), centred / (unbiased + 1e-4), rtol=0, atol=1e-15)
    torch.testing.assert_close(
        group_advantages(r, 4, std="population"), centred / (population + 1e-4), rtol=0, atol=1e-15
    )
    torch.testing.assert_close(group_advantages(r, 4, std="none"), centred, rtol=0, atol=0)
    torch.testing.assert_close(group_advantages(r, 4, eps=0.0), centred / unbiased, rtol=0, atol=1e-15)


def test_group_advantages_are_per_group_and_constant_groups_get_zero():
    r = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 2.0, 0.0, 2.0], dtype=torch.float64)
    adv = group_advantages(r, 4)
    torch.testing.assert_close(adv[:4], torch.zeros(4, dtype=torch.float64), rtol=0, atol=0)
    s = math.sqrt(4.0 / 3.0)
    expected = torch.tensor([-1.0, 1.0, -1.0, 1.0], dtype=torch.float64) / (s + 1e-4)
    torch.testing.assert_close(adv[4:], expected)


@pytest.mark.parametrize(
    "rewards, group_size, match",
    [(torch.zeros(5), 2, "whole number of groups"), (torch.zeros(2, 2), 2, "1-D"),
     (torch.tensor([0.0, float("nan")]), 2, "NaN")],
)
def test_group_advantages_reject_bad_input(rewards, group_size, match):
    with pytest.raises(ValueError, match=match):
        group_advantages(rewards, group_size)
    with pytest.raises(ValueError, match="std must be"):
        group_advantages(torch.zeros(4), 2, std="sample")


REWARDS = torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 2.0, 2.0, 2.0005, 3.0, 4.0, 5.0])


def test_dynamic_sampling_mask_keeps_rows_of_groups_with_spread():
    keep = dynamic_sampling(REWARDS, 3, mode="mask", tol=1e-3)
    # groups: [1,1,1] constant; [0,1,0] varies; [2,2,2.0005] spread 5e-4 <= tol; [3,4,5] varies
    assert keep.dtype == torch.bool
    assert keep.tolist() == [False] * 3 + [True] * 3 + [False] * 3 + [True] * 3
    assert zero_spread_groups(REWARDS, 3, tol=1e-3).tolist() == [True, False, True, False]
    # with tol 0 the near-constant group counts as varying
    assert dynamic_sampling(REWARDS, 3, mode="mask", tol=0.0).tolist() == [False] * 3 + [True] * 9


def test_dynamic_sampling_refill_returns_rows_of_kept_groups_in_order():
    idx = dynamic_sampling(REWARDS, 3, mode="refill", tol=1e-3)
    assert idx.dtype == torch.int64
    assert idx.tolist() == [3, 4, 5, 9, 10, 11]
    assert dynamic_sampling(torch.ones(6), 3, mode="refill").numel() == 0
    with pytest.raises(ValueError, match="mode must be"):
        dynamic_sampling(REWARDS, 3, mode="drop")


def test_r_low_changes_step1_advantages_exactly_when_lambda_is_nonzero():
    r_high = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    r_low_a = torch.tensor([4.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    r_low_b = torch.tensor([0.0, 1.0, 3.0, 0.5], dtype=torch.float64)
    a1_a, a2_a = hi_grpo_advantages(r_high, r_low_a, 4, lam=0.0)
    a1_b, a2_b = hi_grpo_advantages(r_high, r_low_b, 4, lam=0.0)
    torch.testing.assert_close(a1_a, a1_b, rtol=0, atol=0)  # λ = 0: step 1 ignores R_low
    torch.testing.assert_close(a1_a, group_advantages(r_high, 4), rtol=0, atol=0)
    assert not torch.allclose(a2_a, a2_b)  # step 2 always follows R_low
    a1_l1, _ = hi_grpo_advantages(r_high, r_low_a, 4, lam=1.0)
    # λ = 1: target [5, 2, 3, 4], mean 3.5, Σ(x - 3.5)² = 5
    expected = torch.tensor([1.5, -1.5, -0.5, 0.5], dtype=torch.float64) / (math.sqrt(5.0 / 3.0) + 1e-4)
    torch.testing.assert_close(a1_l1, expected, rtol=0, atol=1e-15)
    assert not torch.allclose(a1_l1, a1_a)
    a1_l1_b, _ = hi_grpo_advantages(r_high, r_low_b, 4, lam=1.0)
    assert not torch.allclose(a1_l1, a1_l1_b)
