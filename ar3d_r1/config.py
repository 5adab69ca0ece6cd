"""Typed configs of the SFT warm start and the Hi-GRPO trainer, in TRL's style.

One dataclass is at once the Python API, the YAML file (:func:`load_config`, :func:`save_config`) and the
command line (``ar3d-r1 train --preset tiny-cpu --learning_rate 0 --max_steps 20``): every field's
``help`` metadata is its flag's help text (parsed by ``transformers.HfArgumentParser``, as TRL does).

Presets (:data:`PRESETS`, their values in ``ar3d_r1/config_presets.py``):

- ``paper``: the AR3D-R1 run (Tang et al. 2025, §5 and paper-facts.md): lr 1e-6, β 0.01, G 8, batch 1
  per device on 8 GPUs, gradient accumulation 2, 1,200 steps, λ 1, ShapeLLM-Omni policy, 1,024 mesh
  tokens per shape. The paper gives no clip range: ε_low 0.2 / ε_high 0.28 are DAPO's (Yu et al. 2025).
  Its rewards are the VLM ensembles served over the OpenAI API (``--reward_servers FILE.yaml``) on
  captions the user gives (``--prompts_file``; the paper's ~8,400 training captions are not released).
- ``3dgen-r1``: the authors' released one-step trainer (3DGen-R1's ``run_grpo_3d.sh``; docs/training.md):
  reasoning then mesh turn, HPS + UnifiedReward-2.0 on the ``video6`` views, lr 1e-6, β 0.01, G 8, T 1.0,
  1 prompt per process per micro-step, accumulation 2, 900 steps, bf16, vision tower + ``lm_head`` frozen.
- ``tiny-cpu``: the CPU reference pipeline (design.md §6): a tiny VQVAE and a tiny Qwen2.5-VL-class
  policy built here, geometric rewards, minutes on 2 cores.

Batch semantics follow trl: ``per_device_train_batch_size`` counts completions (not prompts); one
optimizer step consumes ``per_device_train_batch_size × gradient_accumulation_steps × processes``
completions, i.e. that divided by ``num_generations`` prompts (paper: 1 × 2 × 8 = 16 = 2 prompts × 8).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ar3d_r1.config_presets import PRESETS
from ar3d_r1.config_ranges import NONEMPTY, RANGES, WHY, check_values, in_range  # noqa: F401 (re-exported)


def _f(default: Any, help: str, **kw) -> Any:
    return field(default=default, metadata={"help": help, **kw})


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
    overwrite_output_dir: bool = _f(False, "Replace a policy already in output_dir (refused otherwise: a "
                                           "train run may have been made from it).")

    def __post_init__(self) -> None:
        check_values(self)


@dataclass
class HiGRPOConfig:
    """Everything a Hi-GRPO (or one-step GRPO / DAPO / Dr.GRPO / GSPO ablation) run reads."""

    # --- inputs and outputs
    output_dir: str = _f("runs/tiny-cpu/train", "Run directory: checkpoints, metrics.jsonl, TensorBoard.")
    policy: str = _f("runs/tiny-cpu/sft", "Policy directory or hub id (the SFT output for tiny-cpu).")
    vqvae: str = _f("runs/vqvae-tiny", "VQVAE directory or hub id.")
    task: str = _f("geometry", "Reward task: 'geometry' (procedural prompts, geometric rewards), 'vlm' (the "
                   "paper's served rewards) or 'hps-unified2' (the authors' released trainer's HPS + "
                   "UnifiedReward-2.0 sum, ar3d_r1/rewards/authors.py).")
    num_prompts: int = _f(16, "Procedural prompts (task 'geometry').")
    prompts_file: str = _f("", "Captions file (tasks 'vlm', 'hps-unified2'): .txt one a line, .jsonl (a JSON "
                           "string or an object with caption/prompt/text), .json (a JSON list of those, e.g. "
                           "the authors' {prompt, task_type, category} objects) or .csv with a caption/"
                           "prompt/text column.")
    prompt_seed: int = _f(0, "Seed of the procedural prompt set (must match the SFT's).")
    # --- the method
    two_step: bool = _f(True, "Hi-GRPO's two-step rollout; False trains one step (plain GRPO-family). "
                        "Must be true with rollout_style 'reasoning-then-mesh' (both turns are trained).")
    rollout_style: str = _f("hi-grpo", "'hi-grpo': our turns (two_step says one or two); 'reasoning-then-"
                            "mesh': the authors' released trainer: the reasoning prompt -> a reasoning text, "
                            "then '{prompt}. {reasoning}' + <mesh-start> -> mesh tokens "
                            "(ar3d_r1/rollout/one_step.py).")
    reasoning_prompt_file: str = _f("", "Reasoning prompt template with one '{}' for the caption "
                                    "(rollout_style 'reasoning-then-mesh'); empty: ours, shipped in ar3d_r1/"
                                    "rollout/reasoning_prompt.txt. Point it at the authors' "
                                    "data/prompt/3d_reasoning_prompt.txt for theirs.")
    reasoning_system_prompt: str = _f("You turn a description of an object into a 3D model.",
                                      "System message of the reasoning turn (rollout_style "
                                      "'reasoning-then-mesh'); empty: none.")
    max_mesh_tokens: int = _f(0, "Most new tokens of the mesh turn (rollout_style 'reasoning-then-mesh'); "
                              "0: the segment's length + 2.")
    mesh_pad: str = _f("error", "A short or unterminated mesh segment: 'error' (a failed sample) or 'repeat' "
                       "its last code up to the VQVAE's length (the authors' parser).")
    frozen_modules: str = _f("", "Comma-separated parameter-name substrings that are not trained (the "
                             "authors freeze visual,vision_tower,...,lm_head); empty: train everything.")
    algorithm: str = _f("hi-grpo", "Loss switches preset: hi-grpo, grpo, dapo, dr-grpo, gspo (ar3d_r1.loss); "
                        "the flag sets that method's ε, β, level, aggregation, std and dynamic sampling, "
                        "and other flags override them.")
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
    max_refill_rounds: int = _f(2, "Extra generation rounds 'refill' may spend to fill a batch with "
                                "informative groups (verl's filter_groups.max_num_gen_batches − 1).")
    max_skipped_steps: int = _f(10, "Consecutive steps in which no token carries signal (nothing updated) "
                                "after which the run stops with a message (0: never).")
    malformed_reward: str = _f("zero", "A failed reward (malformed mesh, no views, a raising reward "
                               "function) scores 'zero' or is 'mask'ed out; 'half-column' (task "
                               "'hps-unified2', the authors'): no views scores 0 and a raising reward "
                               "function fills its whole column with 0.5.")
    num_iterations: int = _f(1, "μ: gradient steps per generated batch (>1 is off-policy).")
    # --- loss and advantage switches the authors' released trainer sets otherwise (docs/training.md)
    advantage_mode: str = _f("per-step", "'per-step': Hi-GRPO's A1 (R_high + λ·R_low) and A2 (R_low); "
                             "'shared': one advantage per sample, the group z-score of R_low (the final "
                             "mesh's reward), for every segment (the authors' trainer).")
    loss_segments: str = _f("sum", "'sum': L = L1 + L2, each aggregated over its own positions (Hi-GRPO); "
                            "'joint': one aggregate over [step 1 ; step 2] concatenated (needs "
                            "advantage_mode 'shared'; the authors' trainer).")
    loss_normaliser: str = _f("batch", "'batch': the aggregate's denominator spans the whole step on every "
                              "process (trl's num_items_in_batch); 'micro-batch': each micro-batch is "
                              "normalised by its own counts and the micro-batches are averaged (the authors' "
                              "trainer: their local batch).")
    mesh_mask: str = _f("eos", "Mask of the final segment: 'eos' (its tokens up to the stop token) or 'all' "
                        "(every position up to the longest completion of its group, post-stop padding "
                        "included: the authors' ones_like).")
    clip_ratio: bool = _f(True, "Clip the importance ratio to [1 − ε_low, 1 + ε_high]; False: ρ·Â unclipped "
                          "(the authors' trainer). On-policy (μ = 1) ρ ≡ 1 and both agree.")
    kl_log_ratio_clamp: float = _f(0.0, "Clamp ref − logp to ±this before k3's exponential (0: off, the "
                                   "paper; verl: 20).")
    kl_value_clamp: float = _f(0.0, "Clamp each token's k3 to ±this (0: off, the paper; verl: 10).")
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
    render_size: int = _f(512, "Pixel size of the reward renders.")
    reward_rig: str = _f("reward6", "Camera rig of the reward views (mme3dr.render.RIGS): 'reward6' (the "
                         "paper's) or 'video6' (the frames the authors' trainer picks from its orbit video).")
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
            "task": (self.task, ("geometry", "vlm", "hps-unified2")),
            "rollout_style": (self.rollout_style, ("hi-grpo", "reasoning-then-mesh")),
            "mesh_pad": (self.mesh_pad, ("error", "repeat")),
            "reward_rig": (self.reward_rig, ("reward6", "video6")),
            "scale_rewards": (self.scale_rewards, ("unbiased", "population", "none")),
            "dynamic_sampling": (self.dynamic_sampling, ("off", "mask", "refill")),
            "malformed_reward": (self.malformed_reward, ("zero", "mask", "half-column")),
            "mixed_precision": (self.mixed_precision, ("", "no", "fp16", "bf16")),
            "rollout_backend": (self.rollout_backend, ("hf", "server")),
            "rollout_profile": (self.rollout_profile, ("vllm", "transformers")),
            "advantage_mode": (self.advantage_mode, ("per-step", "shared")),
            "loss_segments": (self.loss_segments, ("sum", "joint")),
            "loss_normaliser": (self.loss_normaliser, ("batch", "micro-batch")),
            "mesh_mask": (self.mesh_mask, ("eos", "all")),
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
        if self.rollout_style == "reasoning-then-mesh" and not self.two_step:
            raise ValueError("two_step must be true with rollout_style 'reasoning-then-mesh': both of its "
                             "turns (the reasoning and the mesh) are trained")
        if self.loss_segments == "joint" and self.advantage_mode != "shared":
            raise ValueError("loss_segments 'joint' needs advantage_mode 'shared': one aggregate over both "
                             "segments takes one advantage per sample")

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


#: Learning-rate schedules a run may name (``transformers.get_scheduler`` types; one step per optimizer step).
LR_SCHEDULES = ("constant", "constant_with_warmup", "linear", "cosine")

def preset(name: str, kind: str = "train", **overrides) -> HiGRPOConfig | SFTConfig:
    """The ``kind`` ("train" or "sft") config of preset ``name``, with ``overrides`` applied."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    cls = HiGRPOConfig if kind == "train" else SFTConfig
    return cls(**{**PRESETS[name][kind], **overrides})


def config_yaml(config: HiGRPOConfig | SFTConfig) -> str:
    """``config`` as YAML text, ``{kind: train|sft, fields...}`` in field order (what :func:`load_config`
    reads; ``ar3d-r1 train --print-config`` prints it)."""
    kind = "train" if isinstance(config, HiGRPOConfig) else "sft"
    return yaml.safe_dump({"kind": kind, **dataclasses.asdict(config)}, sort_keys=False)


def save_config(config: HiGRPOConfig | SFTConfig, path: str | Path) -> Path:
    """Write ``config`` as YAML (:func:`config_yaml`); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config_yaml(config), "utf-8")
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
    if isinstance(config, HiGRPOConfig) and config.algorithm != getattr(base, "algorithm", config.algorithm):
        # --algorithm NAME sets that method's loss switches; the other flags given still override them
        return parse_args(cls, args, base.with_algorithm(config.algorithm))
    return config
