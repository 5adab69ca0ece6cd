"""One policy turn: chat messages for the one- and two-step prompts, HF ``generate``, the mesh segment parsed.

Prompts (versioned by :data:`PROMPT_VERSION`; the paper does not publish its instructions, so the two
step instructions are ours):

- the wrapper of ShapeLLM-Omni's eval/demo (shapellm-facts.md): "Please generate a 3D mesh based on the
  prompt I provided: {prompt}";
- step 1 (AR3D-R1, paper §Hi-GRPO): the wrapper + :data:`SEMANTIC_INSTRUCTION` -> semantic plan s + coarse
  mesh tokens t;
- step 2: the same user turn, the assistant's plan s (its mesh segment removed), then
  :data:`VISUAL_INSTRUCTION` -> visual plan v + refined mesh tokens o.

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
    "SEMANTIC_INSTRUCTION",
    "VISUAL_INSTRUCTION",
    "MeshGrammarLogitsProcessor",
    "SamplingConfig",
    "TurnOutput",
    "build_messages",
    "generate_turn",
]

PROMPT_VERSION = "ar3d-r1-prompts-1"
MESH_PROMPT = "Please generate a 3D mesh based on the prompt I provided: {prompt}"
SEMANTIC_INSTRUCTION = (
    "First reason about the object's meaning: its subcategory, the spatial layout of its key parts, and "
    "anything the prompt leaves ambiguous. Then generate a coarse 3D mesh."
)
VISUAL_INSTRUCTION = (
    "Now reason about its visual details: textures, how the parts meet, how many there are, and their "
    "symmetry. Then generate the refined 3D mesh."
)


def build_messages(prompt: str, step: int = 0, plan: str | None = None) -> list[dict[str, Any]]:
    """Chat messages for ``step`` 0 (ShapeLLM-Omni's one-step prompt), 1 or 2 (AR3D-R1's two steps).

    Step 2 needs ``plan``, the step-1 reasoning text without its mesh segment.
    """
    def user(text: str) -> dict[str, Any]:
        return {"role": "user", "content": [{"type": "text", "text": text}]}

    wrapped = MESH_PROMPT.format(prompt=prompt)
    if step == 0:
        return [user(wrapped)]
    first = user(f"{wrapped}\n{SEMANTIC_INSTRUCTION}")
    if step == 1:
        return [first]
    if step == 2:
        if plan is None:
            raise ValueError("step 2 needs the step-1 plan")
        return [first, {"role": "assistant", "content": [{"type": "text", "text": plan}]},
                user(VISUAL_INSTRUCTION)]
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
    once only N + 2 new tokens remain. Inside: codes only, then ``<mesh-end>``. After it: eos.
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
        for row in range(input_ids.shape[0]):
            new = input_ids[row, self.prompt_length:].tolist()
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
