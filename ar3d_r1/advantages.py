"""Group-relative advantages, DAPO dynamic sampling and the Hi-GRPO step-1 target, as pure functions.

GRPO (Shao et al. 2024, "DeepSeekMath", §4.1.2, outcome supervision) scores each of the G samples of a
prompt against its own group: ``Â_i = (r_i − mean(r)) / (std(r) + ε)``. Hi-GRPO (Tang et al. 2025,
"Are We Ready for RL in Text-to-3D Generation?", §5) does this once per step, with ε = 1e-4 in the
denominator, and feeds the step-2 reward back into step 1: step 1 is scored with
``R_high + λ·R_low`` (λ = 1 in the paper), step 2 with ``R_low``.

Choices the papers leave open, fixed here:

- ``std="unbiased"`` (n − 1 in the denominator) is the default because it is what trl's GRPOTrainer
  (and the authors' trl 0.16) computes; ``"population"`` (n) is the textbook z-score; ``"none"`` drops
  the division altogether, which is Dr.GRPO (Liu et al. 2025, "Understanding R1-Zero-Like Training",
  eq. 2: the std term biases towards groups of low spread).
- Dynamic sampling (Yu et al. 2025, "DAPO", eq. 11 and Alg. 1) drops groups whose rewards are all
  equal: they carry zero advantage and only dilute the token mean. "Equal" means
  ``max − min <= tol``.

Rows are laid out group by group: rows ``[g·G, (g+1)·G)`` are the G samples of prompt g.
"""

from __future__ import annotations

import torch

STD_MODES = ("unbiased", "population", "none")
DYNAMIC_SAMPLING_MODES = ("mask", "refill")


def _grouped(rewards: torch.Tensor, group_size: int, name: str = "rewards") -> torch.Tensor:
    """``rewards (B,)`` → ``(B / G, G)``; raises ValueError on a shape that does not split into groups."""
    if rewards.dim() != 1:
        raise ValueError(f"{name} must be a 1-D tensor (B,), got shape {tuple(rewards.shape)}")
    if group_size < 1 or rewards.numel() % group_size != 0:
        raise ValueError(
            f"{name} has {rewards.numel()} rows, which is not a whole number of groups of {group_size}"
        )
    if not torch.isfinite(rewards).all():
        raise ValueError(f"{name} holds NaN or inf; mask or zero unscorable samples before this point")
    return rewards.view(-1, group_size)


def group_advantages(
    rewards: torch.Tensor, group_size: int, *, eps: float = 1e-4, std: str = "unbiased"
) -> torch.Tensor:
    """Group-normalised advantages ``(r − mean_group) / (std_group + eps)``.

    Args:
        rewards: ``(B,)`` float, B a multiple of ``group_size``, grouped as in the module docstring.
        group_size: G, samples per prompt.
        eps: added to the std (Hi-GRPO and trl: 1e-4).
        std: ``"unbiased"`` (divide by G − 1; trl's choice), ``"population"`` (divide by G) or
            ``"none"`` (no scaling: Dr.GRPO).

    Returns:
        ``(B,)`` advantages, same dtype as ``rewards``. A group of one sample has std 0 under
        ``"unbiased"`` (no spread to measure), so its advantage is 0. A group whose rewards are all
        equal gets exactly 0 (the float mean of equal values can be off by an ulp, which the ε
        denominator would turn into a spurious ~1e-12 advantage: a token that carries no signal must
        read as such, issue 21).
    """
    if std not in STD_MODES:
        raise ValueError(f"std must be one of {STD_MODES}, got {std!r}")
    grouped = _grouped(rewards, group_size)
    constant = (grouped.max(dim=1, keepdim=True).values == grouped.min(dim=1, keepdim=True).values)
    centred = torch.where(constant, torch.zeros_like(grouped), grouped - grouped.mean(dim=1, keepdim=True))
    if std == "none":
        return centred.reshape(-1)
    if std == "unbiased" and group_size == 1:
        spread = torch.zeros_like(grouped)
    else:
        spread = grouped.std(dim=1, keepdim=True, correction=1 if std == "unbiased" else 0)
    return (centred / (spread + eps)).reshape(-1)


def step1_rewards(r_high: torch.Tensor, r_low: torch.Tensor, lam: float) -> torch.Tensor:
    """Hi-GRPO's step-1 training signal ``R_high + λ·R_low`` (paper §5, λ = 1.0): ``(B,)`` each.

    The reward ensembles themselves (dimension normalisation, :func:`ar3d_r1.rewards.ensemble.step1_target`
    over named dimensions) live with the rewards; this is the tensor form the trainer uses.
    """
    if r_high.shape != r_low.shape:
        raise ValueError(f"R_high {tuple(r_high.shape)} and R_low {tuple(r_low.shape)} differ in shape")
    return r_high + lam * r_low


def hi_grpo_advantages(
    r_high: torch.Tensor,
    r_low: torch.Tensor,
    group_size: int,
    *,
    lam: float = 1.0,
    eps: float = 1e-4,
    std: str = "unbiased",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A1, A2)``, both ``(B,)``: step 1 z-scores ``R_high + λ·R_low``, step 2 z-scores ``R_low``."""
    a1 = group_advantages(step1_rewards(r_high, r_low, lam), group_size, eps=eps, std=std)
    a2 = group_advantages(r_low, group_size, eps=eps, std=std)
    return a1, a2


def zero_spread_groups(rewards: torch.Tensor, group_size: int, *, tol: float = 0.0) -> torch.Tensor:
    """``(B / G,)`` bool: True for each group whose rewards span at most ``tol`` (``max − min <= tol``)."""
    grouped = _grouped(rewards, group_size)
    return (grouped.max(dim=1).values - grouped.min(dim=1).values) <= tol


def dynamic_sampling(
    rewards: torch.Tensor, group_size: int, *, mode: str = "mask", tol: float = 0.0
) -> torch.Tensor:
    """DAPO dynamic sampling: keep only groups whose rewards differ (``max − min > tol``).

    Args:
        rewards: ``(B,)`` float, grouped as in the module docstring.
        group_size: G.
        mode: ``"mask"`` keeps every row in the batch and returns which rows still count: the trainer
            multiplies the loss mask by it, so dropped groups add neither loss nor tokens to the token
            mean. ``"refill"`` returns the row indices of the kept groups, in order (DAPO Alg. 1: the
            trainer keeps these, samples more prompts, and repeats until the batch holds enough groups).
        tol: spread at or below which a group counts as constant.

    Returns:
        ``mode="mask"``: ``(B,)`` bool. ``mode="refill"``: ``(K,)`` int64 row indices, ``K = G·kept``.
    """
    if mode not in DYNAMIC_SAMPLING_MODES:
        raise ValueError(f"mode must be one of {DYNAMIC_SAMPLING_MODES}, got {mode!r}")
    keep_groups = ~zero_spread_groups(rewards, group_size, tol=tol)
    keep_rows = keep_groups.repeat_interleave(group_size)
    if mode == "mask":
        return keep_rows
    return torch.nonzero(keep_rows, as_tuple=False).reshape(-1)
