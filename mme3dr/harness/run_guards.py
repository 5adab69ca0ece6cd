"""Checks ``mme3dr evaluate`` makes before it writes or renders anything, so that unusable input costs
nothing and ends with one line that says what to do.

- :func:`check_device`: the ``--device`` exists on this machine (``--device cuda`` without a GPU is
  refused before a ``run.json`` is written, so it never blocks a later ``--device cpu`` run);
- :func:`check_folder_matches`: a ``folder:DIR`` adapter has a file for at least one requested case;
  when it has none, the message lists the files found and the names expected, and nothing is rendered.

Light module: torch is imported only to check a non-CPU device.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mme3dr.errors import UserError
from mme3dr.models.registry import ModelSpecError

__all__ = ["check_device", "check_folder_matches"]


def check_device(device: str) -> None:
    """Raise ``ValueError`` (one line, with the fix) when ``device`` is not usable here."""
    if device == "cpu":
        return
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as e:
        raise UserError(f"--device {device!r} is not a torch device ({e}); use cpu or cuda") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "no CUDA GPU is visible" if torch.version.cuda else "this torch is built without CUDA"
            raise UserError(f"--device {device}: {why} (torch {torch.__version__}); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA "
                             f"device(s), numbered from 0; pick one of them or use --device cuda")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device {device}: MPS is not available on this machine; use --device cpu")


def check_folder_matches(model: str, keys: Sequence[tuple[str, int]]) -> None:
    """For ``--model folder:DIR``: raise ``ModelSpecError`` when ``DIR`` has a file for none of ``keys``
    (``(case_id, sample_index)``). Any other adapter passes."""
    name, sep, root = model.strip().partition(":")
    if name != "folder" or not sep:
        return
    if not Path(root).expanduser().is_dir():
        raise ModelSpecError(f"--model {model!r}: {Path(root).expanduser()} is not a directory; pass --model "
                             "folder:DIR with the pre-generated assets named <case_id>.glb (or "
                             "<case_id>_<sample>.<ext>)")
    from mme3dr.models.folder import no_match_message

    message = no_match_message(root, list(keys))
    if message is not None:
        raise ModelSpecError(message)
