"""The Hi-GRPO trainer: generate → score → advantages → loss → step, under accelerate.

One optimizer step (paper §5; design.md §6), read top to bottom in :meth:`HiGRPOTrainer.train`:

1. **generate**: P prompts × G samples, the two-step rollout (:mod:`ar3d_r1.rollout.hi_grpo`), in
   rounds when dynamic sampling refills (:mod:`ar3d_r1.engine.batch`);
2. **score**: R_high on M1, R_low on M2 (:mod:`ar3d_r1.rewards.tasks`), failures resolved by
   ``malformed_reward``;
3. **advantages**: step 1 on R_high + λ·R_low, step 2 on R_low, group z-scores
   (:func:`ar3d_r1.advantages.hi_grpo_advantages`; or one shared advantage), then dynamic sampling;
4. **loss**: :func:`ar3d_r1.loss.hi_grpo_loss`, the one loss path, on micro-batches of
   ``per_device_train_batch_size`` rows with the step's normalisers, so the micro-batches add up to the
   batch-level aggregate (trl's ``num_items_in_batch``) (:mod:`ar3d_r1.engine.step`);
5. **step**: clip, AdamW step, or none at all when no token carries signal (logged ``skipped``;
   ``max_skipped_steps`` in a row raise :class:`ar3d_r1.engine.NoSignalError`). With μ =
   ``num_iterations`` > 1 the batch is reused μ times and the old log-probs are computed once,
   explicitly, before the first update; with μ = 1 they are ``logp.detach()`` (ρ ≡ 1, as trl does).

Logs: a rich progress bar, ``metrics.jsonl`` (one record per step), ``reward_failures.jsonl`` (the reason
of every sample whose reward failed), TensorBoard under ``tb/``, and ``reward_curve.png`` at the end.
Checkpoints every ``save_steps`` and at the end (``final/``). A fresh run refuses an ``output_dir`` that
holds another run unless ``overwrite_output_dir`` (ar3d_r1/engine/checkpoint.py); ``start_step`` is the
step this invocation started from (the resumed checkpoint's), so ``history[i]["step"] > start_step``
are its own. A step whose loss, gradient norm or parameters are not finite stops the run before it is
logged or saved (ar3d_r1/engine/guards.py); a full disk while saving is one line
(ar3d_r1/engine/disk_full.py).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from ar3d_r1.config import HiGRPOConfig, save_config
from ar3d_r1.engine import NoSignalError
from ar3d_r1.engine.batch import generate_and_score
from ar3d_r1.engine.checkpoint import prepare_output_dir, resume_run, save_checkpoint, saved_step
from ar3d_r1.engine.disk_full import disk_full, disk_full_error
from ar3d_r1.engine.guards import check_step
from ar3d_r1.engine.step import micro_batches, segment_logprobs, train_step
from ar3d_r1.policy.loading import freeze_parameters
from ar3d_r1.rollout.backends import make_backend
from ar3d_r1.rollout.hi_grpo import segment_shares


class HiGRPOTrainer:
    """``HiGRPOTrainer(config, model, processor, vqvae, task).train()``; see the module docstring."""

    def __init__(self, config: HiGRPOConfig, model, processor, vqvae, task, *, ref_model=None) -> None:
        from accelerate import Accelerator

        from ar3d_r1.policy.mesh_tokens import MeshVocab

        self.config, self.task, self.processor = config, task, processor
        self.tokenizer = processor.tokenizer if hasattr(processor, "tokenizer") else processor
        self.vocab = MeshVocab.from_tokenizer(self.tokenizer, vqvae.config.codebook_size)
        # `cpu=True` would override `accelerate launch --use_deepspeed` (DeepSpeed also runs on CPU)
        deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
        self.accelerator = Accelerator(cpu=not (torch.cuda.is_available() or deepspeed),
                                       mixed_precision=config.mixed_precision or None)
        self.prompts_per_step = config.prompts_per_step(self.accelerator.num_processes)
        self.vqvae = vqvae.to(self.accelerator.device).eval()
        # Dr.GRPO's constant length budget: plan, <mesh-start>, N codes, <mesh-end>, stop
        self.max_len = config.max_plan_tokens + vqvae.config.num_tokens + 3
        self.skipped_in_a_row = 0
        self.frozen = freeze_parameters(model, config.frozen_modules)  # before the optimizer sees them
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                      lr=config.learning_rate, weight_decay=config.weight_decay)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        # Not through accelerate's prepare: its scheduler wrapper steps once per process per call. Stepped
        # once per optimizer step; registered so save_state/load_state carry it (checkpoint.py).
        from transformers import get_scheduler

        self.scheduler = get_scheduler(config.lr_scheduler_type, optimizer,
                                       num_warmup_steps=config.warmup_steps,
                                       num_training_steps=config.max_steps)
        self.accelerator.register_for_checkpointing(self.scheduler)
        self.ref_model = None
        if config.beta != 0.0:
            self.ref_model = (ref_model.to(self.accelerator.device) if ref_model is not None else None)
            if self.ref_model is None:
                raise ValueError("beta != 0 needs a reference model (pass ref_model: the initial policy)")
            self.ref_model.eval().requires_grad_(False)
        self.out = Path(config.output_dir)
        self.rng = np.random.default_rng(config.seed)  # the data cursor (with _queue): same on every process
        self._queue: list[int] = []
        self.history: list[dict] = []
        self.start_step = 0
        self.backend = make_backend(config, self.accelerator.unwrap_model(self.model), self.tokenizer)

    # ------------------------------------------------------------------ the loop
    def train(self) -> Path:
        cfg = self.config
        prepare_output_dir(self)  # a fresh run: refuse (or, asked to, clear) an old run's directory
        step = self.start_step = self.resume() if cfg.resume else 0
        self.out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, self.out / "config.yaml")
        final = self.out / "final"
        if step and step >= cfg.max_steps:
            if self.accelerator.is_main_process:
                print(f"hi-grpo: nothing to do: the run already finished at step {step} "
                      f"(max_steps {cfg.max_steps})", flush=True)
            if saved_step(final) == step:
                return final
        writer = self._tensorboard(purge_step=step + 1 if step else None)
        with self._progress() as (progress, task_id):
            progress.update(task_id, completed=step)
            while step < cfg.max_steps:
                t0 = time.perf_counter()
                batch = self.generate_and_score(step)                               # 1-3
                self._log_reward_failures(step + 1, batch["scores"])
                old = self.logprobs(batch, grad=False) if cfg.off_policy() else None  # explicit π_old
                ref = self.logprobs(batch, grad=False, model=self.ref_model) if self.ref_model else None
                due = False
                for _ in range(cfg.num_iterations):                                 # μ updates per batch
                    stats = self.optimise(batch, old, ref)                           # 4-5
                    step += 1
                    check_step(self, step, stats)  # not finite: stop before it is logged or saved
                    record = self.record(step, batch, stats, time.perf_counter() - t0)
                    self._log(record, writer)
                    self._count_skips(step, stats)
                    progress.update(task_id, advance=1, reward=record["reward/total"])
                    due = due or bool(cfg.save_steps and step % cfg.save_steps == 0)
                    if step >= cfg.max_steps:
                        break
                if due:  # after the batch's μ updates: a resumed run starts on a fresh batch
                    save_checkpoint(self, step)
        final = self.save(final, step)
        if writer is not None:
            writer.close()
        self.plot_rewards(self.out / "reward_curve.png")
        return final

    # ------------------------------------------------------------------ 1-3: generate, score, advantages
    def generate_and_score(self, step: int) -> dict:
        """The batch of optimizer step ``step`` (0-based), refill included (:mod:`ar3d_r1.engine.batch`)."""
        return generate_and_score(self, step)

    def next_prompts(self) -> list[int]:
        """The next ``prompts_per_step`` prompt indices, epoch by epoch: each epoch is a fresh permutation
        of the prompt set (as trl's sampler), so every window of one epoch sees every prompt once."""
        picked: list[int] = []
        while len(picked) < self.prompts_per_step:
            if not self._queue:
                self._queue = list(self.rng.permutation(len(self.task.prompts)))
            picked.append(int(self._queue.pop(0)))
        return picked

    # ------------------------------------------------------------------ 4-5: log-probs, loss, update
    def logprobs(self, batch: dict, *, grad: bool, model=None) -> dict[str, torch.Tensor]:
        """Per-step ``(B, C)`` log-probs under ``model`` (the policy by default), without grad."""
        model = self.accelerator.unwrap_model(model or self.model)
        out = {}
        with torch.no_grad():
            for name, t in batch["tensors"].items():
                rows = micro_batches(len(t["ids"]), self.config.per_device_train_batch_size)
                out[name] = torch.cat([segment_logprobs(model, t, r, self.config, self.accelerator.device)
                                       for r in rows])
        return out

    def optimise(self, batch: dict, old: dict | None, ref: dict | None) -> dict[str, float]:
        """One optimizer step through the one loss path, or a skipped one (:func:`train_step`)."""
        return train_step(self, batch, old, ref)

    def _count_skips(self, step: int, stats: dict) -> None:
        """Raise :class:`NoSignalError` after ``max_skipped_steps`` skipped steps in a row (0: never)."""
        self.skipped_in_a_row = self.skipped_in_a_row + 1 if stats["skipped"] else 0
        limit = self.config.max_skipped_steps
        if limit and self.skipped_in_a_row >= limit:
            raise NoSignalError(
                f"stopped at step {step}: {limit} steps in a row had no token carrying signal "
                "(every group dropped or every sample failed); see metrics.jsonl and reward_failures.jsonl "
                "(raise --max_skipped_steps to wait longer)")

    # ------------------------------------------------------------------ logging, checkpoints, plot
    def record(self, step: int, batch: dict, stats: dict, seconds: float) -> dict:
        r_high, r_low, ro = batch["r_high"], batch["r_low"], batch["rollout"]
        rec = {"step": step, "seconds": round(seconds, 3), "reward/total": float(np.mean(r_high + r_low)),
               "reward/r_high": float(np.mean(r_high)), "reward/r_low": float(np.mean(r_low)),
               "kept_groups/step1": batch["kept_groups"]["step1"],
               "kept_groups/step2": batch["kept_groups"]["step2"], **batch["refill"]}
        rec.update({f"reward/{k}": v for k, v in batch["scores"].dimensions.items()})
        rec.update(batch["scores"].stats)
        for name, outs in (("step1", ro.step1), ("step2", ro.step2 or [])):
            if not outs:
                continue
            start = [self.vocab.start_id]  # a prompt ending in <mesh-start> opened the segment (one_step.py)
            shares = [segment_shares(o.completion_ids, self.vocab, opened=o.prompt_ids[-1:] == start)
                      for o in outs]
            n = max(sum(sum(s.values()) for s in shares), 1)
            for seg in ("plan", "mesh", "tail"):
                rec[f"{name}/share_{seg}"] = sum(s[seg] for s in shares) / n
            rec[f"{name}/malformed"] = float(np.mean([o.failure is not None for o in outs]))
            reasons: dict[str, int] = {}
            for o in outs:
                if o.failure:
                    reasons[o.failure] = reasons.get(o.failure, 0) + 1
            rec[f"{name}/failures"] = reasons
        rec.update(stats)
        self.history.append(rec)
        return rec

    def _log(self, rec: dict, writer) -> None:
        if not self.accelerator.is_main_process:
            return
        clean = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in rec.items()}
        with (self.out / "metrics.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(clean) + "\n")
        if writer is not None:
            for k, v in rec.items():
                if isinstance(v, int | float) and k != "step":
                    writer.add_scalar(k, v, rec["step"])

    def _log_reward_failures(self, step: int, scores) -> None:
        """Append each failed sample's reward failure reasons to ``reward_failures.jsonl`` (one record per
        generated batch, keyed by the first optimizer step that trains on it; rows are batch rows)."""
        failed = {name: {i: r for i, r in enumerate(reasons) if r is not None}
                  for name, reasons in (("step1", scores.failures1), ("step2", scores.failures2))}
        if not self.accelerator.is_main_process or not any(failed.values()):
            return
        with (self.out / "reward_failures.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, **failed}) + "\n")

    def _tensorboard(self, purge_step: int | None = None):
        if not self.accelerator.is_main_process:
            return None
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(str(self.out / "tb"), purge_step=purge_step)

    def resume(self) -> int:
        """Continue the run in ``output_dir``; returns the step it starts from (:func:`resume_run`)."""
        return resume_run(self)

    def _progress(self):
        from contextlib import contextmanager

        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        @contextmanager
        def bar():
            columns = (TextColumn("hi-grpo"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                       TextColumn("reward {task.fields[reward]:.3f}"), TimeRemainingColumn())
            with Progress(*columns, disable=not self.accelerator.is_main_process) as progress:
                yield progress, progress.add_task("train", total=self.config.max_steps, reward=float("nan"))

        return bar()

    def save(self, directory: Path, step: int) -> Path:
        """Write the policy, processor and optimizer to ``directory`` (``final/``); a full disk raises
        CheckpointDiskFullError (ar3d_r1/engine/disk_full.py), the checkpoints left as they were."""
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            try:
                directory.mkdir(parents=True, exist_ok=True)
                self.accelerator.unwrap_model(self.model).save_pretrained(directory)
                self.processor.save_pretrained(directory)
                torch.save(self.optimizer.state_dict(), directory / "optimizer.pt")
                (directory / "trainer_state.json").write_text(json.dumps({"step": step}) + "\n",
                                                              encoding="utf-8")
            except Exception as exc:
                if disk_full(exc, directory.parent):
                    from ar3d_r1.engine.checkpoint import latest_checkpoint

                    raise disk_full_error(directory.parent, f"{directory.name}/",
                                          latest_checkpoint(directory.parent)) from exc
                raise
        return directory

    def plot_rewards(self, path: Path) -> Path | None:
        if not self.accelerator.is_main_process or not self.history:
            return None
        from ar3d_r1.engine.reward_curve import plot_reward_curves

        return plot_reward_curves({"run": self.history}, path)
