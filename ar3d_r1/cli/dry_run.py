"""``ar3d-r1 train --dry-run``: every code path of a preset for 2 steps on tiny stand-ins, and what it
prints at the end (:mod:`ar3d_r1.cli.train` runs it; its docstring says what the stand-ins are).

:func:`dry_run_stand_ins` builds a random tiny policy and VQVAE offline and, for the served tasks
(:data:`SERVED_TASKS`), serves a tiny reward VLM (:mod:`ar3d_r1.rewards.stand_ins`) for the run;
:func:`dry_run_summary` says what the run did and what its rewards mean.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Tasks whose rewards are served (an endpoints file and a captions file; stand-ins in a dry run).
SERVED_TASKS = ("vlm", "hps-unified2")


@contextmanager
def dry_run_stand_ins(config) -> Iterator:
    """Yield the config with the tiny stand-ins of a dry run (module docstring): 2 steps, a tiny VQVAE and
    policy under ``output_dir/stand-ins``, one process holding the whole global batch (gradient
    accumulation × 8 so per-device batch and G stay the preset's) for ``task vlm``, one process's share of
    it (the preset's accumulation) for ``hps-unified2``. For the served tasks the tiny reward VLM is served
    until the block exits, and ``reward_servers`` / ``prompts_file`` point at the stand-ins' (for
    ``hps-unified2`` the captions are written as a JSON list in the authors' ``sampled_prompt.json``
    format, so that loader runs)."""
    import torch

    from ar3d_r1.policy.tiny import build_tiny_policy
    from ar3d_r1.policy.vqvae import VQVAE3D, VQVAEConfig, save_vqvae

    root = Path(config.output_dir) / "stand-ins"
    say(f"dry run: building a random tiny policy and VQVAE in {root} ...")
    torch.manual_seed(config.seed)
    vq_cfg = VQVAEConfig.tiny()
    save_vqvae(VQVAE3D(vq_cfg), root / "vqvae")
    build_tiny_policy(root / "policy", codebook_size=vq_cfg.codebook_size, seed=config.seed)
    accum = config.gradient_accumulation_steps * (8 if config.task == "vlm" else 1)
    config = dataclasses.replace(config, policy=str(root / "policy"), vqvae=str(root / "vqvae"),
                                 max_steps=2, render_size=64, max_plan_tokens=16, num_prompts=4,
                                 gradient_accumulation_steps=accum, save_steps=1, top_k=min(config.top_k, 64),
                                 constrain=True)
    if config.task not in SERVED_TASKS:
        yield config
        return
    from ar3d_r1.rewards.stand_ins import reward_stand_ins

    say(f"dry run: starting the stand-in reward VLM (`transformers serve` on a tiny fixed-reply VLM, log "
        f"{root / 'rewards' / 'reward-vlm-serve.log'}); this takes up to a minute ...")
    # a resumed dry run keeps its response cache: the replies it already has are not asked again
    with reward_stand_ins(root / "rewards", seed=config.seed, keep_cache=config.resume) as served:
        prompts = served.prompts_file
        if config.task == "hps-unified2":
            prompts = authors_format_prompts(served.prompts_file, root / "rewards" / "sampled_prompt.json")
        say(f"dry run: the stand-in reward VLM answers at {served.server.url}; loading the trainer ...")
        yield dataclasses.replace(config, reward_servers=str(served.reward_servers),
                                  prompts_file=str(prompts))


def say(line: str) -> None:
    """One progress line of a dry run on stderr (the run's own bar follows; the summary ends it)."""
    import typer

    typer.echo(line, err=True)


def authors_format_prompts(captions_file: Path, out: Path) -> Path:
    """Write the captions of ``captions_file`` as the authors' training-prompt format, a JSON list of
    ``{"prompt", "task_type", "category"}`` objects, to ``out``; returns it."""
    import json

    from ar3d_r1.rewards.vlm_task import load_captions

    items = [{"prompt": c, "task_type": "3d_generation", "category": "dry_run"}
             for c in load_captions(captions_file)]
    out.write_text(json.dumps(items, indent=2) + "\n", encoding="utf-8")
    return out


def dry_run_summary(config, history: list[dict], start_step: int = 0, frozen: int | None = None) -> str:
    """What this invocation of a dry run did, from its metric records (``step > start_step``; a resumed
    run's history also holds the steps it continued from): for ``task vlm``, the reward requests the
    served stand-in answered, per Hi-GRPO rollout step summed over the optimizer steps, and how failures
    were scored; for ``hps-unified2``, :func:`ar3d_r1.cli.authors_summary.authors_dry_run_lines`
    (``frozen``: how many parameter tensors the trainer froze)."""
    mine = [r for r in history if r.get("step", 0) > start_step]
    if not mine:
        return (f"dry run: nothing to do: the run already finished at step {start_step} "
                f"({config.output_dir})")
    resumed = f", resumed from step {start_step}" if start_step else ""
    lines = [f"dry run: {len(mine)} optimizer steps of the {config.task!r} task on tiny stand-ins "
             f"({config.output_dir}{resumed})"]
    if config.task == "hps-unified2":
        from ar3d_r1.cli.authors_summary import authors_dry_run_lines

        return "\n".join(lines + authors_dry_run_lines(config, mine, frozen))
    if config.task != "vlm":
        return lines[0]

    def total(key: str) -> int:
        return int(sum(r.get(key) or 0 for r in mine))

    rows = config.per_device_train_batch_size * config.gradient_accumulation_steps * len(mine)
    for step, label in (("step1", "rollout step 1 (M1)"), ("step2", "rollout step 2 (M2)")):
        sent, cached = total(f"requests/{step}/sent"), total(f"requests/{step}/cached")
        unparsed, failed = total(f"requests/{step}/unparsed"), total(f"requests/{step}/failed")
        lines.append(f"  {label}, over {len(mine)} optimizer steps: {sent + cached} reward requests ({sent} "
                     f"sent to the served stand-in judge, {cached} answered from the response cache): "
                     f"{sent + cached - unparsed - failed} parsed, {unparsed} did not parse, {failed} got "
                     f"no reply; {total(f'samples/{step}/failed')} of {rows} samples failed a reward")
    lines.append("  the served judge is a tiny Qwen2.5-VL whose weights make greedy decoding write one fixed "
                 "reply that parses under every reward template (ar3d_r1.rewards.stand_ins): its scores are "
                 "constants that say nothing about the shapes, and the samples of a group differ only by HPS "
                 "(a tiny random open_clip). A failed reward would be NaN with its reason in "
                 f"reward_failures.jsonl, scored by malformed_reward={config.malformed_reward!r}.")
    return "\n".join(lines)
