"""``ar3d-r1 sft`` and ``ar3d-r1 train``: the warm start and the Hi-GRPO trainer on the command line.

Both take ``--preset`` (``tiny-cpu``, ``paper``), an optional ``--config FILE.yaml`` on top of it, and then
any field of the config as a flag, TRL style (``--learning_rate 0 --max_steps 20``; ``--help-fields``
lists them). ``train --dry-run`` runs every code path of the chosen preset for 2 steps on tiny stand-ins:
a random tiny policy and VQVAE built offline, sampled through the mesh grammar so its shapes are
well-formed, and, for the paper's served VLM rewards, the geometric rewards (no server is needed; the
served rewards are tested against a real server in tests/ar3d_r1/rewards).

:func:`register` adds the commands to the ``ar3d-r1`` typer app (``ar3d_r1/cli.py``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}


def _config(kind: str, preset_name: str, config_file: Path | None, args: list[str]):
    from ar3d_r1.config import HiGRPOConfig, SFTConfig, load_config, parse_args, preset

    try:
        base = load_config(config_file) if config_file else preset(preset_name, kind)
        return parse_args(HiGRPOConfig if kind == "train" else SFTConfig, args, base)
    except (ValueError, SystemExit) as exc:
        raise typer.BadParameter(f"{exc}; see --help-fields for the flags", param_hint="--preset") from None


def _fields_help(kind: str) -> str:
    from ar3d_r1.config import HiGRPOConfig, SFTConfig

    cls = HiGRPOConfig if kind == "train" else SFTConfig
    return "\n".join(f"--{f.name} ({f.type}): {f.metadata.get('help', '')}" for f in dataclasses.fields(cls))


def dry_run_stand_ins(config):
    """The config with the tiny stand-ins of a dry run (module docstring): 2 steps, a tiny VQVAE and
    policy under ``output_dir/stand-ins``, geometric rewards, one process holding the whole global batch
    (gradient accumulation × 8 so per-device batch and G stay the preset's)."""
    import torch

    from ar3d_r1.policy.tiny import build_tiny_policy
    from ar3d_r1.policy.vqvae import VQVAE3D, VQVAEConfig, save_vqvae

    root = Path(config.output_dir) / "stand-ins"
    torch.manual_seed(config.seed)
    vq_cfg = VQVAEConfig.tiny()
    save_vqvae(VQVAE3D(vq_cfg), root / "vqvae")
    build_tiny_policy(root / "policy", codebook_size=vq_cfg.codebook_size, seed=config.seed)
    accum = config.gradient_accumulation_steps * (8 if config.task == "vlm" else 1)
    return dataclasses.replace(config, policy=str(root / "policy"), vqvae=str(root / "vqvae"),
                               task="geometry",
                               max_steps=2, render_size=64, max_plan_tokens=16, num_prompts=4,
                               gradient_accumulation_steps=accum, save_steps=1, top_k=min(config.top_k, 64),
                               constrain=True)


def build_trainer(config):
    """Load the policy (and its frozen copy as the reference when β ≠ 0), the VQVAE and the task."""
    from ar3d_r1.policy.loading import load_policy
    from ar3d_r1.policy.vqvae import load_vqvae
    from ar3d_r1.tasks import GeometryTask
    from ar3d_r1.trainer import HiGRPOTrainer

    if config.task != "geometry":
        raise typer.BadParameter(
            "task 'vlm' (the paper's served reward models, ar3d_r1.rewards, docs/rewards.md) is not "
            "wired into the trainer yet; --dry-run runs every other code path of the paper preset with "
            "geometric rewards",
            param_hint="--task")
    import torch

    if config.threads:
        torch.set_num_threads(config.threads)
    vqvae = load_vqvae(config.vqvae)
    model, processor = load_policy(config.policy)
    ref = load_policy(config.policy)[0] if config.beta != 0.0 else None
    task = GeometryTask(config.num_prompts, config.prompt_seed, vqvae.config.resolution, config.render_size)
    return HiGRPOTrainer(config, model, processor, vqvae, task, ref_model=ref)


def register(app: typer.Typer) -> None:
    """Add ``sft`` and ``train`` to ``app``."""

    @app.command("sft", context_settings=EXTRA)
    def sft(
        ctx: typer.Context,
        preset: str = typer.Option("tiny-cpu", "--preset", help="tiny-cpu (the paper policy needs no SFT)."),
        config_file: Path | None = typer.Option(None, "--config", help="YAML config (save_config's format)."),
        help_fields: bool = typer.Option(False, "--help-fields", help="List every config flag and exit."),
    ) -> None:
        """Supervised warm start: prompt → plan + target mesh tokens, for both rollout steps."""
        from rich.console import Console

        from ar3d_r1.sft import run_sft

        if help_fields:
            typer.echo(_fields_help("sft"))
            raise typer.Exit()
        config = _config("sft", preset, config_file, ctx.args)
        out = run_sft(config, console=Console(stderr=True))
        typer.echo(str(out))

    @app.command("train", context_settings=EXTRA)
    def train(
        ctx: typer.Context,
        preset: str = typer.Option("tiny-cpu", "--preset", help="tiny-cpu or paper."),
        config_file: Path | None = typer.Option(None, "--config", help="YAML config (save_config's format)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="2 steps of every code path, tiny stand-ins."),
        help_fields: bool = typer.Option(False, "--help-fields", help="List every config flag and exit."),
    ) -> None:
        """Hi-GRPO: two-step rollouts, hierarchical rewards, token-level clipped loss + k3 KL."""
        if help_fields:
            typer.echo(_fields_help("train"))
            raise typer.Exit()
        config = _config("train", preset, config_file, ctx.args)
        if dry_run or config.dry_run:
            config = dry_run_stand_ins(config)
        final = build_trainer(config).train()
        typer.echo(str(final))
