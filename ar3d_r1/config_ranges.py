"""The value checks of :mod:`ar3d_r1.config`'s dataclasses: every numeric field's range, every field's type.

:data:`RANGES` holds the range of every numeric field of ``SFTConfig`` and ``HiGRPOConfig`` (the same name
means the same thing in both; ``tests/ar3d_r1/test_config.py`` fails when a numeric field has none), and
:func:`check_values`, which both configs' ``__post_init__`` call, enforces it. This module imports nothing of
``ar3d_r1`` (``ar3d_r1.config`` imports it and re-exports its names).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

#: The range of every numeric field of both configs (the same name means the same thing in both), which
#: :func:`check_values` enforces: ``">= a"``, ``"> a"`` or an interval ``"[a, b]"`` / ``"(a, b]"``.
RANGES: dict[str, str] = {
    "num_prompts": ">= 1", "prompt_seed": ">= 0", "hidden_size": ">= 1", "num_layers": ">= 1",
    "learning_rate": ">= 0", "max_steps": ">= 1", "batch_size": ">= 1", "seed": ">= 0", "threads": ">= 0",
    "log_every": ">= 1", "lam": ">= 0", "beta": ">= 0", "epsilon_low": "[0, 1]", "epsilon_high": ">= 0",
    "adv_eps": "> 0", "dynamic_sampling_tol": ">= 0", "max_refill_rounds": ">= 0",
    "num_iterations": ">= 1", "warmup_steps": ">= 0", "weight_decay": ">= 0", "max_grad_norm": "> 0",
    "num_generations": ">= 2", "per_device_train_batch_size": ">= 1",
    "gradient_accumulation_steps": ">= 1", "temperature": "> 0", "top_k": ">= 0", "top_p": "(0, 1]",
    "max_plan_tokens": ">= 1", "logprob_chunk": ">= 1", "render_size": ">= 8", "save_steps": ">= 0",
    # fields the engine's and the 3dgen-r1 preset's branches add (issue 21): a range waits for each
    "max_skipped_steps": ">= 0", "kl_log_ratio_clamp": ">= 0", "kl_value_clamp": ">= 0",
    "max_mesh_tokens": ">= 0",
}
#: Why a range is what it is, where the bound is not obvious (appended to the error).
WHY = {"num_generations": "advantages compare samples of a group"}
#: String fields that may not be empty.
NONEMPTY = ("output_dir", "vqvae")


def in_range(value: float, spec: str) -> bool:
    """Whether ``value`` lies in ``spec`` (:data:`RANGES`' notation)."""
    if spec.startswith((">=", ">")):
        bound = float(spec.lstrip(">= "))
        return value >= bound if spec.startswith(">=") else value > bound
    low, high = (float(x) for x in spec[1:-1].split(","))
    above = value >= low if spec[0] == "[" else value > low
    below = value <= high if spec[-1] == "]" else value < high
    return above and below


def _type_name(f: dataclasses.Field) -> str:
    """``"int"``, ``"float"``, ``"bool"`` or ``"str"``: the annotation's name (HfArgumentParser replaces
    the string annotations of the dataclass's fields by the types themselves)."""
    return f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))


def check_values(config: Any) -> None:
    """Check every field's type and every number's range (:data:`RANGES`), before anything loads.

    YAML reads ``1e-6`` as a string (YAML 1.1 wants a dot): a float field takes a string that ``float()``
    parses, and is set to that float. Raises ValueError, its message starting with the field's name
    (``learning_rate must be a finite number >= 0, got inf``), which :func:`parse_args` turns into one line
    naming the flag.
    """
    for f in dataclasses.fields(config):
        value, kind = getattr(config, f.name), _type_name(f)
        if kind == "float" and isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"{f.name} must be a number, got {value!r}") from None
            setattr(config, f.name, value)
        if kind == "bool" and not isinstance(value, bool):
            raise ValueError(f"{f.name} must be true or false, got {value!r}")
        if kind == "str" and not isinstance(value, str):
            raise ValueError(f"{f.name} must be a string, got {value!r}")
        if kind == "str" and f.name in NONEMPTY and not value.strip():
            raise ValueError(f"{f.name} must not be empty")
        if kind not in ("int", "float"):
            continue
        wrong = isinstance(value, bool) or not isinstance(value, int if kind == "int" else int | float)
        if wrong:
            what = "an integer" if kind == "int" else "a number"
            raise ValueError(f"{f.name} must be {what}, got {value!r}")
        spec = RANGES.get(f.name, "")
        if not math.isfinite(value) or (spec and not in_range(value, spec)):
            what = "an integer" if kind == "int" else "a finite number"
            where = f" {spec}" if spec[:1] in "<>" else f" in {spec}" if spec else ""
            why = f": {WHY[f.name]}" if f.name in WHY else ""
            raise ValueError(f"{f.name} must be {what}{where}, got {value!r}{why}")
