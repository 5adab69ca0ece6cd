"""The Hi-GRPO trainer: generate → score → advantages → loss → step, under accelerate.

One optimizer step (paper §5; design.md §6), read top to bottom in :meth:`HiGRPOTrainer.train`:

1. **generate**: P prompts × G samples, the two-step rollout (:mod:`ar3d_r1.rollout.hi_grpo`);
2. **score**: R_high on M1, R_low on M2 (:mod:`ar3d_r1.rewards.tasks`), failures resolved by
   ``malformed_reward``;
3. **advantages**: step 1 on R_high + λ·R_low, step 2 on R_low, group z-scores
   (:func:`ar3d_r1.advantages.hi_grpo_advantages`), then dynamic sampling per step;
4. **loss**: :func:`ar3d_r1.loss.policy_loss` per step on micro-batches of
   ``per_device_train_batch_size`` rows, summed (L = L1 + L2) and scaled so the micro-batches add up to
   the batch-level aggregate (for ``token-mean``: each micro-batch weighs its share of the batch's valid
   tokens, as trl's ``num_items_in_batch``);
5. **step**: clip, AdamW step. With μ = ``num_iterations`` > 1 the batch is reused μ times and the old
   log-probs are computed once, explicitly, before the first update; with μ = 1 they are
   ``logp.detach()`` (ρ ≡ 1, as trl does).

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
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from ar3d_r1.advantages import dynamic_sampling, hi_grpo_advantages
from ar3d_r1.config import HiGRPOConfig, save_config
from ar3d_r1.engine.checkpoint import prepare_output_dir, resume_run, save_checkpoint, saved_step
from ar3d_r1.engine.disk_full import disk_full, disk_full_error
from ar3d_r1.engine.distributed import (
    check_deepspeed_accumulation,
    deepspeed_loss_scale,
    gather_list,
    gather_rows,
    global_sums,
    is_deepspeed,
    process_rows,
    sum_gradients,
)
from ar3d_r1.engine.guards import check_step
from ar3d_r1.logprobs import completion_logprobs, pack_sequences
from ar3d_r1.loss import policy_loss
from ar3d_r1.rewards.tasks import resolve_failures
from ar3d_r1.rollout.backends import make_backend, sample_seed
from ar3d_r1.rollout.hi_grpo import segment_shares, two_step_rollout


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
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate,
                                      weight_decay=config.weight_decay)
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
        cfg, G = self.config, self.config.num_generations
        prompts = [self.task.prompts[i].text for i in self.next_prompts() for _ in range(G)]
        acc = self.accelerator
        rows = process_rows(len(prompts), acc.num_processes, acc.process_index)  # this process's block
        policy = acc.unwrap_model(self.model).eval()
        if cfg.rollout_backend != "hf" and cfg.rollout_weight_sync and acc.is_main_process:
            self.backend.sync_weights(policy)
        rollout = two_step_rollout(policy, self.tokenizer, self.vqvae, self.vocab, prompts[rows], cfg,
                                   seed=cfg.seed * 100_003 + step, backend=self.backend,
                                   sample_seeds=lambda turn: [sample_seed(cfg.seed, step, turn, r)
                                                              for r in range(rows.start, rows.stop)])
        scores = self.task.score(rollout)
        # a group may span processes: gather every reward before the group statistics (distributed.py)
        scores.r_high, scores.r_low = gather_rows(acc, scores.r_high), gather_rows(acc, scores.r_low)
        r_high, valid1 = resolve_failures(scores.r_high, G, cfg.malformed_reward)
        r_low, valid2 = resolve_failures(scores.r_low, G, cfg.malformed_reward)
        a1, a2 = hi_grpo_advantages(torch.as_tensor(r_high), torch.as_tensor(r_low), G, lam=cfg.lam,
                                    eps=cfg.adv_eps, std=cfg.scale_rewards)
        if not cfg.two_step:  # one step: M1 is scored by both ensembles; only "step 1" is trained
            a2 = None
        keep1 = keep2 = torch.ones(len(prompts), dtype=torch.bool)
        if cfg.dynamic_sampling != "off":  # "refill" also masks here: a short batch keeps what it has
            target = torch.as_tensor(r_high + cfg.lam * r_low)
            keep1 = dynamic_sampling(target, G, mode="mask", tol=cfg.dynamic_sampling_tol)
            keep2 = dynamic_sampling(torch.as_tensor(r_low), G, mode="mask", tol=cfg.dynamic_sampling_tol)
        steps = [("step1", rollout.step1, a1[rows], (keep1 & torch.as_tensor(valid1))[rows])]
        if a2 is not None:
            steps.append(("step2", rollout.step2, a2[rows], (keep2 & torch.as_tensor(valid2))[rows]))
        tensors = {}
        for name, outcomes, adv, keep in steps:
            ids, att, cmask = pack_sequences([o.prompt_ids for o in outcomes],
                                             [o.completion_ids for o in outcomes],
                                             self.tokenizer.pad_token_id)
            tensors[name] = {"ids": ids, "att": att, "mask": cmask * keep[:, None].long(),
                             "advantages": adv.float()}
        if acc.num_processes > 1:  # the log describes the whole batch (grids stay where they were decoded)
            from dataclasses import replace

            def strip(outs):
                return [replace(o, grid=None) for o in outs]

            dims = gather_list(acc, [scores.dimensions])
            scores.dimensions = {k: float(np.nanmean([d[k] for d in dims])) for k in dims[0]}
            stats = gather_list(acc, [scores.stats])
            scores.stats = {k: float(sum(s[k] for s in stats)) for k in stats[0]}
            scores.failures1 = gather_list(acc, scores.failures1)
            scores.failures2 = gather_list(acc, scores.failures2)
            rollout = type(rollout)(prompts, gather_list(acc, strip(rollout.step1)),
                                    None if rollout.step2 is None else gather_list(acc, strip(rollout.step2)))
        return {"rollout": rollout, "scores": scores, "r_high": r_high, "r_low": r_low, "tensors": tensors,
                "kept_groups": {"step1": int(keep1.sum()) // G, "step2": int(keep2.sum()) // G}}

    def next_prompts(self) -> list[int]:
        """The next ``prompts_per_step`` prompt indices, epoch by epoch: each epoch is a fresh permutation
        of the prompt set (as trl's sampler), so every window of one epoch sees every prompt once."""
        picked: list[int] = []
        while len(picked) < self.prompts_per_step:
            if not self._queue:
                self._queue = list(self.rng.permutation(len(self.task.prompts)))
            picked.append(int(self._queue.pop(0)))
        return picked

    # ------------------------------------------------------------------ 4: log-probs and loss
    def _rows(self, n: int):
        size = self.config.per_device_train_batch_size
        return [slice(s, min(s + size, n)) for s in range(0, n, size)]

    def _logp(self, model, t: dict, rows: slice) -> torch.Tensor:
        dev = self.accelerator.device
        width = t["mask"].shape[1]
        return completion_logprobs(model, t["ids"][rows].to(dev), t["att"][rows].to(dev), width,
                                   temperature=self.config.temperature, chunk=self.config.logprob_chunk)

    def logprobs(self, batch: dict, *, grad: bool, model=None) -> dict[str, torch.Tensor]:
        """Per-step ``(B, C)`` log-probs under ``model`` (the policy by default), without grad."""
        model = self.accelerator.unwrap_model(model or self.model)
        out = {}
        with torch.no_grad():
            for name, t in batch["tensors"].items():
                out[name] = torch.cat([self._logp(model, t, r) for r in self._rows(len(t["ids"]))])
        return out

    def optimise(self, batch: dict, old: dict | None, ref: dict | None) -> dict[str, float]:
        cfg = self.config
        model = self.accelerator.unwrap_model(self.model).train()
        switches = dict(eps_low=cfg.epsilon_low, eps_high=cfg.epsilon_high, beta=cfg.beta, level=cfg.level,
                        aggregation=cfg.aggregation,
                        max_len=cfg.max_plan_tokens + self.vqvae.config.num_tokens + 3)
        acc = self.accelerator
        # batch-level aggregates span every process: global token and row counts (distributed.py)
        counts = global_sums(acc, {f"{name}/{k}": v for name, t in batch["tensors"].items()
                                   for k, v in (("tokens", float(t["mask"].sum())), ("rows", len(t["ids"])))})
        totals = {name: (counts[f"{name}/tokens"], counts[f"{name}/rows"]) for name in batch["tensors"]}
        micro = self._rows(len(batch["tensors"]["step1"]["ids"]))
        check_deepspeed_accumulation(acc, len(micro))
        sums: dict[str, float] = {}
        for rows in micro:
            loss = 0.0
            for name, t in batch["tensors"].items():
                with acc.autocast():  # the mixed-precision flag (log-probs bypass model.forward's wrapper)
                    logp = self._logp(model, t, rows)
                mask = t["mask"][rows].to(logp.device)
                old_logp = old[name][rows] if old is not None else logp.detach()
                ref_logp = ref[name][rows] if ref is not None else None
                part, stats = policy_loss(logp, old_logp, t["advantages"][rows].to(logp.device), mask,
                                          ref_logp=ref_logp, **switches)
                tokens, n_rows = totals[name]
                # share of the batch-level aggregate this micro-batch carries (see module docstring)
                share = (stats["tokens"] / max(tokens, 1.0) if cfg.aggregation == "token-mean"
                         else (rows.stop - rows.start) / n_rows)
                loss = loss + part * share
                for k, v in stats.items():
                    w = stats["tokens"] if k not in ("tokens", "sequences") else 1.0
                    sums[f"{name}/{k}"] = sums.get(f"{name}/{k}", 0.0) + v * w
                sums[f"{name}/loss"] = sums.get(f"{name}/loss", 0.0) + float(part.detach()) * share
            # DeepSpeed steps at every backward unless accelerate's accumulate() marks the boundary
            with acc.accumulate(self.model) if is_deepspeed(acc) else nullcontext():
                acc.backward(loss * deepspeed_loss_scale(acc, len(micro)))
        sum_gradients(acc, model.parameters())  # log-probs ran on the unwrapped module: reduce by hand
        # DeepSpeed clips inside its engine step (its config's gradient_clipping) and keeps the norm
        grad_norm = (self.model.get_global_grad_norm() if is_deepspeed(acc)  # the engine's, pre-clip
                     else torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm))
        lr = self.scheduler.get_last_lr()[0]  # the rate this step uses
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        sums = global_sums(acc, sums)
        out = {"grad_norm": float("nan") if grad_norm is None else float(grad_norm), "learning_rate": lr}
        for name, (tokens, _) in totals.items():
            for k in ("clip_low", "clip_high", "clip_region", "kl", "ratio_mean"):
                out[f"{name}/{k}"] = sums.get(f"{name}/{k}", 0.0) / max(tokens, 1.0)
            out[f"{name}/tokens"] = sums.get(f"{name}/tokens", 0.0)
            out[f"{name}/loss"] = sums.get(f"{name}/loss", 0.0)
        return out

    # ------------------------------------------------------------------ logging, checkpoints, plot
    def record(self, step: int, batch: dict, stats: dict, seconds: float) -> dict:
        r_high, r_low, ro = batch["r_high"], batch["r_low"], batch["rollout"]
        rec = {"step": step, "seconds": round(seconds, 3), "reward/total": float(np.mean(r_high + r_low)),
               "reward/r_high": float(np.mean(r_high)), "reward/r_low": float(np.mean(r_low)),
               "kept_groups/step1": batch["kept_groups"]["step1"],
               "kept_groups/step2": batch["kept_groups"]["step2"]}
        rec.update({f"reward/{k}": v for k, v in batch["scores"].dimensions.items()})
        rec.update(batch["scores"].stats)
        for name, outs in (("step1", ro.step1), ("step2", ro.step2 or [])):
            if not outs:
                continue
            shares = [segment_shares(o.completion_ids, self.vocab) for o in outs]
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
