"""One policy turn: chat messages for the one- and two-step prompts, HF ``generate``, the mesh segment parsed.

Prompts: the wrapper of ShapeLLM-Omni's eval/demo (shapellm-facts.md), "Please generate a 3D mesh based
on the prompt I provided: {prompt}", alone for the one-step model; for AR3D-R1's two steps the wording of
the trainer (``ar3d_r1/rollout/prompts.py``, ``hi-grpo-instructions-v1``; the paper does
not publish its instructions), repeated here verbatim so that a policy is evaluated the way it was
trained: step 1 = semantic instruction + wrapped prompt -> plan s + coarse tokens t; step 2 = wrapped
prompt + s + visual instruction -> plan v + refined tokens o.

Sampling defaults are the authors' eval settings (top_k 8192, top_p 0.7, temperature 0.7, up to 2048 new
tokens); generation stops at eos or ``<mesh-end>``. ``constrain=True`` adds
:class:`MeshGrammarLogitsProcessor`, which only lets a well-formed segment through (not the authors'
behaviour; it is for tiny random policies whose free samples are never valid).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ar3d_r1.policy.mesh_tokens import MeshVocab, mesh_segment_span, parse_mesh_segment

__all__ = [
    "MESH_PROMPT",
    "PROMPT_VERSION",
    "PROMPT_WRAPPER",
    "SEMANTIC_INSTRUCTION",
    "VISUAL_INSTRUCTION",
    "MeshGrammarLogitsProcessor",
    "SamplingConfig",
    "TurnOutput",
    "build_messages",
    "generate_turn",
]

PROMPT_VERSION = "hi-grpo-instructions-v1"
PROMPT_WRAPPER = "Please generate a 3D mesh based on the prompt I provided: "
MESH_PROMPT = PROMPT_WRAPPER + "{prompt}"
SEMANTIC_INSTRUCTION = (
    "Think about the object's category, the layout of its parts and its proportions, then answer with a mesh."
)
VISUAL_INSTRUCTION = (
    "Think about its counts, symmetry, colour, material and texture, then answer with a refined mesh."
)


def build_messages(prompt: str, step: int = 0, plan: str | None = None) -> list[dict[str, Any]]:
    """Chat messages for ``step`` 0 (ShapeLLM-Omni's one-step prompt), 1 or 2 (AR3D-R1's two steps).

    Step 2 needs ``plan``, the step-1 reasoning text without its mesh segment.
    """
    if step == 0:
        return [{"role": "user", "content": f"{PROMPT_WRAPPER}{prompt}"}]
    if step == 1:
        return [{"role": "user", "content": f"{SEMANTIC_INSTRUCTION}\n{PROMPT_WRAPPER}{prompt}"}]
    if step == 2:
        if plan is None:
            raise ValueError("step 2 needs the step-1 plan")
        return [{"role": "user", "content": f"{PROMPT_WRAPPER}{prompt}\n{plan}\n{VISUAL_INSTRUCTION}"}]
    raise ValueError(f"step must be 0, 1 or 2, got {step!r}")


@dataclass(frozen=True)
class SamplingConfig:
    """Decoding settings; the defaults are ShapeLLM-Omni's eval (shapellm-facts.md)."""

    top_k: int = 8192
    top_p: float = 0.7
    temperature: float = 0.7
    max_new_tokens: int = 2048
    do_sample: bool = True


class MeshGrammarLogitsProcessor:
    """Masks logits so every row's continuation is ``text <mesh-start> N x <mesh{i}> <mesh-end> eos``.

    Before the segment: any token but mesh codes, ``<mesh-end>`` and eos; ``<mesh-start>`` is forced
    once only N + 2 new tokens remain. Inside: codes only, then ``<mesh-end>``. After it: eos. A prompt
    that ends with ``<mesh-start>`` (the authors' mesh turn, :mod:`ar3d_r1.one_step`) opens the segment:
    the continuation is then ``N x <mesh{i}> <mesh-end> eos``.
    A ``transformers`` logits processor: ``(input_ids (B, L) int64, scores (B, V) float) -> scores``.
    """

    def __init__(self, vocab: MeshVocab, n_tokens: int, prompt_length: int, max_new_tokens: int,
                 eos_token_id: int) -> None:
        self.vocab, self.n, self.prompt_length = vocab, n_tokens, prompt_length
        self.max_new_tokens, self.eos = max_new_tokens, eos_token_id
        if max_new_tokens < n_tokens + 2:
            raise ValueError(f"max_new_tokens {max_new_tokens} cannot hold a {n_tokens}-code segment")

    def __call__(self, input_ids, scores):
        import torch

        codes = torch.tensor(self.vocab.code_ids, device=scores.device)
        out = torch.full_like(scores, float("-inf"))
        opened = self.prompt_length > 0 and bool((input_ids[:, self.prompt_length - 1] == self.vocab.start_id)
                                                 .all())
        for row in range(input_ids.shape[0]):
            new = input_ids[row, self.prompt_length - opened:].tolist()
            span = mesh_segment_span(new, self.vocab)
            if span is None:
                if self.max_new_tokens - len(new) <= self.n + 2:
                    out[row, self.vocab.start_id] = 0.0
                else:
                    out[row] = scores[row]
                    out[row, codes] = float("-inf")
                    out[row, [self.vocab.end_id, self.eos]] = float("-inf")
            elif span[1] < len(new):  # segment closed
                out[row, self.eos] = 0.0
            elif len(new) - span[0] - 1 < self.n:
                out[row, codes] = scores[row, codes]
            else:
                out[row, self.vocab.end_id] = 0.0
        return out


@dataclass
class TurnOutput:
    """One generated turn: ``text`` (reasoning before the segment, decoded), ``codes`` (N,) int64 or
    ``None`` with ``error`` (a :class:`~ar3d_r1.policy.mesh_tokens.MeshTokenError`), ``token_ids`` (the
    new ids) and ``prompt_ids`` (the prompt's ids)."""

    text: str
    codes: np.ndarray | None
    error: Exception | None
    token_ids: list[int]
    prompt_ids: list[int]


def generate_turn(
    model: Any,
    processor: Any,
    messages: list[dict[str, Any]],
    vocab: MeshVocab,
    n_tokens: int,
    *,
    sampling: SamplingConfig = SamplingConfig(),
    seed: int | None = None,
    constrain: bool = False,
    pad: str = "error",
) -> TurnOutput:
    """Generate one assistant turn for ``messages`` and parse its mesh segment (never raises for a bad one).

    ``seed`` seeds torch's generator just before sampling, so a (prompt, seed) pair reproduces on the
    same device and library versions.
    """
    import torch
    from transformers import LogitsProcessorList

    tok = processor.tokenizer
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], return_tensors="pt").to(model.device)
    prompt_len = int(inputs["input_ids"].shape[1])
    eos = [tok.eos_token_id, vocab.end_id]
    processors = LogitsProcessorList()
    if constrain:
        processors.append(MeshGrammarLogitsProcessor(vocab, n_tokens, prompt_len, sampling.max_new_tokens,
                                                     tok.eos_token_id))
    if seed is not None:
        torch.manual_seed(int(seed))
    kwargs: dict[str, Any] = {"max_new_tokens": sampling.max_new_tokens, "do_sample": sampling.do_sample,
                              "eos_token_id": eos, "pad_token_id": tok.pad_token_id,
                              "logits_processor": processors}
    if sampling.do_sample:
        kwargs.update(top_k=sampling.top_k, top_p=sampling.top_p, temperature=sampling.temperature)
    with torch.no_grad():
        out = model.generate(**inputs, **kwargs)
    new = out[0, prompt_len:].tolist()
    span = mesh_segment_span(new, vocab)
    plan = tok.decode(new[: span[0]] if span else new, skip_special_tokens=True).strip()
    try:
        codes, error = parse_mesh_segment(new, vocab, n_tokens, pad=pad), None  # type: ignore[arg-type]
    except ValueError as exc:
        codes, error = None, exc
    return TurnOutput(plan, codes, error, new, inputs["input_ids"][0].tolist())
