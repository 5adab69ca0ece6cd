"""Steps nothing can poison, at the loss (issue 21, Build 5), and the loss switches of the authors'
released trainer against hand-computed values (Build 1's loss): masked positions holding extreme values
change nothing in any variant; the k3 clamps (verl's values); no clip; the joint token-mean; micro-batches
that add up to the batch loss."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from ar3d_r1.loss import hi_grpo_loss, k3_kl, policy_loss

D = torch.float32
ADV = torch.tensor([1.0, -0.5, 2.0], dtype=D)
MASK = torch.tensor([[1, 1, 1, 0], [1, 0, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
LOGP = torch.tensor([[-1.0, -2.0, -0.5, -0.3], [-0.7, -1.1, -3.0, -0.2], [-0.4, -0.9, -1.5, -2.0]], dtype=D)
SHIFT = torch.tensor([[0.3, -0.1, 0.05, 0.0], [-0.2, 0.4, 0.1, 0.0], [0.15, -0.25, 0.0, 0.0]], dtype=D)
POISON = (-1e30, 80.0, 1e30, float("inf"), float("-inf"), float("nan"))

VARIANTS = list(itertools.product(
    ("token", "sequence"), ("token-mean", "seq-mean-token-mean", "seq-sum-norm"), (0.0, 0.04), (False, True)))


def _loss(logp_values, poison, level, aggregation, beta, off_policy, **kw):
    """loss, stats, grad with every masked position of logp, old and ref set to ``poison``."""
    logp = torch.where(MASK, logp_values, torch.full_like(logp_values, poison)).requires_grad_(True)
    old = torch.where(MASK, LOGP - SHIFT if off_policy else LOGP, torch.full_like(LOGP, poison))
    ref = torch.where(MASK, LOGP + 0.2, torch.full_like(LOGP, -poison if math.isfinite(poison) else poison))
    if not off_policy:
        old = torch.where(MASK, logp.detach(), old)
    loss, stats = policy_loss(logp, old, ADV, MASK, ref_logp=ref if beta else None, beta=beta, level=level,
                              aggregation=aggregation, max_len=4, **kw)
    loss.backward()
    return loss.detach(), stats, logp.grad


@pytest.mark.parametrize("level, aggregation, beta, off_policy", VARIANTS)
def test_a_masked_position_contributes_exactly_nothing_whatever_it_holds(level, aggregation, beta,
                                                                         off_policy):
    clean = _loss(LOGP, 0.0, level, aggregation, beta, off_policy)
    for poison in POISON:
        loss, stats, grad = _loss(LOGP, poison, level, aggregation, beta, off_policy)
        assert torch.isfinite(loss) and loss.item() == clean[0].item(), poison
        assert stats == clean[1], poison
        assert torch.equal(grad, clean[2]), poison  # bit for bit, and exactly 0 at the masked positions
        assert torch.all(grad[~MASK] == 0)


def test_hi_grpo_loss_both_modes_ignore_masked_positions():
    for joint in (False, True):
        outs = []
        for poison in (0.0, -1e30, 80.0):
            segs = []
            for shift in (0.0, -0.3):
                logp = torch.where(MASK, LOGP + shift, torch.full_like(LOGP, poison)).requires_grad_(True)
                old = torch.where(MASK, logp.detach(), torch.full_like(LOGP, poison))
                segs.append({"logp": logp, "old_logp": old, "advantages": ADV, "mask": MASK,
                             "ref_logp": LOGP.detach() + 0.1})
            loss, stats = hi_grpo_loss(*segs, joint=joint, beta=0.01)
            loss.backward()
            outs.append((loss.item(), stats, [s["logp"].grad for s in segs]))
        for loss, stats, grads in outs[1:]:
            assert loss == outs[0][0] and stats == outs[0][1]
            assert all(torch.equal(g, g0) for g, g0 in zip(grads, outs[0][2], strict=True))


def test_k3_overflows_float32_without_the_clamp_and_verls_clamps_keep_it_finite():
    logp = torch.tensor([[-100.0, -1.0]], requires_grad=True)
    ref = torch.tensor([[-1.0, -1.0]])  # ref − logp = 99 at a valid token: exp(99) > float32's max
    loss, _ = policy_loss(logp, logp.detach(), torch.tensor([1.0]), torch.ones(1, 2), ref_logp=ref, beta=0.01)
    loss.backward()
    assert not torch.isfinite(loss) or not torch.isfinite(logp.grad).all()  # the failure the clamp exists for
    logp.grad = None
    loss, stats = policy_loss(logp, logp.detach(), torch.tensor([1.0]), torch.ones(1, 2), ref_logp=ref,
                              beta=0.01, kl_log_ratio_clamp=20.0)
    loss.backward()
    k = math.exp(20.0) - 20.0 - 1.0  # the log-ratio is clamped to 20 (verl's low_var_kl)
    assert loss.item() == pytest.approx((-2.0 + 0.01 * k) / 2, rel=1e-6) and torch.isfinite(logp.grad).all()
    assert logp.grad[0, 0].item() == pytest.approx(-0.5, abs=1e-6)  # clamped: no KL gradient, only −Â/N
    # verl's value clamp too: k3 bounded to [−10, 10]
    torch.testing.assert_close(k3_kl(logp.detach(), ref, log_ratio_clamp=20, value_clamp=10),
                               torch.tensor([[10.0, 0.0]]))


def test_no_clip_is_the_plain_ratio_times_advantage():
    logp = LOGP.clone().requires_grad_(True)
    old = LOGP - SHIFT
    loss, stats = policy_loss(logp, old, ADV, MASK, clip=False, eps_low=0.01, eps_high=0.01)
    loss.backward()
    ratio = torch.exp(SHIFT)
    expected = -(ratio * ADV[:, None])[MASK].sum() / MASK.sum()
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)
    torch.testing.assert_close(logp.grad, torch.where(MASK, -ratio * ADV[:, None], 0.0) / MASK.sum())
    assert stats["clip_region"] == 0.0
    clipped, s = policy_loss(LOGP, old, ADV, MASK, eps_low=0.01, eps_high=0.01)
    assert s["clip_region"] > 0 and clipped.item() != pytest.approx(loss.item())


def test_joint_token_mean_over_concatenated_segments_with_one_advantage_by_hand():
    # the authors' trainer: per_token = −(exp(logp − logp.detach())·A − β·k3), one mean over both masks
    beta = 0.01
    reason = {"logp": LOGP.clone().requires_grad_(True), "mask": MASK, "advantages": ADV}
    mesh_logp = (LOGP[:, :3] - 0.5).clone().requires_grad_(True)
    mesh = {"logp": mesh_logp, "mask": torch.ones(3, 3, dtype=torch.bool), "advantages": ADV}
    for seg, ref_shift in ((reason, 0.2), (mesh, -0.1)):
        seg["old_logp"] = seg["logp"].detach()
        seg["ref_logp"] = seg["logp"].detach() + ref_shift
    loss, stats = hi_grpo_loss(reason, mesh, joint=True, beta=beta, clip=False)
    loss.backward()
    k_r, k_m = math.exp(0.2) - 0.2 - 1, math.exp(-0.1) + 0.1 - 1
    n = int(MASK.sum()) + 9
    per_row = [float(MASK[i].sum()) * (-ADV[i].item() + beta * k_r) + 3 * (-ADV[i].item() + beta * k_m)
               for i in range(3)]
    assert loss.item() == pytest.approx(sum(per_row) / n, abs=1e-6)
    # ∂/∂logp: −A + β(1 − exp(ref − logp)), over the joint count
    expected = (-ADV[:, None] + beta * (1 - math.exp(-0.1))) / n
    torch.testing.assert_close(mesh_logp.grad, expected.expand(3, 3))
    assert stats["step1/tokens"] == int(MASK.sum()) and stats["step2/tokens"] == 9
    with pytest.raises(ValueError, match="shared"):
        hi_grpo_loss(reason, {**mesh, "advantages": ADV + 1}, joint=True)


@pytest.mark.parametrize("aggregation", ["token-mean", "seq-mean-token-mean", "seq-sum-norm"])
def test_micro_batches_with_the_batch_normaliser_add_up_to_the_batch_loss(aggregation):
    logp = LOGP.clone().requires_grad_(True)
    whole, _ = policy_loss(logp, LOGP - SHIFT, ADV, MASK, aggregation=aggregation, max_len=4)
    whole.backward()
    g_whole, logp.grad = logp.grad.clone(), None
    items = float(MASK.sum()) if aggregation == "token-mean" else 3.0
    total = 0.0
    for rows in (slice(0, 2), slice(2, 3)):
        part, _ = policy_loss(logp[rows], (LOGP - SHIFT)[rows], ADV[rows], MASK[rows],
                              aggregation=aggregation, max_len=4, num_items=items)
        part.backward()
        total += part.item()
    assert total == pytest.approx(whole.item(), abs=1e-6)
    torch.testing.assert_close(logp.grad, g_whole)
