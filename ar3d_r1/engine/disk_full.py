"""A full disk while a checkpoint is written: told apart from other failures, and said in one line.

``torch.save`` reports ``ENOSPC`` as a ``RuntimeError`` from its zip writer (``unexpected pos``, ``file
write failed``) and safetensors as a ``SafetensorError`` quoting ``os error 28``, neither an ``OSError``
(:func:`mme3dr.output_files.is_disk_full` sees only those), so :func:`disk_full` asks the device's free
space too. :class:`CheckpointDiskFullError` is the one line the command prints
(ar3d_r1/engine/checkpoint.py and the trainer's ``final/``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from mme3dr.output_files import is_disk_full

#: Free bytes below which a failed write on that device counts as a full disk (a zip writer's error).
NEARLY_FULL_BYTES = 16 << 20


class CheckpointDiskFullError(RuntimeError):
    """The disk filled up while a checkpoint was written; the previous checkpoint is intact."""


def disk_full(exc: BaseException, where: str | Path) -> bool:
    """Whether ``exc``, raised while writing under ``where``, means the device is full (module docstring)."""
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
