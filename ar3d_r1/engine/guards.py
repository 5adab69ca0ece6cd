"""What stops a Hi-GRPO run cleanly instead of saving garbage: a step that is not finite (a full disk:
:mod:`ar3d_r1.engine.disk_full`).

- :func:`check_step`, called after each optimizer step and before it is logged or checkpointed: a loss
  or gradient norm that is NaN or infinite, or a parameter that became so, raises
  :class:`NonFiniteStepError` naming the step and what was not finite. Nothing of that step is written:
  no metric record, no checkpoint, no ``final/`` of NaN parameters; the last checkpoint written before
  it is the last good one, and ``--resume true`` (with, say, a lower ``--learning_rate``, which a
  resume applies: ar3d_r1/engine/checkpoint.py) continues from it.
"""

from __future__ import annotations

import math

from ar3d_r1.engine.checkpoint import latest_checkpoint


class NonFiniteStepError(RuntimeError):
    """An optimizer step whose loss, gradient norm or parameters are not finite; the run stops there."""


def check_step(trainer, step: int, stats: dict[str, float]) -> None:
    """Raise :class:`NonFiniteStepError` unless optimizer step ``step``'s losses (``stats["loss"]``,
    ``stats["<rollout step>/loss"]``), gradient norm (``stats["grad_norm"]``; a skipped step and
    DeepSpeed's engine may report none, NaN here, which is then not judged) and the policy's parameters
    are all finite."""
    from ar3d_r1.engine.distributed import is_deepspeed

    bad = [f"{k} {v}" for k, v in stats.items() if (k == "loss" or k.endswith("/loss"))
           and isinstance(v, float) and not math.isfinite(v)]
    # a step skipped for want of signal (or DeepSpeed's engine) reports no gradient norm: NaN, not judged
    norm = stats["grad_norm"]
    unreported = stats.get("skipped") or (is_deepspeed(trainer.accelerator) and math.isnan(norm))
    if not unreported and not math.isfinite(norm):
        bad.append(f"gradient norm {norm}")
    if not bad:
        names = non_finite_parameters(trainer.accelerator.unwrap_model(trainer.model))
        if names:
            bad.append(f"parameters {', '.join(names[:3])}{' …' if len(names) > 3 else ''}")
    if not bad:
        return
    last = latest_checkpoint(trainer.config.output_dir)
    keep = (f"the last good checkpoint is {last}; --resume true continues from it (a resume applies a "
            f"changed --learning_rate)" if last else "no checkpoint was written before it")
    raise NonFiniteStepError(f"step {step} is not finite ({'; '.join(bad)}): the run stops without saving "
                             f"it; {keep}")


def non_finite_parameters(model) -> list[str]:
    """Names of ``model``'s parameters holding a NaN or infinity (one device-to-host sync for all)."""
    import torch

    params = [(n, p) for n, p in model.named_parameters() if p.numel()]
    if not params:
        return []
    device = params[0][1].device
    flags = torch.stack([torch.isfinite(p.detach()).all().to(device) for _, p in params])
    if bool(flags.all()):
        return []
    return [n for (n, _), ok in zip(params, flags.tolist(), strict=True) if not ok]
