"""What stops a Hi-GRPO run cleanly instead of saving garbage: a step that is not finite, a full disk.

- :func:`check_step`, called after each optimizer step and before it is logged or checkpointed: a loss
  or gradient norm that is NaN or infinite, or a parameter that became so, raises
  :class:`NonFiniteStepError` naming the step and what was not finite. Nothing of that step is written:
  no metric record, no checkpoint, no ``final/`` of NaN parameters; the last checkpoint written before
  it is the last good one, and ``--resume true`` (with, say, a lower ``--learning_rate``, which a
  resume applies: ar3d_r1/engine/checkpoint.py) continues from it.
- :func:`disk_full`: whether an exception raised while writing a checkpoint means the disk is full.
  ``torch.save`` reports ``ENOSPC`` as a ``RuntimeError`` from its zip writer (``unexpected pos``, ``file
  write failed``) and safetensors as a ``SafetensorError`` quoting ``os error 28``, neither an
  ``OSError``, so the device's free space is asked too. :class:`CheckpointDiskFullError` is the one
  line the command prints.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from mme3dr.output_files import is_disk_full

#: Free bytes below which a failed write on that device counts as a full disk (a zip writer's error).
NEARLY_FULL_BYTES = 16 << 20


class NonFiniteStepError(RuntimeError):
    """An optimizer step whose loss, gradient norm or parameters are not finite; the run stops there."""


class CheckpointDiskFullError(RuntimeError):
    """The disk filled up while a checkpoint was written; the previous checkpoint is intact."""


def check_step(trainer, step: int, stats: dict[str, float]) -> None:
    """Raise :class:`NonFiniteStepError` unless optimizer step ``step``'s losses (``stats["<rollout
    step>/loss"]``), gradient norm (``stats["grad_norm"]``; DeepSpeed's engine may report none, NaN
    here, and is then not judged) and the policy's parameters are all finite."""
    from ar3d_r1.engine.distributed import is_deepspeed

    bad = [f"{k} {v}" for k, v in stats.items() if k.endswith("/loss") and not math.isfinite(v)]
    unreported = is_deepspeed(trainer.accelerator) and math.isnan(stats["grad_norm"])
    if not unreported and not math.isfinite(stats["grad_norm"]):
        bad.append(f"gradient norm {stats['grad_norm']}")
    if not bad:
        import torch

        model = trainer.accelerator.unwrap_model(trainer.model)
        names = [n for n, p in model.named_parameters() if p.numel() and not bool(torch.isfinite(p).all())]
        if names:
            bad.append(f"parameters {', '.join(names[:3])}{' …' if len(names) > 3 else ''}")
    if not bad:
        return
    from ar3d_r1.engine.checkpoint import latest_checkpoint

    last = latest_checkpoint(trainer.config.output_dir)
    keep = (f"the last good checkpoint is {last}; --resume true continues from it (a resume applies a "
            f"changed --learning_rate)" if last else "no checkpoint was written before it")
    raise NonFiniteStepError(f"step {step} is not finite ({'; '.join(bad)}): the run stops without saving "
                             f"it; {keep}")


def disk_full(exc: BaseException, where: str | Path) -> bool:
    """Whether ``exc``, raised while writing under ``where``, means the device is full (module
    docstring)."""
    text = str(exc)
    if is_disk_full(exc) or "No space left on device" in text or "os error 28" in text:
        return True
    try:
        return isinstance(exc, RuntimeError) and shutil.disk_usage(where).free < NEARLY_FULL_BYTES
    except OSError:
        return False


def disk_full_error(output_dir: str | Path, what: str, previous: Path | None) -> CheckpointDiskFullError:
    """The one-line error of a checkpoint ``what`` (``checkpoint-<step>``, ``final/``) that did not fit,
    naming the folder and what is left intact."""
    kept = f"the previous checkpoint {previous} is intact" if previous else "no earlier checkpoint exists"
    return CheckpointDiskFullError(f"disk full: no space left on the device while writing {what} "
                                   f"in {output_dir}; {kept}. Free some space, then run the same command "
                                   "with --resume true")
