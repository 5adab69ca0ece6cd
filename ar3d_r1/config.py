"""Typed configs of the SFT warm start and the Hi-GRPO trainer, in TRL's style.

One dataclass is at once the Python API, the YAML file (:func:`load_config`, :func:`save_config`) and the
command line (``ar3d-r1 train --preset tiny-cpu --learning_rate 0 --max_steps 20``): every field's
``help`` metadata is its flag's help text (parsed by ``transformers.HfArgumentParser``, as TRL does).

Presets (:data:`PRESETS`):

- ``paper``: the AR3D-R1 run (Tang et al. 2025, §5 and paper-facts.md): lr 1e-6, β 0.01, G 8, batch 1
  per device on 8 GPUs, gradient accumulation 2, 1,200 steps, λ 1, ShapeLLM-Omni policy, 1,024 mesh
  tokens per shape. The paper gives no clip range: ε_low 0.2 / ε_high 0.28 are DAPO's (Yu et al. 2025).
  Its rewards are the VLM ensembles served over the OpenAI API (``--reward_servers FILE.yaml``) on
  captions the user gives (``--prompts_file``; the paper's ~8,400 training captions are not released).
- ``tiny-cpu``: the CPU reference pipeline (design.md §6): a tiny VQVAE and a tiny Qwen2.5-VL-class
  policy built here, geometric rewards, minutes on 2 cores.

Batch semantics follow trl: ``per_device_train_batch_size`` counts completions (not prompts); one
optimizer step consumes ``per_device_train_batch_size × gradient_accumulation_steps × processes``
completions, i.e. that divided by ``num_generations`` prompts (paper: 1 × 2 × 8 = 16 = 2 prompts × 8).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


def _f(default: Any, help: str, **kw) -> Any:
    return field(default=default, metadata={"help": help, **kw})


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


@dataclass
class SFTConfig:
    """The supervised warm start: prompt → (plan, target mesh tokens), for both rollout steps."""

    output_dir: str = _f("runs/tiny-cpu/sft", "Where the warm-started policy is written.")
    policy: str = _f("", "Policy directory or hub id to start from; empty: build a tiny policy here.")
    vqvae: str = _f("runs/vqvae-tiny", "Fitted VQVAE directory (from `ar3d-r1 vqvae fit`).")
    num_prompts: int = _f(16, "Procedural prompts in the task's training set.")
    prompt_seed: int = _f(0, "Seed of the procedural prompt set.")
    hidden_size: int = _f(64, "Hidden size of a tiny policy built here.")
    num_layers: int = _f(2, "Layers of a tiny policy built here.")
    learning_rate: float = _f(3e-3, "AdamW learning rate.")
    max_steps: int = _f(300, "Optimizer steps.")
    batch_size: int = _f(16, "Sequences per step.")
    seed: int = _f(0, "Seed of the policy initialisation and the batch order.")
    threads: int = _f(0, "torch CPU threads (0: torch's default).")
    log_every: int = _f(20, "Steps between log lines.")

    def __post_init__(self) -> None:
        check_values(self)


@dataclass
class HiGRPOConfig:
    """Everything a Hi-GRPO (or one-step GRPO / DAPO / Dr.GRPO / GSPO ablation) run reads."""

    # --- inputs and outputs
    output_dir: str = _f("runs/tiny-cpu/train", "Run directory: checkpoints, metrics.jsonl, TensorBoard.")
    policy: str = _f("runs/tiny-cpu/sft", "Policy directory or hub id (the SFT output for tiny-cpu).")
    vqvae: str = _f("runs/vqvae-tiny", "VQVAE directory or hub id.")
    task: str = _f("geometry", "Reward task: 'geometry' (procedural prompts, geometric rewards) or 'vlm'.")
    num_prompts: int = _f(16, "Procedural prompts (task 'geometry').")
    prompts_file: str = _f("", "Captions file (task 'vlm'): .txt one a line, .jsonl (a JSON string or an "
                           "object with caption/prompt/text) or .csv with a caption/prompt/text column.")
    prompt_seed: int = _f(0, "Seed of the procedural prompt set (must match the SFT's).")
    # --- the method
    two_step: bool = _f(True, "Hi-GRPO's two-step rollout; False trains one step (plain GRPO-family).")
    algorithm: str = _f("hi-grpo", "Loss switches preset: hi-grpo, grpo, dapo, dr-grpo, gspo (ar3d_r1.loss).")
    lam: float = _f(1.0, "λ: step 1 trains on R_high + λ·R_low (paper: 1.0).")
    beta: float = _f(0.01, "KL coefficient β (k3 estimator).")
    epsilon_low: float = _f(0.2, "Clip ε_low (DAPO's value; the paper gives none).")
    epsilon_high: float = _f(0.28, "Clip ε_high (DAPO's value; the paper gives none).")
    level: str = _f("token", "Importance ratio per 'token' (GRPO) or 'sequence' (GSPO).")
    aggregation: str = _f("token-mean", "token-mean | seq-mean-token-mean | seq-sum-norm.")
    scale_rewards: str = _f("unbiased", "Group std: unbiased | population | none (Dr.GRPO).")
    adv_eps: float = _f(1e-4, "ε in the advantage denominator (paper: 1e-4).")
    dynamic_sampling: str = _f("mask", "DAPO dynamic sampling: off | mask | refill.")
    dynamic_sampling_tol: float = _f(1e-6, "Reward spread at or below which a group counts as constant.")
    max_refill_rounds: int = _f(2, "Extra generation rounds 'refill' may spend to fill a batch.")
    malformed_reward: str = _f("zero", "A malformed mesh segment scores 'zero' or is 'mask'ed out.")
    num_iterations: int = _f(1, "μ: gradient steps per generated batch (>1 is off-policy).")
    # --- optimisation
    learning_rate: float = _f(1e-6, "AdamW learning rate.")
    lr_scheduler_type: str = _f("constant", "LR schedule (transformers.get_scheduler): constant, "
                                "constant_with_warmup, linear, cosine. The paper gives none.")
    warmup_steps: int = _f(0, "Optimizer steps of linear LR warm-up from 0 (the *_with_warmup, linear and "
                           "cosine schedules).")
    weight_decay: float = _f(0.0, "AdamW weight decay.")
    max_grad_norm: float = _f(1.0, "Gradient clipping norm.")
    max_steps: int = _f(1200, "Optimizer steps.")
    num_generations: int = _f(8, "G, samples per prompt.")
    per_device_train_batch_size: int = _f(1, "Completions per device per micro-step (trl's meaning).")
    gradient_accumulation_steps: int = _f(2, "Micro-steps per optimizer step.")
    seed: int = _f(0, "Seed of sampling and prompt order.")
    # --- generation
    temperature: float = _f(0.7, "Sampling temperature (log-probs are taken at it too).")
    top_k: int = _f(8192, "Top-k sampling (0: off).")
    top_p: float = _f(0.7, "Nucleus sampling.")
    max_plan_tokens: int = _f(256, "Most tokens of a reasoning plan before the mesh segment.")
    constrain: bool = _f(False, "Sample through the mesh grammar (tests, dry runs; not the paper's).")
    logprob_chunk: int = _f(1024, "Positions per LM-head chunk when recomputing log-probs.")
    # --- rewards
    render_size: int = _f(512, "Pixel size of the reward6 renders.")
    reward_servers: str = _f("", "YAML file of reward-model endpoints (task 'vlm').")
    # --- logging and checkpoints
    log_every: int = _f(1, "Steps between metric records.")
    save_steps: int = _f(100, "Steps between checkpoints (0: only at the end).")
    threads: int = _f(0, "torch CPU threads (0: torch's default).")
    dry_run: bool = _f(False, "Run every code path of this config on tiny stand-ins for 2 steps.")
    # --- at scale (issue 17: ar3d_r1/engine/distributed.py, engine/checkpoint.py, rollout/backends.py)
    resume: bool = _f(False, "Continue from the latest complete checkpoint in output_dir (none: fresh).")
    overwrite_output_dir: bool = _f(False, "Start over in an output_dir that holds a run: its metrics, "
                                    "checkpoints, final/ and logs are deleted first (else refused).")
    mixed_precision: str = _f("", "no | fp16 | bf16; empty: `accelerate launch --mixed_precision`'s.")
    rollout_backend: str = _f("hf", "Rollout engine: 'hf' (generate in process) or 'server' (a server).")
    rollout_url: str = _f("", "Rollout server root URL (rollout_backend 'server').")
    rollout_model: str = _f("", "Model id the rollout server serves (rollout_backend 'server').")
    rollout_profile: str = _f("vllm", "Rollout server kind: 'vllm' (token-id prompts) or 'transformers'.")
    rollout_weight_sync: bool = _f(True, "Push the policy's weights to a vLLM rollout server each rollout.")

    def __post_init__(self) -> None:
        from ar3d_r1.loss import AGGREGATIONS, ALGORITHMS, LEVELS

        check_values(self)
        checks = {
            "algorithm": (self.algorithm, tuple(ALGORITHMS)), "level": (self.level, LEVELS),
            "aggregation": (self.aggregation, AGGREGATIONS),
            "lr_scheduler_type": (self.lr_scheduler_type, LR_SCHEDULES),
            "task": (self.task, ("geometry", "vlm")),
            "scale_rewards": (self.scale_rewards, ("unbiased", "population", "none")),
            "dynamic_sampling": (self.dynamic_sampling, ("off", "mask", "refill")),
            "malformed_reward": (self.malformed_reward, ("zero", "mask")),
            "mixed_precision": (self.mixed_precision, ("", "no", "fp16", "bf16")),
            "rollout_backend": (self.rollout_backend, ("hf", "server")),
            "rollout_profile": (self.rollout_profile, ("vllm", "transformers")),
        }
        for name, (value, allowed) in checks.items():
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if not self.policy.strip():
            raise ValueError("policy must not be empty: a policy directory or hub id (tiny-cpu: the SFT "
                             "output)")
        if self.rollout_backend == "server" and not (self.rollout_url and self.rollout_model):
            raise ValueError("rollout_backend 'server' needs --rollout_url (the server root) and "
                             "--rollout_model (the id it serves, as GET /v1/models lists it)")
        if self.resume and self.overwrite_output_dir:
            raise ValueError("resume and overwrite_output_dir exclude each other: continue the run in "
                             "output_dir or start it over, not both")

    def prompts_per_step(self, num_processes: int = 1) -> int:
        """Prompts per optimizer step over all processes; raises ValueError unless the completions
        (``per_device_train_batch_size × gradient_accumulation_steps × processes``) split into groups."""
        total = self.per_device_train_batch_size * self.gradient_accumulation_steps * num_processes
        if total % self.num_generations:
            raise ValueError(
                f"{total} completions per step (per_device_train_batch_size × gradient_accumulation_steps × "
                f"{num_processes} processes) is not a multiple of num_generations = {self.num_generations}"
            )
        return total // self.num_generations

    def off_policy(self) -> bool:
        """True when the weights move between generating a batch and scoring it (μ > 1), so the old
        log-probs must be computed explicitly instead of taken as ``logp.detach()``."""
        return self.num_iterations > 1

    def with_algorithm(self, name: str) -> HiGRPOConfig:
        """A copy with the loss switches of ``ar3d_r1.loss.ALGORITHMS[name]``."""
        from ar3d_r1.loss import ALGORITHMS

        s = ALGORITHMS[name]
        return dataclasses.replace(
            self, algorithm=name, epsilon_low=s.eps_low, epsilon_high=s.eps_high, beta=s.beta, level=s.level,
            aggregation=s.aggregation, scale_rewards=s.std, dynamic_sampling=s.dynamic_sampling or "off",
        )


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


def check_values(config: HiGRPOConfig | SFTConfig) -> None:
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


#: Learning-rate schedules a run may name (``transformers.get_scheduler`` types; one step per optimizer step).
LR_SCHEDULES = ("constant", "constant_with_warmup", "linear", "cosine")

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {
        "sft": {},  # ShapeLLM-Omni is already instruction-tuned; no warm start
        "train": dict(
            output_dir="runs/paper/train", policy="yejunliang23/ShapeLLM-7B-omni",
            vqvae="yejunliang23/3DVQVAE",
            task="vlm", learning_rate=1e-6, beta=0.01, num_generations=8, per_device_train_batch_size=1,
            gradient_accumulation_steps=2, max_steps=1200, lam=1.0, epsilon_low=0.2, epsilon_high=0.28,
            temperature=0.7, top_k=8192, top_p=0.7, render_size=512, save_steps=100,
        ),
    },
    "tiny-cpu": {
        # One torch thread: a tiny model's ops are too small to split, and on a shared 2-core machine two
        # threads thrash (measured at load 8: generation 14.9 s vs 1.4 s, an SFT step 3.0 s vs 0.6 s).
        # The warm start sees five prompts; Hi-GRPO then trains on the first of them for 80 steps (one
        # prompt x G 16 a step): with five prompts, 40-80 steps on 2 cores did not lift the reward by
        # 3 standard errors. G 16 and a 30-step linear warm-up: at a constant lr the policy gained most
        # of its reward within the first 5 steps (inside the first-10 window the proof compares), and
        # G 8's step means were too noisy (seeds 0-2 failed with z 0.55-2.43; with both changes z 5.4 and
        # 7.9; docs/training.md, "The CPU reference run").
        "sft": dict(output_dir="runs/tiny-cpu/sft", vqvae="runs/vqvae-tiny", threads=1, num_prompts=5,
                    prompt_seed=1, max_steps=100),
        "train": dict(
            output_dir="runs/tiny-cpu/train", policy="runs/tiny-cpu/sft", vqvae="runs/vqvae-tiny", threads=1,
            task="geometry", num_prompts=1, prompt_seed=1, learning_rate=1e-4,
            lr_scheduler_type="constant_with_warmup", warmup_steps=30, beta=0.01, num_generations=16,
            per_device_train_batch_size=4, gradient_accumulation_steps=4, max_steps=80, lam=1.0,
            temperature=0.7, top_k=0, top_p=1.0,
            max_plan_tokens=32, render_size=64, save_steps=0, logprob_chunk=512,
        ),
    },
}


def preset(name: str, kind: str = "train", **overrides) -> HiGRPOConfig | SFTConfig:
    """The ``kind`` ("train" or "sft") config of preset ``name``, with ``overrides`` applied."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    cls = HiGRPOConfig if kind == "train" else SFTConfig
    return cls(**{**PRESETS[name][kind], **overrides})


def save_config(config: HiGRPOConfig | SFTConfig, path: str | Path) -> Path:
    """Write ``config`` as YAML (``{kind: ..., fields...}``); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    kind = "train" if isinstance(config, HiGRPOConfig) else "sft"
    path.write_text(yaml.safe_dump({"kind": kind, **dataclasses.asdict(config)}, sort_keys=False), "utf-8")
    return path


class ConfigError(ValueError):
    """A config file, flag or value is invalid; the message (one line) names the file, flag or field."""


def load_config(path: str | Path, base: HiGRPOConfig | SFTConfig | None = None) -> HiGRPOConfig | SFTConfig:
    """Read a YAML written by :func:`save_config` (or by hand). With ``base`` (a preset), the file's keys
    are laid over it and every other field keeps the base's value (``--config`` on top of ``--preset``);
    without, they are laid over the dataclass defaults.

    Raises:
        ConfigError: no such file, a directory, not YAML, not a mapping, a ``kind:`` other than the
            base's, unknown keys, or an invalid value (the message starts with the path).
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a directory, not a YAML config file")
    try:
        data = yaml.safe_load(path.read_text("utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not a readable YAML file ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file is a mapping of fields, got {type(data).__name__}")
    kind = data.pop("kind", None)
    if kind not in (None, "train", "sft"):
        raise ConfigError(f"{path}: kind must be 'train' or 'sft', got {kind!r}")
    cls = HiGRPOConfig if (kind or "train") == "train" else SFTConfig
    if base is not None and kind is not None and not isinstance(base, cls):
        raise ConfigError(f"{path}: a {cls.__name__} file (its 'kind:' key), and this command reads a "
                          f"{type(base).__name__}")
    cls = type(base) if base is not None else cls
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown {cls.__name__} fields {unknown}; known: {sorted(known)}")
    try:
        return dataclasses.replace(base, **data) if base is not None else cls(**data)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from None


def parse_args(cls: type, args: list[str], base: HiGRPOConfig | SFTConfig) -> HiGRPOConfig | SFTConfig:
    """Apply ``--field value`` flags (HfArgumentParser, as trl's scripts) on top of ``base``.

    Raises:
        ConfigError: an unknown flag (with the closest field name), a value of the wrong type, or a value
            the config refuses; the message names the flag and the value, on one line.
    """
    import difflib

    from transformers import HfArgumentParser

    class Parser(HfArgumentParser):
        def error(self, message):  # argparse would print the whole usage and exit
            # "argument --learning_rate/--learning-rate: ..." -> "--learning_rate: ..."
            raise ConfigError(re.sub(r"^argument (--\w+)(/--[\w-]+)*", r"\1", message))

    parser = Parser(cls, allow_abbrev=False)
    parser.set_defaults(**dataclasses.asdict(base))
    names = [f.name for f in dataclasses.fields(cls)]
    try:
        config, rest = parser.parse_args_into_dataclasses(args=args, return_remaining_strings=True,
                                                          look_for_args_file=False)
    except ConfigError:
        raise
    except ValueError as exc:  # __post_init__: the message starts with the field's name
        name = str(exc).split(" ", 1)[0]
        flag = f"--{name}"
        at = len(args) - 1 - args[::-1].index(flag) if flag in args else len(args)  # the last one counts
        if at + 1 < len(args):
            raise ConfigError(f"{flag} {args[at + 1]}: {exc}") from None
        raise ConfigError(str(exc)) from None
    for token in rest:
        if token.startswith("--"):
            close = difflib.get_close_matches(token[2:].split("=")[0].replace("-", "_"), names, n=1)
            hint = f" (did you mean --{close[0]}?)" if close else ""
            raise ConfigError(f"unknown flag {token}{hint}; every config field is a flag: see --help-fields")
        raise ConfigError(f"unexpected argument {token!r}: flags take the form --field value")
    return config
