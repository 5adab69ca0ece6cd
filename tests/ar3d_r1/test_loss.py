"""policy_loss / hi_grpo_loss against hand-computed values for every switch (issue 16, Must-show 1)."""

from __future__ import annotations

import math

import pytest
import torch

from ar3d_r1.loss import ALGORITHMS, hi_grpo_loss, k3_kl, policy_loss

D = torch.float64
ADV = torch.tensor([1.0, -1.0], dtype=D)
MASK = torch.tensor([[1, 1, 1], [1, 0, 1]], dtype=D)  # 5 valid tokens
LOG_RATIO = torch.tensor([[0.5, 0.0, -0.5], [-0.5, 0.1, 0.3]], dtype=D)  # log π_θ − log π_old
E = math.exp


def _logp(seed_shift=0.0):
    base = torch.tensor([[-1.0, -2.0, -0.5], [-0.7, -1.1, -3.0]], dtype=D) + seed_shift
    return base.clone().requires_grad_(True)


def test_on_policy_ratio_is_one_clip_inert_and_gradient_is_plain_policy_gradient():
    for eps in [(0.2, 0.28), (1e-6, 1e-6)]:
        logp = _logp()
        loss, stats = policy_loss(logp, logp.detach(), ADV, MASK, eps_low=eps[0], eps_high=eps[1])
        loss.backward()
        # ρ ≡ 1: loss = −Σ Â·mask / N = −(3·1 − 2·1) / 5
        assert loss.item() == pytest.approx(-1.0 / 5.0, abs=1e-15)
        assert stats["ratio_mean"] == 1.0
        assert stats["clip_low"] == stats["clip_high"] == stats["clip_region"] == 0.0
        assert stats["tokens"] == 5 and stats["sequences"] == 2
        # ∂/∂logp of −ρ·Â with ρ = exp(logp − old) at ρ = 1 is −Â, over N = 5 tokens
        torch.testing.assert_close(logp.grad, -ADV[:, None] * MASK / 5.0, rtol=0, atol=1e-15)


def _off_policy(**kw):
    logp = _logp()
    old = (logp - LOG_RATIO).detach()
    loss, stats = policy_loss(logp, old, ADV, MASK, **kw)
    loss.backward()
    return loss, stats, logp.grad


# ratios [[e^.5, 1, e^-.5], [e^-.5, (masked), e^.3]], clip range [0.8, 1.28]:
#  row 0 (Â=+1): e^.5 = 1.649 clipped high; e^-.5 = .607 below 0.8 but Â > 0 → min keeps ρ (unclipped)
#  row 1 (Â=−1): e^-.5 clipped low (loss max(ρ, .8) = .8); e^.3 = 1.35 > 1.28 but Â < 0 → unclipped
PER_TOKEN = [[-1.28, -1.0, -E(-0.5)], [0.8, 0.0, E(0.3)]]


def test_mu_two_off_policy_clip_fractions_loss_and_gradients_token_mean():
    loss, stats, grad = _off_policy(eps_low=0.2, eps_high=0.28)
    assert loss.item() == pytest.approx(sum(map(sum, PER_TOKEN)) / 5.0, abs=1e-12)
    assert stats["clip_high"] == pytest.approx(1 / 5) and stats["clip_low"] == pytest.approx(1 / 5)
    assert stats["clip_region"] == pytest.approx(2 / 5)
    # clipped tokens carry no gradient; the others −Â·ρ / N
    expected = torch.tensor([[0.0, -1.0, -E(-0.5)], [0.0, 0.0, E(0.3)]], dtype=D) / 5.0
    torch.testing.assert_close(grad, expected, rtol=0, atol=1e-12)


def test_seq_mean_token_mean_aggregation_grpo():
    loss, _, grad = _off_policy(eps_low=0.2, eps_high=0.28, aggregation="seq-mean-token-mean")
    row0 = sum(PER_TOKEN[0]) / 3
    row1 = (PER_TOKEN[1][0] + PER_TOKEN[1][2]) / 2
    assert loss.item() == pytest.approx((row0 + row1) / 2, abs=1e-12)
    expected = torch.tensor([[0.0, -1.0 / 3, -E(-0.5) / 3], [0.0, 0.0, E(0.3) / 2]], dtype=D) / 2
    torch.testing.assert_close(grad, expected, rtol=0, atol=1e-12)


def test_seq_sum_norm_aggregation_dr_grpo_divides_by_constant_budget():
    loss, _, grad = _off_policy(eps_low=0.2, eps_high=0.28, aggregation="seq-sum-norm", max_len=4)
    assert loss.item() == pytest.approx(sum(map(sum, PER_TOKEN)) / (2 * 4), abs=1e-12)
    expected = torch.tensor([[0.0, -1.0, -E(-0.5)], [0.0, 0.0, E(0.3)]], dtype=D) / 8.0
    torch.testing.assert_close(grad, expected, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="max_len"):
        policy_loss(_logp(), _logp().detach(), ADV, MASK, aggregation="seq-sum-norm")


def test_sequence_level_is_gspo():
    # row 0: mean log-ratio (.5 + 0 − .5)/3 = 0 → s = 1; row 1 over its 2 valid tokens: (−.5 + .3)/2 = −.1
    loss, stats, grad = _off_policy(eps_low=3e-4, eps_high=4e-4, level="sequence",
                                    aggregation="seq-mean-token-mean")
    # row 1: Â = −1, s = e^-.1 < 1 − 3e-4 → clipped low: loss max(s, .9997) = .9997, no gradient
    assert loss.item() == pytest.approx((-1.0 + (1 - 3e-4)) / 2, abs=1e-12)
    assert stats["clip_low"] == pytest.approx(0.5) and stats["clip_high"] == 0.0
    # row 0: ∂(−s·Â)/∂logp_t = −Â·s·(1/3) per valid token, then the mean over 2 sequences
    expected = torch.tensor([[-1 / 3] * 3, [0.0, 0.0, 0.0]], dtype=D) / 2
    torch.testing.assert_close(grad, expected, rtol=0, atol=1e-12)


def test_k3_kl_term_values_gradient_and_beta():
    logp = _logp()
    ref = (logp + torch.tensor([[0.1, -0.2, 0.0], [0.3, 5.0, -0.1]], dtype=D)).detach()
    k3 = lambda d: E(d) - d - 1  # noqa: E731
    kl_tok = [[k3(0.1), k3(-0.2), 0.0], [k3(0.3), k3(5.0), k3(-0.1)]]
    torch.testing.assert_close(k3_kl(logp.detach(), ref), torch.tensor(kl_tok, dtype=D), rtol=0, atol=1e-15)
    loss, stats = policy_loss(logp, logp.detach(), ADV, MASK, ref_logp=ref, beta=0.01)
    valid_kl = kl_tok[0][0] + kl_tok[0][1] + kl_tok[0][2] + kl_tok[1][0] + kl_tok[1][2]  # masked 5.0 left out
    assert stats["kl"] == pytest.approx(valid_kl / 5, abs=1e-15)
    assert loss.item() == pytest.approx((-1.0 + 0.01 * valid_kl) / 5, abs=1e-14)
    loss.backward()
    # ∂k3/∂logp = 1 − exp(ref − logp)
    dk3 = torch.tensor([[1 - E(0.1), 1 - E(-0.2), 0.0], [1 - E(0.3), 0.0, 1 - E(-0.1)]], dtype=D)
    torch.testing.assert_close(logp.grad, (-ADV[:, None] * MASK + 0.01 * dk3 * MASK) / 5, rtol=0, atol=1e-14)
    # β = 0 with a reference: KL logged, not optimised
    loss0, stats0 = policy_loss(logp, logp.detach(), ADV, MASK, ref_logp=ref, beta=0.0)
    assert loss0.item() == pytest.approx(-0.2) and stats0["kl"] == pytest.approx(stats["kl"])
    with pytest.raises(ValueError, match="ref_logp"):
        policy_loss(logp, logp.detach(), ADV, MASK, beta=0.01)


def test_hi_grpo_total_is_sum_of_step_losses_with_own_advantages():
    logp1, logp2 = _logp(), _logp(-1.0)[:, :2].detach().requires_grad_(True)
    step1 = {"logp": logp1, "old_logp": logp1.detach(), "advantages": ADV, "mask": MASK}
    adv2 = torch.tensor([-2.0, 0.5], dtype=D)
    step2 = {"logp": logp2, "old_logp": logp2.detach(), "advantages": adv2, "mask": torch.ones(2, 2, dtype=D)}
    total, stats = hi_grpo_loss(step1, step2, eps_low=0.2, eps_high=0.28, beta=0.0)
    # L1 = −(3 − 2)/5, L2 = −(2·(−2) + 2·0.5)/4
    assert total.item() == pytest.approx(-0.2 + 0.75, abs=1e-15)
    assert stats["step1/loss"] == pytest.approx(-0.2) and stats["step2/loss"] == pytest.approx(0.75)
    assert stats["step1/tokens"] == 5 and stats["step2/tokens"] == 4
    total.backward()
    torch.testing.assert_close(logp2.grad, -adv2[:, None].expand(2, 2) / 4, rtol=0, atol=1e-15)


def test_all_masked_batch_gives_zero_not_nan_and_bad_shapes_raise():
    logp = _logp()
    loss, stats = policy_loss(logp, logp.detach(), ADV, torch.zeros_like(MASK))
    assert loss.item() == 0.0 and stats["tokens"] == 0
    loss.backward()  # still connected to the graph
    with pytest.raises(ValueError, match="advantages"):
        policy_loss(logp, logp.detach(), ADV[:1], MASK)
    with pytest.raises(ValueError, match="old_logp"):
        policy_loss(logp, logp.detach()[:, :2], ADV, MASK)
    with pytest.raises(ValueError, match="level"):
        policy_loss(logp, logp.detach(), ADV, MASK, level="segment")


def test_algorithm_presets_name_each_method_switches():
    assert ALGORITHMS["dapo"].aggregation == "token-mean" and ALGORITHMS["dapo"].dynamic_sampling == "refill"
    assert ALGORITHMS["dr-grpo"].std == "none" and ALGORITHMS["dr-grpo"].aggregation == "seq-sum-norm"
    assert ALGORITHMS["gspo"].level == "sequence"
    hi = ALGORITHMS["hi-grpo"]
    assert (hi.eps_low, hi.eps_high, hi.beta, hi.aggregation) == (0.2, 0.28, 0.01, "token-mean")
