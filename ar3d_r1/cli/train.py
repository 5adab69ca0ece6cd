"""``ar3d-r1 sft`` and ``ar3d-r1 train``: the warm start and the Hi-GRPO trainer on the command line.

Both take ``--preset`` (``tiny-cpu``, ``paper``, ``3dgen-r1``), an optional ``--config FILE.yaml`` on top of
it, and then any field of the config as a flag, TRL style (``--learning_rate 0 --max_steps 20``;
``--help-fields`` lists them). ``train --dry-run`` runs every code path of the chosen preset for 2 steps on
tiny stand-ins (:mod:`ar3d_r1.cli.dry_run`):
a random tiny policy and VQVAE built offline, sampled through the mesh grammar so its shapes are
well-formed. For the paper preset (``task vlm``) the served rewards keep their real path: a tiny
Qwen2.5-VL built offline is served by a ``transformers serve`` process the dry run starts and stops,
every reward request goes through the real client and parsers, HPS runs in process on a tiny random
open_clip, and the captions are a few built-in ones (:mod:`ar3d_r1.rewards.stand_ins`). The served
model's weights are set so that it writes one fixed reply that parses under every template: the served
rewards are constants and only HPS tells the samples apart. The summary printed at the end says so,
with the request counts.

Mistakes a user can make (a flag, a file, a missing input, a down server, a directory holding another
run or in use by one, a step that is not finite, a full disk) are printed as one line, ``error: ...``,
naming the flag, file or key and what to do, with exit status 2 for flags and config values and 1
otherwise; no traceback (:func:`one_line_errors`). Before anything loads, ``train`` checks in this
order: every config value (ranges, ar3d_r1/config_ranges.py), what the user must provide (the tiny-cpu
inputs, the served tasks' files: ``vlm``, ``hps-unified2``), the batch against the processes, the lock on
``output_dir``, then whether the folder holds a run (:mod:`ar3d_r1.cli.train_guards`). A dry run writes
into ``<preset folder>/dry-run``. SIGTERM exits through the ``finally`` blocks (status 143), so a dry
run's served judge is stopped.

:func:`register` adds the commands to the ``ar3d-r1`` typer app (``ar3d_r1/cli/__init__.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from ar3d_r1.cli.dry_run import SERVED_TASKS, dry_run_stand_ins, dry_run_summary
from ar3d_r1.cli.train_guards import (
    check_batch,
    dry_run_output_dir,
    quiet_libraries,
    run_lock,
    run_summary,
    unread_inputs,
    usable_output_dir,
)

EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}


def one_line(message: object) -> str:
    """``message`` on one line: its lines stripped (and list dashes dropped), joined by spaces."""
    return " ".join(ln.strip().removeprefix("- ") for ln in str(message).splitlines() if ln.strip())


def user_errors() -> tuple[type[Exception], ...]:
    """The project's typed errors that describe a user's mistake or set-up (not a bug): printed as one
    line by :func:`one_line_errors`."""
    from ar3d_r1.config import ConfigError
    from ar3d_r1.engine import NoSignalError
    from ar3d_r1.engine.checkpoint import OutputDirError, ResumeError
    from ar3d_r1.engine.disk_full import CheckpointDiskFullError
    from ar3d_r1.engine.guards import NonFiniteStepError
    from ar3d_r1.policy.loading import PolicyNotFoundError
    from ar3d_r1.policy.vqvae import VQVAEWeightsError
    from ar3d_r1.rewards.endpoints import EndpointsError
    from ar3d_r1.rewards.hps import HPSLoadError
    from ar3d_r1.rewards.vlm_task import RewardServerError
    from ar3d_r1.rollout.one_step import ReasoningPromptError
    from mme3dr.features.weights import WeightsNotFoundError
    from mme3dr.harness.run_state import RunStateError

    return (ConfigError, OutputDirError, ResumeError, PolicyNotFoundError, VQVAEWeightsError, EndpointsError,
            HPSLoadError, RewardServerError, WeightsNotFoundError, MissingInputError, NoSignalError,
            ReasoningPromptError, RunStateError, NonFiniteStepError, CheckpointDiskFullError)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn :func:`user_errors` and ``typer.BadParameter`` into ``error: <one line>`` on stderr and exit
    status 2 (flags, config values) or 1 (everything else)."""
    from ar3d_r1.config import ConfigError

    try:
        yield
    except typer.BadParameter as exc:
        typer.echo(f"error: {one_line(exc.message)}", err=True)
        raise typer.Exit(2) from None
    except user_errors() as exc:
        typer.echo(f"error: {one_line(exc)}", err=True)
        raise typer.Exit(2 if isinstance(exc, ConfigError) else 1) from None
    except OSError as exc:  # a metrics record, a log: a full disk is one line too; anything else a bug
        from mme3dr.output_files import is_disk_full

        if not is_disk_full(exc):
            raise
        typer.echo(f"error: disk full: no space left on the device while writing {exc.filename or 'a file'}; "
                   "free some space, then run the same command with --resume true", err=True)
        raise typer.Exit(1) from None


def existing_policy(config) -> None:
    """Refuse (:class:`~ar3d_r1.engine.checkpoint.OutputDirError`) an ``sft`` whose ``output_dir`` already
    holds a policy, unless ``overwrite_output_dir``: as ``train`` and ``mme3dr evaluate`` refuse a used
    run folder, since a train run may have been made from that policy."""
    from ar3d_r1.engine.checkpoint import OutputDirError

    weights = Path(config.output_dir) / "model.safetensors"
    if weights.is_file() and not config.overwrite_output_dir:
        raise OutputDirError(f"{config.output_dir} already holds an SFT policy ({weights.name}); pass "
                             "--overwrite_output_dir true to train a new one there, or choose another "
                             "--output_dir")


class MissingInputError(FileNotFoundError):
    """A local input another ``ar3d-r1`` command makes (the tiny VQVAE, the SFT policy) is not there;
    the message gives that command."""


def missing_inputs(config, kind: str = "train") -> None:
    """Raise :class:`MissingInputError` when ``config.vqvae`` (or, for ``train``, ``config.policy``) is a
    ``runs/...`` path that does not exist: those are outputs of ``ar3d-r1 vqvae fit`` and ``ar3d-r1 sft``
    (the ``tiny-cpu`` preset's defaults), not hub repo ids, and the message says which command makes them."""
    def absent(value: str) -> bool:
        return bool(value) and Path(value).parts[:1] == ("runs",) and not Path(value).exists()

    found = []
    if absent(config.vqvae):
        found.append(("VQVAE", config.vqvae, "--vqvae",
                      f"`ar3d-r1 vqvae fit --preset tiny-cpu --out {config.vqvae}`"))
    if kind == "train" and absent(config.policy):
        found.append(("policy", config.policy, "--policy",
                      f"`ar3d-r1 sft --preset tiny-cpu --vqvae {config.vqvae} --output_dir {config.policy}`"))
    if found:
        what = " and ".join(f"{name} {value}" for name, value, _, _ in found)
        raise MissingInputError(f"{what} not found: run {' then '.join(c for *_, c in found)} first (or pass "
                                f"{' and '.join(f'{flag} DIR' for _, _, flag, _ in found)})")


def _config(kind: str, preset_name: str, config_file: Path | None, args: list[str]):
    """The config of ``--preset``, with ``--config FILE`` laid over it (the file's keys replace the
    preset's, the rest stay) and then the flags. Raises ConfigError (one line naming the flag, file or
    value)."""
    from ar3d_r1.config import ConfigError, HiGRPOConfig, SFTConfig, load_config, parse_args, preset

    cls = HiGRPOConfig if kind == "train" else SFTConfig
    try:
        base = preset(preset_name, kind)
    except ValueError as exc:
        raise ConfigError(f"--preset {preset_name}: {exc}") from None
    if config_file:
        try:
            base = load_config(config_file, base=base)
        except ConfigError as exc:
            raise ConfigError(f"--config {exc}") from None
    return parse_args(cls, args, base)


def _fields_help(kind: str) -> str:
    from ar3d_r1.config import RANGES, HiGRPOConfig, SFTConfig

    cls = HiGRPOConfig if kind == "train" else SFTConfig
    return "\n".join(f"--{f.name} ({f.type}{', ' + RANGES[f.name] if f.name in RANGES else ''}): "
                     f"{f.metadata.get('help', '')}" for f in dataclasses.fields(cls))


def vlm_inputs(config):
    """``task vlm``'s local inputs, read and checked (no server is asked): ``(endpoints, captions)``.

    Raises:
        typer.BadParameter: fields are empty (all named at once), or a file is missing or invalid (the
            message names the flag, the file and the key or line).
    """
    from ar3d_r1.rewards.endpoints import EndpointsError, load_endpoints
    from ar3d_r1.rewards.vlm_task import load_captions

    needs = {"reward_servers": "the reward-model endpoints YAML; ar3d_r1/rewards/reward_endpoints.yaml is "
                               "the paper set-up and docs/rewards.md serves it",
             "prompts_file": "the training captions: .txt one a line, .jsonl, .json (e.g. the authors' "
                             "data/sampled_prompt.json) or .csv with a caption, prompt or text column; the "
                             "paper's ~8,400 captions are not released"}
    missing = [name for name in needs if not getattr(config, name)]
    if missing:
        what = " and ".join(f"--{n} ({needs[n]})" for n in missing)
        raise typer.BadParameter(f"task {config.task!r} needs {what}", param_hint=f"--{missing[0]}")
    try:
        endpoints = load_endpoints(config.reward_servers)
    except (OSError, EndpointsError) as exc:
        raise typer.BadParameter(f"--reward_servers: {exc}", param_hint="--reward_servers") from None
    try:
        captions = load_captions(config.prompts_file)
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"--prompts_file: {exc}", param_hint="--prompts_file") from None
    return endpoints, captions


def build_vlm_task(config):
    """The ``task vlm`` scorer from ``reward_servers`` and ``prompts_file`` (:func:`vlm_inputs`); the
    servers are checked once (``checking reward servers...`` on stderr; a short fixed timeout,
    ar3d_r1.rewards.endpoints).

    Raises:
        typer.BadParameter: what :func:`vlm_inputs` raises, or an endpoint the task needs is missing.
        ar3d_r1.rewards.vlm_task.RewardServerError: a server is down or does not serve its model (named).
        HPSLoadError, WeightsNotFoundError: HPS cannot load (its device, its checkpoint).
    """
    import os

    from ar3d_r1.rewards.endpoints import CHECK_RETRIES, CHECK_TIMEOUT_S, EndpointsError
    from ar3d_r1.rewards.vlm_task import VLMTask

    endpoints, captions = vlm_inputs(config)
    if os.environ.get("RANK", "0") == "0":
        typer.echo(f"checking reward servers ({len(endpoints.endpoints)} endpoints of "
                   f"{config.reward_servers}: GET /v1/models, {CHECK_TIMEOUT_S:g} s timeout, "
                   f"{CHECK_RETRIES} retry)...", err=True)
    try:
        if config.task == "hps-unified2":
            from ar3d_r1.rewards.authors import HPSUnifiedTask

            return HPSUnifiedTask(endpoints, captions, config.render_size, rig=config.reward_rig,
                                  malformed_reward=config.malformed_reward)
        return VLMTask(endpoints, captions, config.render_size, rig=config.reward_rig)
    except EndpointsError as exc:
        raise typer.BadParameter(f"--reward_servers: {exc}", param_hint="--reward_servers") from None


def build_trainer(config):
    """Load the policy (and its frozen copy as the reference when β ≠ 0), the VQVAE and the task
    (``task vlm``: :func:`build_vlm_task`, first, so a down reward server fails before the policy loads).

    Raises:
        MissingInputError: the ``tiny-cpu`` VQVAE or SFT policy has not been made yet (the message gives
            the command); and what :func:`build_vlm_task`, ``load_vqvae`` and ``load_policy`` raise.
    """
    import torch

    from ar3d_r1.engine.trainer import HiGRPOTrainer
    from ar3d_r1.policy.loading import load_policy
    from ar3d_r1.policy.vqvae import load_vqvae
    from ar3d_r1.rewards.tasks import GeometryTask

    missing_inputs(config)
    if config.rollout_style == "reasoning-then-mesh":  # a bad template fails before anything loads
        from ar3d_r1.rollout.one_step import load_reasoning_prompt

        load_reasoning_prompt(config.reasoning_prompt_file)
    if config.threads:
        torch.set_num_threads(config.threads)
    task = build_vlm_task(config) if config.task in SERVED_TASKS else None
    vqvae = load_vqvae(config.vqvae)
    if task is not None:  # the served tasks render the decoded grids: stand them up as the VQVAE's frame says
        task.render.up_axis = vqvae.config.up_axis
    model, processor = load_policy(config.policy)
    ref = load_policy(config.policy)[0] if config.beta != 0.0 else None
    if task is None:
        task = GeometryTask(config.num_prompts, config.prompt_seed, vqvae.config.resolution,
                            config.render_size)
    return HiGRPOTrainer(config, model, processor, vqvae, task, ref_model=ref)


def register(app: typer.Typer) -> None:
    """Add ``sft`` and ``train`` to ``app``."""

    @app.command("sft", context_settings=EXTRA)
    def sft(
        ctx: typer.Context,
        preset: str = typer.Option("tiny-cpu", "--preset", help="tiny-cpu (the paper policy needs no SFT)."),
        config_file: Path | None = typer.Option(None, "--config", help="YAML config laid over the preset."),
        help_fields: bool = typer.Option(False, "--help-fields", help="List every config flag and exit."),
        verbose: bool = typer.Option(False, "--verbose", help="Keep Hugging Face's own progress bars."),
    ) -> None:
        """Supervised warm start: prompt → plan + target mesh tokens, for both rollout steps.

        Every config field is also a flag (--max_steps 50 --output_dir DIR); --help-fields lists them.
        """
        from rich.console import Console

        from ar3d_r1.engine.sft import run_sft
        from mme3dr.process_lifetime import exit_on_sigterm

        if help_fields:
            typer.echo(_fields_help("sft"))
            raise typer.Exit()
        quiet_libraries(verbose)
        exit_on_sigterm()
        with one_line_errors():
            config = _config("sft", preset, config_file, ctx.args)
            missing_inputs(config, "sft")
            usable_output_dir(config.output_dir)
            existing_policy(config)
            with run_lock(config.output_dir, "sft"):
                out = run_sft(config, console=Console(stderr=True))
        typer.echo(str(out))

    @app.command("train", context_settings=EXTRA)
    def train(
        ctx: typer.Context,
        preset: str = typer.Option("tiny-cpu", "--preset", help="tiny-cpu, paper or 3dgen-r1 (the authors' "
                                                                 "released one-step trainer)."),
        config_file: Path | None = typer.Option(None, "--config", help="YAML config laid over the preset."),
        dry_run: bool = typer.Option(False, "--dry-run", help="2 steps of every code path, tiny stand-ins "
                                     "(in <preset folder>/dry-run unless --output_dir is given)."),
        help_fields: bool = typer.Option(False, "--help-fields", help="List every config flag and exit."),
        print_config: bool = typer.Option(False, "--print-config",
                                          help="Print the resolved config (preset, --config, flags) as YAML "
                                               "and exit."),
        verbose: bool = typer.Option(False, "--verbose", help="Keep DeepSpeed's and Hugging Face's own "
                                     "messages and progress bars."),
    ) -> None:
        """Hi-GRPO: two-step rollouts, hierarchical rewards, token-level clipped loss + k3 KL.

        Every config field is also a flag, TRL style (--learning_rate 1e-6 --max_steps 20 --output_dir
        DIR); --help-fields lists them all. The paper preset (task vlm) needs --reward_servers FILE.yaml
        (the reward-model endpoints; docs/rewards.md) and --prompts_file FILE (the training captions);
        --dry-run runs it on tiny stand-ins without them. A directory that holds a run needs
        --resume true (continue) or --overwrite_output_dir true (start over); one run at a time holds it.
        """
        if help_fields:
            typer.echo(_fields_help("train"))
            raise typer.Exit()
        from ar3d_r1.engine.checkpoint import OutputDirError, output_dir_problem
        from mme3dr.process_lifetime import exit_on_sigterm

        quiet_libraries(verbose)
        exit_on_sigterm()  # `kill` stops the run through its finally blocks (the dry run's served judge)
        with one_line_errors():
            config = _config("train", preset, config_file, ctx.args)
            dry = dry_run or config.dry_run
            if dry:
                config = dry_run_output_dir(config, preset)
            if print_config:
                from ar3d_r1.config import config_yaml

                typer.echo(config_yaml(config), nl=False)
                raise typer.Exit()
            if config.rollout_style == "reasoning-then-mesh":  # a bad template fails before anything is built
                from ar3d_r1.rollout.one_step import load_reasoning_prompt

                load_reasoning_prompt(config.reasoning_prompt_file)
            unread_inputs(config)  # a flag the task would ignore: a config mistake, named first
            if not dry:  # what the user must provide, before the folder is looked at
                missing_inputs(config)
                if config.task in SERVED_TASKS:
                    vlm_inputs(config)
            check_batch(config, dry)
            usable_output_dir(config.output_dir)
            with run_lock(config.output_dir, "train"):
                problem = output_dir_problem(config.output_dir, resume=config.resume,
                                             overwrite=config.overwrite_output_dir)
                if problem:  # before anything loads or the dry run builds its stand-ins there
                    raise OutputDirError(problem)
                if not dry:
                    trainer = build_trainer(config)
                    final = trainer.train()
                    typer.echo(run_summary(trainer, final), err=True)
                    typer.echo(str(final))
                    return
                with dry_run_stand_ins(config) as stand_in:
                    trainer = build_trainer(stand_in)
                    final = trainer.train()
                summary = dry_run_summary(stand_in, trainer.history, trainer.start_step, len(trainer.frozen))
                typer.echo(summary, err=True)
                typer.echo(str(final))
