"""Loading the policy: ``Qwen2_5_VLForConditionalGeneration`` and its processor, from a hub id or a local dir.

The paper's policy is ShapeLLM-Omni (``yejunliang23/ShapeLLM-7B-omni``) and AR3D-R1 its Hi-GRPO
fine-tune (``IvanTang/3DGen-R1``); the tiny CPU policy comes from
:func:`ar3d_r1.policy.tiny.build_tiny_policy`. All share the class and the file layout of
``save_pretrained``. When files are missing (no hub here, or ``HF_HUB_OFFLINE=1``),
:class:`PolicyNotFoundError` names them and says where to put them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = [
    "PAPER_POLICY_REPO",
    "AR3D_R1_REPO",
    "PolicyNotFoundError",
    "load_policy",
    "missing_policy_files",
]

PAPER_POLICY_REPO = "yejunliang23/ShapeLLM-7B-omni"
AR3D_R1_REPO = "IvanTang/3DGen-R1"

#: (description, alternatives): a local policy directory needs one file of each group.
REQUIRED_FILES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("model config", ("config.json",)),
    ("weights", ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")),
    ("tokenizer", ("tokenizer.json", "vocab.json")),
    ("tokenizer config", ("tokenizer_config.json",)),
    ("image processor config", ("preprocessor_config.json", "processor_config.json")),
)


class PolicyNotFoundError(FileNotFoundError):
    """The policy's files are missing and cannot be fetched; the message names them and where to put them."""


def missing_policy_files(directory: str | Path) -> list[str]:
    """The file groups a local policy directory lacks, as ``"weights (model.safetensors or ...)"`` strings."""
    d = Path(directory)
    out = []
    for what, names in REQUIRED_FILES:
        if not any((d / n).is_file() for n in names):
            out.append(f"{what} ({' or '.join(names)})")
    index = d / "model.safetensors.index.json"
    if index.is_file():
        import json

        shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        out += [f"weight shard ({s})" for s in shards if not (d / s).is_file()]
    return out


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _hub_message(repo: str, reason: str) -> str:
    needed = "; ".join(f"{what}: {' or '.join(names)}" for what, names in REQUIRED_FILES)
    return (
        f"policy {repo!r} is not available ({reason}). It needs these files ({needed}).\n"
        f"To fix: on a machine with network run `hf download {repo} --local-dir DIR`, copy DIR here and "
        "pass checkpoint=DIR (or put the repo into the Hugging Face cache, $HF_HUB_CACHE)."
    )


def _resolve_dtype(dtype: Any) -> Any:
    import torch

    if dtype is None or dtype == "auto":
        return "auto" if dtype == "auto" else torch.float32
    return getattr(torch, dtype) if isinstance(dtype, str) else dtype


def load_policy(
    source: str | Path,
    *,
    dtype: Any = None,
    device: Any = "cpu",
    attn_implementation: str | None = None,
) -> tuple[Any, Any]:
    """Load ``(model, processor)``: a ``Qwen2_5_VLForConditionalGeneration`` in eval mode and its
    ``AutoProcessor`` (``processor.tokenizer`` holds the mesh tokens).

    ``source``: a local directory written by ``save_pretrained`` (the tiny builder's output, or a
    downloaded checkpoint) or a hub repo id (``yejunliang23/ShapeLLM-7B-omni``, ``IvanTang/3DGen-R1``),
    read from the Hugging Face cache (downloaded only when ``HF_HUB_OFFLINE`` is unset and the hub is
    reachable). ``dtype``: a ``torch.dtype``, its name (``"bfloat16"``) or ``"auto"`` (the checkpoint's);
    ``None`` means float32. ``device``: where to put the model.

    Raises:
        PolicyNotFoundError: files are missing; the message lists them and the download command.
    """
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    path = Path(source).expanduser()
    kwargs: dict[str, Any] = {}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if path.is_dir():
        missing = missing_policy_files(path)
        if missing:
            raise PolicyNotFoundError(
                f"policy directory {path} lacks: {', '.join(missing)}. Put the checkpoint's files there "
                f"(`hf download {PAPER_POLICY_REPO} --local-dir {path}` on a machine with network), or "
                "build a tiny one with ar3d_r1.policy.tiny.build_tiny_policy."
            )
        target: str = str(path)
    else:
        target = str(source)
        if path.exists() or target.count("/") != 1 or target.startswith((".", "/", "~")):
            raise PolicyNotFoundError(
                f"policy source {target!r} is neither a directory nor a hub repo id (owner/name, e.g. "
                f"{PAPER_POLICY_REPO})"
            )
        kwargs["local_files_only"] = _offline()
    try:
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
            target, dtype=_resolve_dtype(dtype), **kwargs)
        processor = AutoProcessor.from_pretrained(target, **{k: v for k, v in kwargs.items()
                                                             if k == "local_files_only"})
    except OSError as exc:
        if path.is_dir():
            raise
        reason = "offline: HF_HUB_OFFLINE is set" if _offline() else f"{type(exc).__name__}: {exc}"
        raise PolicyNotFoundError(_hub_message(target, reason[:500])) from exc
    return model.to(device).eval(), processor


def freeze_parameters(model, substrings: str | list[str]) -> list[str]:
    """Set ``requires_grad False`` on every parameter whose name contains one of ``substrings`` (a list,
    or one comma-separated string as the ``frozen_modules`` config field; empty: none). Returns the frozen
    names. The authors' released trainer freezes ``visual, vision_tower, vision_model, mm_projector,
    multi_modal_projector, vision_resampler, aligner, lm_head`` this way (3DGen-R1 grpo_3d_trainer.py).

    Raises:
        ValueError: none of the substrings matches a parameter (a typo would otherwise train everything
            silently; the authors' list names modules of several architectures, so some match nothing).
    """
    parts = [s.strip() for s in (substrings.split(",") if isinstance(substrings, str) else substrings)]
    parts = [s for s in parts if s]
    names = [n for n, _ in model.named_parameters()]
    frozen = []
    for name, param in model.named_parameters():
        if any(s in name for s in parts):
            param.requires_grad_(False)
            frozen.append(name)
    unmatched = [s for s in parts if not any(s in n for n in names)]
    if unmatched and len(unmatched) == len(parts):
        raise ValueError(f"frozen_modules {unmatched} match no parameter of the policy (names look like "
                         f"{names[:3]})")
    return frozen
