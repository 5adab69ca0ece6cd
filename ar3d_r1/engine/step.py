"""One optimizer step of the trainer: micro-batched log-probs through the one loss path, then the update,
or no update at all when nothing in the batch carries signal.

**The loss is** :func:`ar3d_r1.loss.hi_grpo_loss`, called once per micro-batch of
``per_device_train_batch_size`` rows with the step's batch-level normalisers (``num_items``), so the
micro-batch losses add up, over micro-batches and processes, to the loss of the whole step:

- ``loss_normaliser="batch"`` (ours, trl's ``num_items_in_batch``): ``num_items`` is the global count
  (valid tokens for ``token-mean``, per step or of both steps when ``loss_segments="joint"``; rows for the
  sequence aggregations), summed over every process;
- ``loss_normaliser="micro-batch"`` (the authors' released trainer, transformers' Trainer under DDP):
  each micro-batch is normalised by its own counts, and the step's loss is the mean over the
  ``n_micro × W`` micro-batches of all processes (each is scaled by ``1 / (n_micro·W)``).

Gradients are then summed over processes (:func:`ar3d_r1.engine.distributed.sum_gradients`).

**Skipped steps.** A position carries signal when its mask is set and its sample's advantage is not 0,
or the loss has a KL term (β ≠ 0). When no position of the step carries signal on any process (every
group dropped by dynamic sampling, every sample failed), its gradient is exactly 0, yet AdamW would
still move the parameters through its momentum and weight decay and the LR schedule would advance. Such
a step runs no backward and touches neither the parameters, the optimizer (moments, step count) nor the
scheduler; :func:`train_step` returns ``{"skipped": 1, ...}`` and the trainer logs it as skipped.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from ar3d_r1.engine.distributed import (
    check_deepspeed_accumulation,
    deepspeed_loss_scale,
    global_sums,
    is_deepspeed,
    sum_gradients,
)
from ar3d_r1.logprobs import completion_logprobs
from ar3d_r1.loss import hi_grpo_loss

#: Per-token statistics of :func:`ar3d_r1.loss.policy_loss` that the step reports as token means.
TOKEN_STATS = ("clip_low", "clip_high", "clip_region", "kl", "ratio_mean")


def loss_switches(config, max_len: int) -> dict:
    """The keyword arguments :func:`ar3d_r1.loss.hi_grpo_loss` takes from a ``HiGRPOConfig``."""
    return dict(eps_low=config.epsilon_low, eps_high=config.epsilon_high, beta=config.beta,
                level=config.level, aggregation=config.aggregation, max_len=max_len,
                kl_ratio_correction=False, clip=config.clip_ratio,
                kl_log_ratio_clamp=config.kl_log_ratio_clamp, kl_value_clamp=config.kl_value_clamp)


def micro_batches(n: int, size: int) -> list[slice]:
    """Row slices of ``size`` (the last one shorter) covering ``n`` rows."""
    return [slice(s, min(s + size, n)) for s in range(0, n, size)]


def signal_positions(tensors: dict, beta: float) -> float:
    """How many positions of this process's batch carry signal (module docstring)."""
    total = 0.0
    for t in tensors.values():
        mask = t["mask"].bool()
        if beta == 0.0:
            mask = mask & (t["advantages"] != 0)[:, None]
        total += float(mask.sum())
    return total


def segment_logprobs(model, t: dict, rows: slice, config, device) -> torch.Tensor:
    """``(rows, C)`` log-probs of segment ``t`` (``ids``, ``att``, ``mask``) under ``model``."""
    width = t["mask"].shape[1]
    return completion_logprobs(model, t["ids"][rows].to(device), t["att"][rows].to(device), width,
                               temperature=config.temperature, chunk=config.logprob_chunk)


def _normalisers(acc, tensors: dict, config) -> tuple[dict[str, float] | None, dict[str, float]]:
    """``(num_items for hi_grpo_loss or None, global token counts per segment)``."""
    local = {}
    for name, t in tensors.items():
        local[f"{name}/tokens"] = float(t["mask"].bool().sum())
        local[f"{name}/rows"] = float(len(t["ids"]))
    counts = global_sums(acc, local)
    tokens = {name: counts[f"{name}/tokens"] for name in tensors}
    if config.loss_normaliser == "micro-batch":
        return None, tokens
    rows = counts[f"{next(iter(tensors))}/rows"]
    if config.aggregation != "token-mean":
        items = {name: rows for name in tensors}
        items["joint"] = rows
    else:
        items = dict(tokens)
        items["joint"] = sum(tokens.values())
    return items, tokens


def backward_micro_batches(acc, wrapped_model, tensors: dict, old: dict | None, ref: dict | None, config, *,
                           max_len: int) -> dict[str, float]:
    """Forward and backward every micro-batch of ``tensors`` (``{"step1": {ids, att, mask, advantages},
    "step2": ...}``) through :func:`ar3d_r1.loss.hi_grpo_loss`, then sum the gradients over processes.

    ``old`` / ``ref``: per-segment ``(B, C)`` log-probs of π_old (None: on-policy, ``logp.detach()``) and
    π_ref (None: no KL). Returns the step's statistics summed over processes: ``loss``, and per segment
    ``tokens``, the token means of :data:`TOKEN_STATS` and (``loss_segments="sum"``) ``loss``.
    """
    model = acc.unwrap_model(wrapped_model).train()
    num_items, tokens = _normalisers(acc, tensors, config)
    switches = loss_switches(config, max_len)
    micro = micro_batches(len(next(iter(tensors.values()))["ids"]), config.per_device_train_batch_size)
    check_deepspeed_accumulation(acc, len(micro))
    scale = 1.0 if num_items is not None else 1.0 / (len(micro) * acc.num_processes)
    sums: dict[str, float] = {}
    for rows in micro:
        segments = {}
        for name, t in tensors.items():
            with acc.autocast():  # the mixed-precision flag (log-probs bypass model.forward's wrapper)
                logp = segment_logprobs(model, t, rows, config, acc.device)
            segments[name] = {"logp": logp, "mask": t["mask"][rows].to(logp.device),
                              "advantages": t["advantages"][rows].to(logp.device),
                              "old_logp": old[name][rows] if old is not None else logp.detach()}
            if ref is not None:
                segments[name]["ref_logp"] = ref[name][rows]
        loss, stats = hi_grpo_loss(segments["step1"], segments.get("step2"),
                                   joint=config.loss_segments == "joint", num_items=num_items, **switches)
        _add_stats(sums, stats, tensors, scale)
        # DeepSpeed steps at every backward unless accelerate's accumulate() marks the boundary
        with acc.accumulate(wrapped_model) if is_deepspeed(acc) else nullcontext():
            acc.backward(loss * scale * deepspeed_loss_scale(acc, len(micro)))
    sum_gradients(acc, model.parameters())  # log-probs ran on the unwrapped module: reduce by hand
    sums = global_sums(acc, sums)
    out = {"loss": sums.get("loss", 0.0)}
    for name in tensors:
        for k in TOKEN_STATS:
            out[f"{name}/{k}"] = sums.get(f"{name}/{k}", 0.0) / max(tokens[name], 1.0)
        out[f"{name}/tokens"] = tokens[name]
        if f"{name}/loss" in sums:
            out[f"{name}/loss"] = sums[f"{name}/loss"]
    return out


def _add_stats(sums: dict, stats: dict, tensors: dict, scale: float) -> None:
    sums["loss"] = sums.get("loss", 0.0) + stats["loss"] * scale
    for name in tensors:
        n = stats[f"{name}/tokens"]
        for k in TOKEN_STATS:
            sums[f"{name}/{k}"] = sums.get(f"{name}/{k}", 0.0) + stats[f"{name}/{k}"] * n
        if f"{name}/loss" in stats:
            sums[f"{name}/loss"] = sums.get(f"{name}/loss", 0.0) + stats[f"{name}/loss"] * scale


def train_step(trainer, batch: dict, old: dict | None, ref: dict | None) -> dict[str, float]:
    """One optimizer step of ``trainer`` (a :class:`ar3d_r1.engine.trainer.HiGRPOTrainer`) on ``batch``,
    or a skipped one (module docstring). Returns the step's statistics, with ``skipped`` (0 or 1),
    ``grad_norm`` (pre-clip; NaN when skipped) and ``learning_rate`` (the rate this step used or would)."""
    cfg, acc = trainer.config, trainer.accelerator
    tensors = batch["tensors"]
    lr = trainer.scheduler.get_last_lr()[0]
    signal = global_sums(acc, {"signal": signal_positions(tensors, cfg.beta)})["signal"]
    if signal == 0:
        out = {"skipped": 1, "grad_norm": float("nan"), "learning_rate": lr, "loss": 0.0}
        for name, t in tensors.items():
            out.update({f"{name}/{k}": 0.0 for k in TOKEN_STATS})
            out[f"{name}/tokens"] = global_sums(acc, {"n": float(t["mask"].bool().sum())})["n"]
        return out
    stats = backward_micro_batches(acc, trainer.model, tensors, old, ref, cfg, max_len=trainer.max_len)
    model = acc.unwrap_model(trainer.model)
    # DeepSpeed clips inside its engine step (its config's gradient_clipping) and keeps the norm
    grad_norm = (trainer.model.get_global_grad_norm() if is_deepspeed(acc)  # the engine's, pre-clip
                 else torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm))
    trainer.optimizer.step()
    trainer.scheduler.step()
    trainer.optimizer.zero_grad(set_to_none=True)
    return {"skipped": 0, "grad_norm": float("nan") if grad_norm is None else float(grad_norm),
            "learning_rate": lr, **stats}
