"""The two-step Hi-GRPO rollout: G samples per prompt, each planned and meshed twice (paper §5).

For every prompt p and each of its G samples:

1. step 1: ``step1_messages(p)`` → the policy writes plan s, then ``<mesh-start>`` t ``<mesh-end>``;
   t is decoded by the VQVAE into occupancy M1;
2. step 2: ``step2_messages(p, s)`` → plan v, then the refined mesh o → M2.

Generation is HF ``generate`` (sampling at the config's temperature / top-k / top-p; it stops at the
policy's end-of-turn or ``<mesh-end>``). A completion whose mesh segment is malformed (no start, no end,
stray text, wrong length: :class:`ar3d_r1.policy.mesh_tokens.MeshTokenError`) stays in the batch as an
outcome with its ``failure`` reason and no grid; it is never padded into a shape. Its tokens are still
trained on, with the reward the config's ``malformed_reward`` gives it.

The plan s that step 2 sees is the text step 1 wrote before its ``<mesh-start>`` (all of it, when there
is no segment).

``config.constrain`` samples through :class:`ar3d_r1.policy.generation.MeshGrammarLogitsProcessor`, so
every segment is well-formed. It is not the paper's behaviour (log-probs are still the unconstrained
policy's): it exists for tests and dry runs with random tiny policies, whose free samples never are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ar3d_r1.policy.mesh_tokens import MeshTokenError, MeshVocab, mesh_segment_span, parse_mesh_segment
from ar3d_r1.rollout.prompts import step1_messages, step2_messages


@dataclass
class StepOutcome:
    """One sample's result in one step.

    ``prompt_ids`` / ``completion_ids``: token ids (the completion ends with its stop token when it
    stopped, else it was cut at the length budget); ``plan``: decoded text before the mesh segment;
    ``codes``: ``(N,) int64`` mesh codes or None; ``failure``: a MeshTokenError reason or None;
    ``grid``: ``(R, R, R) bool`` decoded occupancy or None.
    """

    prompt_ids: list[int]
    completion_ids: list[int]
    plan: str
    codes: np.ndarray | None = None
    failure: str | None = None
    grid: np.ndarray | None = field(default=None, repr=False)


def segment_shares(completion_ids: list[int], vocab: MeshVocab, opened: bool = False) -> dict[str, int]:
    """Token counts of a completion by segment: ``plan`` (before ``<mesh-start>``), ``mesh`` (the segment
    with its delimiters) and ``tail`` (after ``<mesh-end>``: the stop token, stray text). ``opened``: the
    prompt ended with ``<mesh-start>`` (the authors' mesh turn), so the completion starts in the segment."""
    ids = [vocab.start_id, *completion_ids] if opened else list(completion_ids)
    span = mesh_segment_span(ids, vocab)
    n = len(ids)
    if span is None:
        return {"plan": n, "mesh": 0, "tail": 0}
    s, e = span
    mesh = min(e, n - 1) - s + 1
    return {"plan": s, "mesh": mesh - int(opened), "tail": n - s - mesh}


def chat_prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    """Token ids of ``messages`` under the tokenizer's chat template, ready for the assistant's turn."""
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return [int(i) for i in ids]


def stop_ids(model, tokenizer, vocab: MeshVocab) -> list[int]:
    """The ids generation stops at: the model's eos ids, the tokenizer's eos and ``<mesh-end>``."""
    eos = model.generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list | tuple) else [eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    ids.add(vocab.end_id)
    return sorted(ids)


@torch.no_grad()
def generate_completions(model, tokenizer, prompt_ids: list[list[int]], *, max_new_tokens: int,
                         temperature: float, top_k: int, top_p: float, stops: list[int],
                         generator_seed: int | None = None, grammar=None) -> list[list[int]]:
    """Sample one completion per prompt (left-padded batch); each is cut after its first stop token.
    ``grammar``: ``(vocab, n_tokens)`` to constrain sampling to well-formed segments (module docstring)."""
    pad = tokenizer.pad_token_id
    width = max(len(p) for p in prompt_ids)
    ids = torch.full((len(prompt_ids), width), pad, dtype=torch.long)
    att = torch.zeros_like(ids)
    for i, p in enumerate(prompt_ids):
        ids[i, width - len(p):] = torch.as_tensor(p)
        att[i, width - len(p):] = 1
    if generator_seed is not None:
        torch.manual_seed(generator_seed)
    extra = {}
    if grammar is not None:
        from transformers import LogitsProcessorList

        from ar3d_r1.policy.generation import MeshGrammarLogitsProcessor

        vocab, n_tokens = grammar
        extra["logits_processor"] = LogitsProcessorList(
            [MeshGrammarLogitsProcessor(vocab, n_tokens, width, max_new_tokens, tokenizer.eos_token_id)])
    out = model.generate(
        input_ids=ids.to(model.device), attention_mask=att.to(model.device), do_sample=True,
        temperature=temperature, top_k=top_k or None, top_p=top_p, max_new_tokens=max_new_tokens,
        eos_token_id=stops, pad_token_id=pad, **extra,
    )
    completions = []
    stop_set = set(stops)
    for row in out[:, width:].tolist():
        cut = next((j + 1 for j, t in enumerate(row) if t in stop_set), len(row))
        completions.append(row[:cut])
    return completions


def parse_outcome(prompt_ids, completion_ids, tokenizer, vocab: MeshVocab, n_tokens: int,
                  pad: str = "error") -> StepOutcome:
    """Split a completion into plan text and mesh codes; a malformed segment records its reason
    (``pad="repeat"``: a short one is padded with its last code, :func:`parse_mesh_segment`)."""
    span = mesh_segment_span(completion_ids, vocab)
    plan_ids = completion_ids if span is None else completion_ids[: span[0]]
    stops = {tokenizer.eos_token_id, tokenizer.pad_token_id}
    plan = tokenizer.decode([t for t in plan_ids if t not in stops], skip_special_tokens=True).strip()
    outcome = StepOutcome(list(prompt_ids), list(completion_ids), plan)
    try:
        outcome.codes = parse_mesh_segment(completion_ids, vocab, n_tokens, pad=pad)
    except MeshTokenError as exc:
        outcome.failure = exc.reason
    return outcome


@torch.no_grad()
def decode_grids(vqvae, outcomes: list[StepOutcome], batch: int = 16) -> None:
    """Fill ``outcome.grid`` (occupied where the VQVAE's logit > 0) for outcomes that have codes; a
    decode that comes out empty is a failure ``empty_shape``."""
    todo = [o for o in outcomes if o.codes is not None]
    device = next(vqvae.parameters()).device
    for start in range(0, len(todo), batch):
        part = todo[start:start + batch]
        ids = torch.as_tensor(np.stack([o.codes for o in part]), device=device)
        logits = vqvae.decode(ids)[:, 0].float().cpu().numpy()
        for o, lg in zip(part, logits, strict=True):
            o.grid = lg > 0
            if not o.grid.any():
                o.grid, o.failure = None, "empty_shape"


def sample_turn(model, tokenizer, prompt_ids: list[list[int]], sampling: dict, *, backend=None,
                step_seed: int | None = None, seeds: list[int] | None = None) -> list[list[int]]:
    """One turn's completions: through ``backend`` with one seed per prompt (``seeds``; issue 17), else
    HF ``generate`` seeded with ``step_seed``. ``sampling``: :func:`generate_completions`'s keywords
    (``max_new_tokens``, ``temperature``, ``top_k``, ``top_p``, ``stops``, ``grammar``)."""
    if backend is not None:
        from ar3d_r1.rollout.backends import SamplingSettings

        settings = SamplingSettings(sampling["max_new_tokens"], sampling["temperature"], sampling["top_k"],
                                    sampling["top_p"], tuple(sampling["stops"]))
        return backend.generate(prompt_ids, settings, seeds, grammar=sampling["grammar"])
    return generate_completions(model, tokenizer, prompt_ids, generator_seed=step_seed, **sampling)


@dataclass
class Rollout:
    """A generation batch: ``prompts`` (B = P·G texts, grouped), and each step's outcomes (B each)."""

    prompts: list[str]
    step1: list[StepOutcome]
    step2: list[StepOutcome] | None


def two_step_rollout(model, tokenizer, vqvae, vocab: MeshVocab, prompts: list[str], config, *,
                     seed: int | None = None, backend=None, sample_seeds=None) -> Rollout:
    """Run both steps for ``prompts`` (already repeated G times, grouped); step 2 only if
    ``config.two_step``. ``config``: a :class:`ar3d_r1.config.HiGRPOConfig`.

    ``backend`` (an :mod:`ar3d_r1.rollout.backends` backend) with ``sample_seeds`` (``turn -> seeds``,
    one per prompt, for turn 1 and 2) draws every sample from its own seed; without them, HF ``generate``
    samples the batch from the global generator seeded with ``seed``."""
    n_tokens = vqvae.config.num_tokens
    stops = stop_ids(model, tokenizer, vocab)
    budget = config.max_plan_tokens + n_tokens + 3  # plan, <mesh-start>, N codes, <mesh-end>, stop
    sampling = dict(max_new_tokens=budget, temperature=config.temperature, top_k=config.top_k,
                    top_p=config.top_p, stops=stops,
                    grammar=(vocab, n_tokens) if config.constrain else None)

    def run(messages: list[list[dict]], step_seed, turn: int) -> list[StepOutcome]:
        p_ids = [chat_prompt_ids(tokenizer, m) for m in messages]
        comps = sample_turn(model, tokenizer, p_ids, sampling, backend=backend, step_seed=step_seed,
                            seeds=sample_seeds(turn) if backend is not None else None)
        outs = [parse_outcome(p, c, tokenizer, vocab, n_tokens, config.mesh_pad)
                for p, c in zip(p_ids, comps, strict=True)]
        decode_grids(vqvae, outs)
        return outs

    step1 = run([step1_messages(p) for p in prompts], seed, 1)
    step2 = None
    if config.two_step:
        step2 = run([step2_messages(p, o.plan) for p, o in zip(prompts, step1, strict=True)],
                    None if seed is None else seed + 1, 2)
    return Rollout(prompts=list(prompts), step1=step1, step2=step2)
