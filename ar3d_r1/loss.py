"""The clipped policy-gradient loss of GRPO and its variants, and the Hi-GRPO two-step total.

Per token t of completion i, with the importance ratio ``ρ_{i,t} = π_θ(o_{i,t}|·) / π_old(o_{i,t}|·)``
and the group advantage ``Â_i`` (:mod:`ar3d_r1.advantages`):

    ℓ_{i,t} = −min(ρ_{i,t}·Â_i, clip(ρ_{i,t}, 1 − ε_low, 1 + ε_high)·Â_i) + β·KL_{i,t}

- PPO clipped surrogate (Schulman et al. 2017, eq. 7) as GRPO uses it (Shao et al. 2024, eq. 3);
  asymmetric bounds ("clip-higher") from DAPO (Yu et al. 2025, eq. 10: ε_low 0.2, ε_high 0.28).
- ``KL_{i,t} = π_ref/π_θ − log(π_ref/π_θ) − 1``, the k3 estimator (Schulman 2020, "Approximating KL
  divergence"; GRPO eq. 4): unbiased for KL(π_θ‖π_ref) under samples from π_θ, and never negative.
- ``level="sequence"`` is GSPO (Zheng et al. 2025, eq. 7): one ratio per sequence,
  ``s_i = exp(mean_t log ρ_{i,t})`` (the length-normalised sequence likelihood ratio), clipped once.

Hi-GRPO (Tang et al. 2025, §5) computes this loss once per step, each with its own advantages (step 1
on R_high + λ·R_low, step 2 on R_low), averages over all valid tokens of the group ("token-mean"),
uses β = 0.01, and trains on the sum ``L = L1 + L2`` (:func:`hi_grpo_loss`). Reasoning tokens and mesh
tokens are both in the mask.

Aggregation over the batch (``mask: (B, T)``, ``|o_i| = Σ_t mask_{i,t}``):

- ``"token-mean"``: ``Σ_{i,t} ℓ·mask / Σ_{i,t} mask`` (DAPO eq. 12, Hi-GRPO; trl ``loss_type="dapo"``
  and ``"bnpo"`` within one batch);
- ``"seq-mean-token-mean"``: ``(1/B) Σ_i (1/|o_i|) Σ_t ℓ·mask`` (GRPO eq. 3; trl ``"grpo"``; GSPO);
- ``"seq-sum-norm"``: ``Σ_{i,t} ℓ·mask / (B · max_len)`` with a constant ``max_len`` (Dr.GRPO, Liu et
  al. 2025, eq. 3: no length bias; trl ``"dr_grpo"`` with ``max_completion_length``).

The presets of these switches are in :data:`ALGORITHMS`. When updates are on-policy (one gradient step
per generation, μ = 1) ``old_logp`` equals ``logp.detach()``, so ρ ≡ 1 and the clip is inert; the
gradient is then the plain policy gradient. Off-policy (μ > 1, or more micro-steps per generation than
accumulation steps) the caller must pass ``old_logp`` computed by the generating weights.

**Masked positions contribute exactly nothing** (issue 21), whatever they hold (a pad's log-prob can be
−1e30 or +80 under a drifted policy): every log-ratio is replaced by 0 *before* the exponential
(``torch.where``), and every per-token term by 0 before the sum, so neither the value, the gradient nor a
statistic sees them (the NaN of ``exp(huge) · 0`` is never formed; NeMo-RL and SkyRL fixed the same).

**Optional k3 clamps** (off by default, as in the paper and the authors' trainer):
``kl_log_ratio_clamp`` c bounds ``ref − logp`` to [−c, c] before the exponential and ``kl_value_clamp`` v
bounds k3 to [−v, v]; verl's ``kl_penalty("low_var_kl")`` (verl/trainer/ppo/core_algos.py) uses c = 20
and v = 10. Without them a valid token with ``ref − logp`` > 88.7 overflows float32 (OpenRLHF PR 1335).

**Micro-batches.** ``num_items`` is the batch-level normaliser (trl's ``num_items_in_batch``): the
valid-token count of the whole batch for ``token-mean``, its row count for the two sequence
aggregations. Given it, the losses of any split of the batch into micro-batches add up to the loss of
the whole batch (the trainer's step, :mod:`ar3d_r1.engine.step`).

Shapes: ``B`` completions, ``T`` completion positions (right-padded), float32 or float64 throughout;
``mask`` is bool or {0, 1} float.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

LEVELS = ("token", "sequence")
AGGREGATIONS = ("token-mean", "seq-mean-token-mean", "seq-sum-norm")


@dataclass(frozen=True)
class LossSwitches:
    """One algorithm's loss and sampling switches (the fields :func:`policy_loss` and the trainer read)."""

    eps_low: float
    eps_high: float
    beta: float
    level: str
    aggregation: str
    std: str
    dynamic_sampling: str | None  # None, "mask" or "refill"


#: The switches that reproduce each method (used by ablations and ``--algorithm``). ε and β follow each
#: paper's reported setting; where a paper gives none, the value is marked.
ALGORITHMS: dict[str, LossSwitches] = {
    # GRPO (DeepSeekMath §4.1): symmetric clip 0.2 (PPO default; the paper states no ε), β = 0.04.
    "grpo": LossSwitches(0.2, 0.2, 0.04, "token", "seq-mean-token-mean", "unbiased", None),
    # DAPO: clip-higher 0.2 / 0.28, token-level mean, no KL, dynamic sampling with refill.
    "dapo": LossSwitches(0.2, 0.28, 0.0, "token", "token-mean", "unbiased", "refill"),
    # Dr.GRPO: no std scaling, constant-length normalisation, no KL.
    "dr-grpo": LossSwitches(0.2, 0.2, 0.0, "token", "seq-sum-norm", "none", None),
    # GSPO: sequence-level ratio, clip 3e-4 / 4e-4 (GSPO §5.1), no KL.
    "gspo": LossSwitches(3e-4, 4e-4, 0.0, "sequence", "seq-mean-token-mean", "unbiased", None),
    # Hi-GRPO (the paper): token-mean, k3 KL β = 0.01, dynamic sampling; clip values are not given in
    # the paper, so DAPO's 0.2 / 0.28 are used.
    "hi-grpo": LossSwitches(0.2, 0.28, 0.01, "token", "token-mean", "unbiased", "mask"),
}
#: The keyword arguments of :func:`policy_loss` that :func:`hi_grpo_loss` passes through.
SWITCHES = ("eps_low", "eps_high", "beta", "level", "aggregation", "max_len", "kl_ratio_correction", "clip",
            "kl_log_ratio_clamp", "kl_value_clamp", "num_items")


def _check(logp, old_logp, advantages, mask, ref_logp, level, aggregation, max_len) -> None:
    if logp.dim() != 2:
        raise ValueError(f"logp must be (B, T), got shape {tuple(logp.shape)}")
    for name, x in (("old_logp", old_logp), ("mask", mask), ("ref_logp", ref_logp)):
        if x is not None and x.shape != logp.shape:
            raise ValueError(f"{name} has shape {tuple(x.shape)}, logp has {tuple(logp.shape)}")
    if advantages.shape != (logp.shape[0],):
        raise ValueError(f"advantages must be (B,) = ({logp.shape[0]},), got {tuple(advantages.shape)}")
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
    if aggregation == "seq-sum-norm" and (max_len is None or max_len < 1):
        raise ValueError("aggregation='seq-sum-norm' (Dr.GRPO) needs max_len, the constant length budget")


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, aggregation: str, max_len: int | None = None,
              num_items: float | None = None) -> torch.Tensor:
    """Reduce ``per_token (B, T)`` to a scalar over the positions where ``mask`` is set (module doc).

    Masked positions are replaced by 0 (``torch.where``, not a product: an inf there stays out).
    ``num_items`` overrides the batch's own normaliser (tokens for ``token-mean``, rows otherwise). An
    all-masked batch gives 0 (connected to the graph), not NaN.
    """
    valid = mask.bool()
    masked = torch.where(valid, per_token, torch.zeros((), dtype=per_token.dtype, device=per_token.device))
    fmask = valid.to(per_token.dtype)
    if aggregation == "token-mean":
        n = fmask.sum() if num_items is None else torch.as_tensor(float(num_items), dtype=per_token.dtype)
        return masked.sum() / n.clamp(min=1.0)
    rows = float(per_token.shape[0] if num_items is None else num_items)
    if aggregation == "seq-mean-token-mean":
        return (masked.sum(-1) / fmask.sum(-1).clamp(min=1.0)).sum() / max(rows, 1.0)
    if aggregation == "seq-sum-norm":
        return masked.sum() / (max(rows, 1.0) * max_len)
    raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor, *, log_ratio_clamp: float = 0.0,
          value_clamp: float = 0.0) -> torch.Tensor:
    """Per-token k3 estimate of KL(π_θ‖π_ref): ``exp(ref − logp) − (ref − logp) − 1``, shape of inputs.

    ``log_ratio_clamp`` c > 0 clamps ``ref − logp`` to [−c, c] first, ``value_clamp`` v > 0 clamps the
    result to [−v, v] (verl: c = 20, v = 10; module docstring). 0 leaves either off.
    """
    delta = ref_logp - logp
    if log_ratio_clamp > 0:
        delta = delta.clamp(-log_ratio_clamp, log_ratio_clamp)
    kl = torch.exp(delta) - delta - 1.0
    return kl.clamp(-value_clamp, value_clamp) if value_clamp > 0 else kl


def policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    ref_logp: torch.Tensor | None = None,
    eps_low: float = 0.2,
    eps_high: float = 0.28,
    beta: float = 0.0,
    level: str = "token",
    aggregation: str = "token-mean",
    max_len: int | None = None,
    kl_ratio_correction: bool = False,
    clip: bool = True,
    kl_log_ratio_clamp: float = 0.0,
    kl_value_clamp: float = 0.0,
    num_items: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped surrogate + β·k3 KL, aggregated as asked (module docstring gives every formula).

    Args:
        logp: ``(B, T)`` log π_θ of each completion token (requires grad).
        old_logp: ``(B, T)`` log π_old, no grad (``logp.detach()`` when on-policy).
        advantages: ``(B,)`` one advantage per completion.
        mask: ``(B, T)`` 1 for a valid completion token (padding and dropped groups are 0); whatever
            ``logp``, ``old_logp`` or ``ref_logp`` hold at a masked position (any float, inf, NaN) adds
            nothing to the loss, the gradient or the stats.
        ref_logp: ``(B, T)`` log π_ref; required when ``beta != 0``.
        eps_low, eps_high: clip range ``[1 − eps_low, 1 + eps_high]``.
        beta: KL coefficient.
        level: ``"token"`` (GRPO/DAPO) or ``"sequence"`` (GSPO).
        aggregation: ``"token-mean"``, ``"seq-mean-token-mean"`` or ``"seq-sum-norm"`` (needs ``max_len``).
        kl_ratio_correction: multiply the per-token KL by the (differentiable) importance ratio ρ, so its
            gradient is the unbiased reverse-KL gradient (DeepSeek-V3.2, 2025; trl 1.16's default
            ``use_bias_correction_kl=True``). Off by default: GRPO and Hi-GRPO use the plain k3 term
            (and the authors' trl 0.16 had no correction). On-policy it changes the gradient, not the value.
        clip: False drops the clip: ``ℓ = −ρ·Â + β·KL`` (the authors' released trainer: ε is declared
            but unused). On-policy (ρ ≡ 1) the two agree.
        kl_log_ratio_clamp, kl_value_clamp: the optional k3 clamps (:func:`k3_kl`; 0 = off).
        num_items: the batch-level normaliser when this is one micro-batch of a batch (module doc).

    Returns:
        ``(loss, stats)``: a scalar tensor, and floats ``clip_low`` / ``clip_high`` (fraction of valid
        tokens, or of sequences at ``level="sequence"``, whose ratio is clipped below with Â < 0 /
        above with Â > 0: the ones the clip takes the gradient from, trl's definition; 0 without a
        clip), ``clip_region`` (either), ``kl`` (token mean of k3, 0 without a reference),
        ``ratio_mean``, ``tokens`` (valid token count) and ``sequences`` (completions with at least one
        valid token).

    Raises:
        ValueError: on mismatched shapes, unknown switches, ``beta != 0`` without ``ref_logp``, or
        ``seq-sum-norm`` without ``max_len``.
    """
    _check(logp, old_logp, advantages, mask, ref_logp, level, aggregation, max_len)
    if beta != 0.0 and ref_logp is None:
        raise ValueError("beta != 0 needs ref_logp, the reference policy's log-probs")
    valid = mask.bool()
    zero = torch.zeros((), dtype=logp.dtype, device=logp.device)
    fmask = valid.to(logp.dtype)
    adv = advantages.to(logp.dtype).unsqueeze(1)  # (B, 1)
    log_ratio = torch.where(valid, logp - old_logp, zero)  # masked BEFORE the exponential
    # token: (B, T); sequence (GSPO eq. 7): the length-normalised sequence ratio (B, 1), through which
    # gradients flow to every token's log-prob
    log_w = (log_ratio if level == "token"
             else (log_ratio.sum(-1) / fmask.sum(-1).clamp(min=1.0)).unsqueeze(1))
    ratio = torch.exp(log_w)
    if clip:
        clipped = torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high)
        per_token = -torch.min(ratio * adv, clipped * adv)  # (B, T) or (B, 1), broadcast below
    else:
        per_token = -ratio * adv
    per_token = per_token.expand_as(logp)
    kl = None
    if ref_logp is not None:
        kl = torch.where(valid, k3_kl(torch.where(valid, logp, zero), torch.where(valid, ref_logp, zero),
                                      log_ratio_clamp=kl_log_ratio_clamp, value_clamp=kl_value_clamp), zero)
        if beta != 0.0:
            per_token = per_token + beta * (kl * ratio if kl_ratio_correction else kl)
    loss = aggregate(per_token, valid, aggregation, max_len, num_items)
    return loss, _stats(ratio, adv, kl, fmask, level, eps_low, eps_high, clip)


def _stats(ratio, adv, kl, fmask, level, eps_low, eps_high, clip) -> dict[str, float]:
    """The logged statistics of :func:`policy_loss` (see its Returns); masked positions excluded."""
    with torch.no_grad():
        ratio = ratio.detach()
        low = ((ratio < 1.0 - eps_low) & (adv < 0)).to(fmask.dtype) * float(clip)
        high = ((ratio > 1.0 + eps_high) & (adv > 0)).to(fmask.dtype) * float(clip)
        n_tok = fmask.sum()
        n_seq = (fmask.sum(-1) > 0).to(fmask.dtype)
        if level == "token":
            def frac(x):
                return float((x * fmask).sum() / n_tok.clamp(min=1.0))
        else:
            def frac(x):
                return float((x.squeeze(1) * n_seq).sum() / n_seq.sum().clamp(min=1.0))
        return {
            "clip_low": frac(low),
            "clip_high": frac(high),
            "clip_region": frac(torch.maximum(low, high)),
            "kl": 0.0 if kl is None else float(kl.detach().sum() / n_tok.clamp(min=1.0)),
            "ratio_mean": frac(ratio.expand_as(fmask) if level == "token" else ratio),
            "tokens": int(n_tok.item()),
            "sequences": int(n_seq.sum().item()),
        }


def _concat(segments: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The segments of each sample side by side along time (the authors' ``torch.cat(..., dim=1)``)."""
    adv = segments[0]["advantages"]
    for seg in segments[1:]:
        if not torch.equal(seg["advantages"], adv):
            raise ValueError("joint segments need one advantage per sample shared by every segment "
                             "(advantage_mode 'shared')")
    out = {"advantages": adv}
    for key in ("logp", "old_logp", "mask", "ref_logp"):
        parts = [seg.get(key) for seg in segments]
        if any(p is None for p in parts):
            if any(p is not None for p in parts):
                raise ValueError(f"{key} is given for some segments and not others")
            continue
        out[key] = torch.cat(parts, dim=1)
    return out


def hi_grpo_loss(
    step1: dict[str, torch.Tensor], step2: dict[str, torch.Tensor] | None = None, *, joint: bool = False,
    num_items: dict[str, float] | None = None, **switches,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The trainer's loss (the one path, issue 21): Hi-GRPO's ``L = L1 + L2`` (paper §5), or one
    aggregate over the concatenated segments (``joint``: the authors' released one-step trainer).

    Each of ``step1`` and ``step2`` (None: one step) holds ``logp``, ``old_logp``, ``advantages``,
    ``mask`` and optionally ``ref_logp``, shapes as in :func:`policy_loss` (the two steps' T may differ;
    B is the same). ``switches`` are :func:`policy_loss`'s keyword arguments, shared by both steps.

    - ``joint=False``: ``L = policy_loss(step1) + policy_loss(step2)``, each aggregated over its own
      positions (``num_items["step1"]`` / ``["step2"]`` when this is one micro-batch);
    - ``joint=True``: one :func:`policy_loss` over ``[step1 ; step2]`` concatenated along time (both
      must share their per-sample advantages), normalised by ``num_items["joint"]`` when given. For
      token-mean that is ``Σ over both segments ℓ·mask / Σ both masks``.

    Returns ``(loss, stats)``: ``loss`` (the total), and stats prefixed ``step1/`` and ``step2/``: each
    segment's statistics, and (not joint) ``loss``, the segment's term of the total.
    """
    unknown = set(switches) - set(SWITCHES)
    if unknown:
        raise TypeError(f"unknown loss switches {sorted(unknown)}")
    named = [("step1", step1)] + ([("step2", step2)] if step2 is not None else [])
    items = num_items or {}
    stats: dict[str, float] = {}
    if not joint or len(named) == 1:
        total = None
        for name, batch in named:
            loss, s = _segment_loss(batch, switches, items.get(name, items.get("joint")))
            total = loss if total is None else total + loss
            stats[f"{name}/loss"] = float(loss.detach())
            stats.update({f"{name}/{k}": v for k, v in s.items()})
        stats["loss"] = float(total.detach())
        return total, stats
    cat = _concat([b for _, b in named])
    total, _ = _segment_loss(cat, switches, items.get("joint"))
    stats["loss"] = float(total.detach())
    start = 0
    for name, batch in named:  # each segment's statistics and its part of the joint sum
        width = batch["mask"].shape[1]
        part = {k: v[:, start:start + width] if v.dim() == 2 else v for k, v in cat.items()}
        with torch.no_grad():
            _, s = _segment_loss(part, switches, None)
        stats.update({f"{name}/{k}": v for k, v in s.items()})
        start += width
    return total, stats


def _segment_loss(batch: dict, switches: dict, num_items: float | None):
    return policy_loss(batch["logp"], batch["old_logp"], batch["advantages"], batch["mask"],
                       ref_logp=batch.get("ref_logp"), **{**switches, "num_items": num_items})
