"""What ``ar3d-r1 train`` and ``sft`` check and hold before anything loads, and what ``train`` prints
at the end (issues 25 and 26): the batch splits into groups on this launch's processes
(:func:`check_batch`), a dry run's own folder (:func:`dry_run_output_dir`), the lock on ``output_dir``
(:func:`run_lock`), libraries kept quiet unless ``--verbose`` (:func:`quiet_libraries`), and the
end-of-run summary (:func:`run_summary`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def check_batch(config, dry_run: bool) -> None:
    """The batch settings split into groups of G over the processes of this launch (``WORLD_SIZE``; a
    ``task vlm`` dry run holds 8 processes' batch in one), checked before anything loads. Raises
    ConfigError naming the fields."""
    import os

    from ar3d_r1.config import ConfigError

    processes = 8 if dry_run and config.task == "vlm" else int(os.environ.get("WORLD_SIZE", "1") or 1)
    try:
        config.prompts_per_step(processes)
    except ValueError as exc:
        hint = ("; launch it on more processes (`accelerate launch --num_processes N -m ar3d_r1 train ...`, "
                "docs/training.md) or raise the batch" if "WORLD_SIZE" not in os.environ else "")
        raise ConfigError(f"--num_generations {config.num_generations}: {exc}{hint}") from None


def unread_inputs(config) -> None:
    """ConfigError when a served task's input is given to ``task geometry``, which would ignore it: its
    prompts are procedural (``num_prompts``, ``prompt_seed``) and its rewards are computed here."""
    from ar3d_r1.config import ConfigError

    if config.task != "geometry":
        return
    for flag in ("prompts_file", "reward_servers"):
        if getattr(config, flag):
            raise ConfigError(f"--{flag} is read by the served tasks (--task vlm, hps-unified2) only; task "
                              "'geometry' draws procedural prompts (--num_prompts, --prompt_seed) and scores "
                              f"them itself: drop --{flag} or choose --task vlm")


def dry_run_output_dir(config, preset_name: str):
    """A dry run of a preset writes into ``<the preset's output_dir>/../dry-run`` (``runs/paper/dry-run``)
    unless ``--output_dir`` (or ``--config``) named another folder: never into the real run's folder."""
    from ar3d_r1.config import PRESETS

    default = PRESETS.get(preset_name, {}).get("train", {}).get("output_dir")
    if config.output_dir != default:
        return config
    return dataclasses.replace(config, output_dir=str(Path(default).parent / "dry-run"))


def usable_output_dir(output_dir: str) -> None:
    """Create ``output_dir`` if needed and check that files can be written in it
    (:func:`mme3dr.output_files.prepare_output_dir`); raises ConfigError naming ``--output_dir`` when it is
    a file, lies under one, or cannot be written."""
    from ar3d_r1.config import ConfigError
    from mme3dr.output_files import OutputDirError, prepare_output_dir

    try:
        prepare_output_dir(output_dir, flag="--output_dir")
    except OutputDirError as exc:
        raise ConfigError(str(exc)) from None


@contextmanager
def run_lock(output_dir: str, command: str) -> Iterator[None]:
    """Hold ``output_dir/.lock`` (mme3dr's :class:`~mme3dr.harness.run_state.RunLock`, an ``flock`` the
    kernel drops when the holder dies, even by ``kill -9``) for the block, on the main process only
    (``RANK`` 0): a second run into the same folder is refused with the holder's PID instead of
    interleaving its steps with the first's."""
    import os

    from mme3dr.harness.run_state import RunLock

    if os.environ.get("RANK", "0") != "0":
        yield
        return
    with RunLock(output_dir, command=f"ar3d-r1 {command}",
                 hint="wait for it to finish (then --resume true), or choose another --output_dir"):
        yield


def quiet_libraries(verbose: bool) -> None:
    """Unless ``verbose``: no Hugging Face progress bars (loading and writing weights) and no DeepSpeed
    accelerator warning (its auto-detection warns on every CPU run; naming the device it would find,
    ``DS_ACCELERATOR`` = cuda or cpu, skips the detection). A ``DS_ACCELERATOR`` the user set is kept."""
    import os

    if verbose:
        return
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import torch
    from transformers.utils import logging as hf_logging

    os.environ.setdefault("DS_ACCELERATOR", "cuda" if torch.cuda.is_available() else "cpu")
    hf_logging.disable_progress_bar()


def run_summary(trainer, final: Path) -> str:
    """What a finished ``train`` did, from its metric records (the steps of this invocation and before):
    the mean total reward over the first and last 10 steps, the steps that had no signal (every group's
    rewards equal: dynamic sampling kept no group, so nothing was learned) or were skipped, the failed
    samples (malformed mesh segments out of all generated, failed rewards), and where the curve, metrics
    and checkpoints are."""
    from ar3d_r1.engine.checkpoint import checkpoints

    cfg, history, out = trainer.config, trainer.history, Path(trainer.config.output_dir)
    if not history:
        return f"hi-grpo: no step recorded in {out}"
    rows = (cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps
            * trainer.accelerator.num_processes)
    steps = [r["step"] for r in history]
    window = min(10, len(history))
    first = sum(r["reward/total"] for r in history[:window]) / window
    last = sum(r["reward/total"] for r in history[-window:]) / window
    idle = sum(1 for r in history if r.get("skipped") or (r.get("kept_groups/step1") == 0
                                                          and not r.get("kept_groups/step2")))
    malformed = round(sum(rows * (r.get("step1/malformed", 0) + r.get("step2/malformed", 0))
                          for r in history))
    failed = round(sum(r.get("samples/step1/failed", 0) + r.get("samples/step2/failed", 0) for r in history))
    meshes = 2 if cfg.two_step and cfg.rollout_style == "hi-grpo" else 1  # mesh segments per sample
    saved = ", ".join(p.name for _, p in checkpoints(out)) or "none kept (save_steps 0)"
    lines = [f"hi-grpo: steps {steps[0]}-{steps[-1]} of {cfg.max_steps} in {out}",
             f"  mean total reward (R_high + R_low): first {window} steps {first:.3f}, last {window} steps "
             f"{last:.3f} ({last - first:+.3f})",
             f"  steps with no signal or skipped: {idle} of {len(history)}",
             f"  malformed meshes: {malformed} of {len(history) * rows * meshes} ({len(history)} steps x "
             f"{rows} samples x {meshes} mesh{'es' if meshes > 1 else ''} each); failed rewards: {failed}"
             + (f" (reasons: {out / 'reward_failures.jsonl'})" if (out / "reward_failures.jsonl").exists()
                else ""),
             f"  reward curve {out / 'reward_curve.png'}; metrics {out / 'metrics.jsonl'}; TensorBoard "
             f"{out / 'tb'}",
             f"  checkpoints: {saved}; final policy {final}"]
    return "\n".join(lines)
