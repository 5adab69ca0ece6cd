"""The step's batch: generate and score rounds of groups, advantages, dynamic sampling, DAPO refill, and
the packed tensors each process trains on.

**A round** draws ``prompts_per_step`` (P) prompts from the data cursor and generates, scores and
normalises their G samples each (:func:`generate_round`); rewards are gathered over processes, so every
process holds every reward, and the group statistics (:func:`advantages_of`) read only a group's own
rewards. Advantages: ``advantage_mode="per-step"`` is Hi-GRPO's (A1 on R_high + λ·R_low, A2 on R_low);
``"shared"`` gives every segment the group z-score of R_low (the final mesh's reward), and a sample's
validity under ``malformed_reward="mask"`` then follows R_low alone in every segment.

**Dynamic sampling** (DAPO, Yu et al. 2025, eq. 11 and Algorithm 1). A group is *informative* in a step
when its rewards spread more than ``dynamic_sampling_tol``; a group informative in no trained step
carries no advantage anywhere.

- ``off``: every group trains; ``mask``: one round, and each step's loss mask drops its constant groups;
- ``refill``: while fewer than P informative groups have been kept and fewer than ``max_refill_rounds``
  extra rounds were spent, generate another round from the data cursor (verl's
  ``filter_groups.max_num_gen_batches`` = 1 + ``max_refill_rounds``: verl's trainer counts batches as
  ``num_gen_batches`` and keeps generating while ``num_prompt_in_batch < train_batch_size``). The step
  then holds the first P informative groups in generation order; extra ones are dropped, as verl trims
  its batch to ``train_batch_size``. When the rounds run out short, the step trains on the K < P kept
  groups: the remaining P − K slots hold round 0's constant groups with their loss mask cleared (the
  batch keeps its shape, so every process still takes the same number of micro-batches), and the record
  says so (``refill/short``). Unlike verl, which raises, the run goes on.

Every round draws its samples from their own seeds (``sample_seed(seed, step, turn, k·B + row)`` for
round k; round 0 is the draw of a run without refill) and consumes prompts from the data cursor saved
in each checkpoint, so a resumed run regenerates every round of a step exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import SimpleNamespace

import numpy as np
import torch

from ar3d_r1.advantages import dynamic_sampling, group_advantages, hi_grpo_advantages
from ar3d_r1.engine.distributed import gather_list, gather_rows, process_rows
from ar3d_r1.logprobs import pack_sequences
from ar3d_r1.rewards.tasks import resolve_failures
from ar3d_r1.rollout.backends import sample_seed
from ar3d_r1.rollout.hi_grpo import Rollout, two_step_rollout
from ar3d_r1.rollout.one_step import reasoning_then_mesh_rollout


@dataclass
class Round:
    """One generated round: B = P·G rows (global, grouped), every process holding all of them."""

    prompts: list[str]
    step1: list
    step2: list | None
    r_high: np.ndarray
    r_low: np.ndarray
    a1: torch.Tensor
    a2: torch.Tensor | None
    keep1: torch.Tensor  # (B,) bool: dynamic sampling's and malformed_reward's keep, per step
    keep2: torch.Tensor
    scores: object

    def informative(self, group: int, G: int) -> bool:
        """Whether group ``group`` carries signal in a trained step (see the module docstring)."""
        row = group * G
        in_step2 = self.a2 is not None and bool(self.keep2[row:row + G].any())
        return bool(self.keep1[row:row + G].any()) or in_step2


def advantages_of(config, r_high: np.ndarray, r_low: np.ndarray, G: int):
    """``(A1, A2 or None)`` as ``(B,)`` float64 tensors for ``advantage_mode`` (module docstring)."""
    eps, std = config.adv_eps, config.scale_rewards
    if config.advantage_mode == "shared":
        a = group_advantages(torch.as_tensor(r_low), G, eps=eps, std=std)
        return a, (a if config.two_step else None)
    a1, a2 = hi_grpo_advantages(torch.as_tensor(r_high), torch.as_tensor(r_low), G, lam=config.lam, eps=eps,
                                std=std)
    return a1, (a2 if config.two_step else None)  # one step: M1 is scored by both ensembles


def keep_masks(config, r_high: np.ndarray, r_low: np.ndarray, G: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic sampling's ``(keep1, keep2)``, ``(B,)`` bool: rows of groups whose step target spreads."""
    n = len(r_low)
    if config.dynamic_sampling == "off":
        return torch.ones(n, dtype=torch.bool), torch.ones(n, dtype=torch.bool)
    tol = config.dynamic_sampling_tol
    low = dynamic_sampling(torch.as_tensor(r_low), G, mode="mask", tol=tol)
    if config.advantage_mode == "shared":
        return low, low
    return dynamic_sampling(torch.as_tensor(r_high + config.lam * r_low), G, mode="mask", tol=tol), low


def generate_round(trainer, step: int, k: int) -> Round:
    """Round ``k`` of optimizer step ``step`` (0-based): P fresh prompts × G samples, scored."""
    cfg, G, acc = trainer.config, trainer.config.num_generations, trainer.accelerator
    prompts = [trainer.task.prompts[i].text for i in trainer.next_prompts() for _ in range(G)]
    rows = process_rows(len(prompts), acc.num_processes, acc.process_index)  # this process's block
    policy = acc.unwrap_model(trainer.model).eval()
    if k == 0 and cfg.rollout_backend != "hf" and cfg.rollout_weight_sync and acc.is_main_process:
        trainer.backend.sync_weights(policy)
    offset = k * len(prompts)
    rollout_fn = (reasoning_then_mesh_rollout if cfg.rollout_style == "reasoning-then-mesh"
                  else two_step_rollout)
    rollout = rollout_fn(policy, trainer.tokenizer, trainer.vqvae, trainer.vocab, prompts[rows], cfg,
                         seed=cfg.seed * 100_003 + step + 1_000_003 * k, backend=trainer.backend,
                         sample_seeds=lambda turn: [sample_seed(cfg.seed, step, turn, offset + r)
                                                    for r in range(rows.start, rows.stop)])
    scores = trainer.task.score(rollout)
    # a group may span processes: gather every reward before the group statistics (distributed.py)
    r_high, valid1 = resolve_failures(gather_rows(acc, scores.r_high), G, cfg.malformed_reward)
    r_low, valid2 = resolve_failures(gather_rows(acc, scores.r_low), G, cfg.malformed_reward)
    if cfg.advantage_mode == "shared":  # R_high plays no part: a sample's rows stand or fall with R_low
        valid1 = valid2
    a1, a2 = advantages_of(cfg, r_high, r_low, G)
    keep1, keep2 = keep_masks(cfg, r_high, r_low, G)
    step1, step2 = rollout.step1, rollout.step2
    if acc.num_processes > 1:  # every process holds every row (grids stay where they were decoded)
        def strip(outs):
            return [replace(o, grid=None) for o in outs]

        step1 = gather_list(acc, strip(step1))
        step2 = None if step2 is None else gather_list(acc, strip(step2))
        dims = gather_list(acc, [scores.dimensions])
        scores.dimensions = {key: float(np.nanmean([d[key] for d in dims])) for key in dims[0]}
        stats = gather_list(acc, [scores.stats])
        scores.stats = {key: float(sum(s[key] for s in stats)) for key in stats[0]}
        scores.failures1 = gather_list(acc, scores.failures1)
        scores.failures2 = gather_list(acc, scores.failures2)
    return Round(prompts, step1, step2, r_high, r_low, a1, a2, keep1 & torch.as_tensor(valid1),
                 keep2 & torch.as_tensor(valid2), scores)


def generate_and_score(trainer, step: int) -> dict:
    """The batch optimizer step ``step`` trains on (module docstring), with its log fields."""
    cfg, G, P = trainer.config, trainer.config.num_generations, trainer.prompts_per_step
    rounds = [generate_round(trainer, step, 0)]
    chosen = [(0, g) for g in range(P)]
    refill = {}
    if cfg.dynamic_sampling == "refill":
        kept = [(0, g) for g in range(P) if rounds[0].informative(g, G)]
        while len(kept) < P and len(rounds) <= cfg.max_refill_rounds:
            rounds.append(generate_round(trainer, step, len(rounds)))
            kept += [(len(rounds) - 1, g) for g in range(P) if rounds[-1].informative(g, G)]
        kept = kept[:P]
        fillers = [(0, g) for g in range(P) if not rounds[0].informative(g, G)]
        chosen = kept + fillers[: P - len(kept)]
        refill = {"refill/rounds": len(rounds) - 1, "refill/groups_generated": P * len(rounds),
                  "refill/groups_kept": len(kept), "refill/short": P - len(kept)}
        if len(kept) < P and trainer.accelerator.is_main_process:
            print(f"hi-grpo: step {step + 1}: refill ran out after {len(rounds) - 1} extra rounds; training "
                  f"on {len(kept)} of {P} informative groups", flush=True)
    return assemble(trainer, rounds, chosen, refill)


def _pick(rounds: list[Round], chosen: list[tuple[int, int]], G: int, get):
    """Rows of ``chosen`` groups, in order, of the per-round field ``get(round)`` (a list or tensor)."""
    parts = [get(rounds[k])[g * G:(g + 1) * G] for k, g in chosen]
    return torch.cat(parts) if isinstance(parts[0], torch.Tensor) else [x for p in parts for x in p]


def assemble(trainer, rounds: list[Round], chosen: list[tuple[int, int]], refill: dict) -> dict:
    """Pack this process's rows of the chosen groups into the loss's tensors; gather the log fields."""
    cfg, G, acc = trainer.config, trainer.config.num_generations, trainer.accelerator
    two = rounds[0].a2 is not None
    def pick(get):
        return _pick(rounds, chosen, G, get)

    keep1, keep2 = pick(lambda r: r.keep1), pick(lambda r: r.keep2)
    segments = [("step1", pick(lambda r: r.step1), pick(lambda r: r.a1), keep1)]
    if two:
        segments.append(("step2", pick(lambda r: r.step2), pick(lambda r: r.a2), keep2))
    rows = process_rows(len(keep1), acc.num_processes, acc.process_index)
    tensors = {}
    for i, (name, outcomes, adv, keep) in enumerate(segments):
        local = outcomes[rows]
        ids, att, cmask = pack_sequences([o.prompt_ids for o in local], [o.completion_ids for o in local],
                                         trainer.tokenizer.pad_token_id)
        if cfg.mesh_mask == "all" and i == len(segments) - 1:
            lengths = [len(o.completion_ids) for o in local]
            att, cmask = _mask_to_group_length(att, cmask, lengths, rows.start, G)
        tensors[name] = {"ids": ids, "att": att, "mask": cmask * keep[rows][:, None].long(),
                         "advantages": adv[rows].float()}
    prompts = pick(lambda r: r.prompts)
    rollout = Rollout(prompts, segments[0][1], segments[1][1] if two else None)
    scores = SimpleNamespace(
        dimensions={key: _finite_mean([r.scores.dimensions[key] for r in rounds])
                    for key in rounds[0].scores.dimensions},
        stats={key: float(sum(r.scores.stats[key] for r in rounds)) for key in rounds[0].scores.stats},
        failures1=[x for r in rounds for x in r.scores.failures1],
        failures2=[x for r in rounds for x in r.scores.failures2])
    # rewards of every generated group (all rounds): the policy's reward, not the filtered batch's
    return {"rollout": rollout, "scores": scores, "tensors": tensors, "refill": refill,
            "r_high": np.concatenate([r.r_high for r in rounds]),
            "r_low": np.concatenate([r.r_low for r in rounds]),
            "kept_groups": {"step1": int(keep1.view(-1, G).any(1).sum()),
                            "step2": int(keep2.view(-1, G).any(1).sum()) if two else 0}}


def _finite_mean(values: list[float]) -> float:
    """The mean of the finite values (NaN when there is none), without numpy's empty-slice warning."""
    finite = [float(v) for v in values if np.isfinite(v)]
    return sum(finite) / len(finite) if finite else float("nan")


def _mask_to_group_length(att, cmask, lengths: list[int], first_row: int, G: int):
    """``mesh_mask="all"``: every completion position up to the longest completion of the row's group
    is in the mask and attended (the authors' ``ones_like`` over their local batch's generated tensor,
    post-stop padding included)."""
    att, cmask = att.clone(), cmask.clone()
    width, c = att.shape[1], cmask.shape[1]
    groups = [(first_row + j) // G for j in range(len(lengths))]
    longest = {g: max(n for n, h in zip(lengths, groups, strict=True) if h == g) for g in set(groups)}
    for j, g in enumerate(groups):
        cmask[j, :longest[g]] = 1
        att[j, width - c: width - c + longest[g]] = 1
    return att, cmask
