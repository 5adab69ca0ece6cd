"""The authors' released one-step rollout (``rollout_style: reasoning-then-mesh``, preset ``3dgen-r1``).

Source: ``Ivan-Tang-3D/3DGen-R1`` at 290cb73, ``grpo_3d_trainer.py`` with ``enable_two_stage_cot False``.
For every caption p and each of its G samples:

1. **reasoning turn**: the reasoning prompt (``reasoning_prompt_file``, one ``{}`` for p), after the system
   message ``reasoning_system_prompt``, through the policy's chat template with the generation prompt;
   the policy writes a reasoning text r (at most ``max_plan_tokens`` new tokens, up to its end of turn);
2. **mesh turn**: ``"{p}. {r}"`` as one user message through the chat template with the generation
   prompt, then the ``<mesh-start>`` id appended; the policy writes the mesh codes, ``<mesh-end>``
   (at most ``max_mesh_tokens``; 0: N + 2), decoded by the VQVAE (N = its ``num_tokens``, 1,024 for the
   paper's) into the occupancy grid the rewards render.

Both turns are trained: their log-probs are those of the two prompts above (:class:`Rollout` ``step1`` =
the reasoning turn, ``step2`` = the mesh turn; the mesh outcome's ``prompt_ids`` end with
``<mesh-start>``). The loss switches that make it the authors' loss (one advantage for both turns, one
token mean over both) are config fields of the trainer (docs/training.md).

What differs from theirs: r is the decoded text of the completion we keep (cut after the first stop
token; theirs decodes the padded output with special tokens skipped, the same text); a malformed mesh
segment is a failed sample unless ``mesh_pad: repeat`` (their parser pads a short one with its last
code, and one without any code with code 0 — that last case stays a failure here).
"""

from __future__ import annotations

from pathlib import Path

from ar3d_r1.policy.mesh_tokens import MeshTokenError, MeshVocab, parse_mesh_segment
from ar3d_r1.rollout.hi_grpo import Rollout, StepOutcome, chat_prompt_ids, decode_grids, sample_turn, stop_ids

#: Our reasoning prompt (``reasoning_prompt_file`` empty), one ``{}`` for the caption. The authors' own is
#: their ``data/prompt/3d_reasoning_prompt.txt``, which ``--reasoning_prompt_file`` reads.
REASONING_PROMPT = Path(__file__).resolve().with_name("reasoning_prompt.txt")


class ReasoningPromptError(ValueError):
    """The reasoning prompt file is missing, not UTF-8 or not a one-``{}`` template (the message names it)."""


def load_reasoning_prompt(path: str | Path = "") -> str:
    """The reasoning prompt template at ``path`` (empty: ours, :data:`REASONING_PROMPT`).

    Raises:
        ReasoningPromptError: no such file, not UTF-8, or not exactly one ``{}`` placeholder (the message
            names the file and the ``reasoning_prompt_file`` field).
    """
    path = Path(path) if str(path) else REASONING_PROMPT
    if not path.is_file():
        raise ReasoningPromptError(f"reasoning_prompt_file {path}: no such file")
    try:
        text = path.read_text("utf-8")
    except UnicodeDecodeError:
        raise ReasoningPromptError(f"reasoning_prompt_file {path}: not UTF-8") from None
    try:
        ok = text.count("{}") == 1 and text.format("x") is not None
    except (IndexError, KeyError, ValueError):
        ok = False
    if not ok:
        raise ReasoningPromptError(f"reasoning_prompt_file {path}: needs exactly one '{{}}' for the caption "
                                   "and no other braces (it is filled with str.format, as the authors' "
                                   "trainer does)")
    return text


def reasoning_messages(prompt: str, template: str, system: str = "") -> list[dict]:
    """The reasoning turn's chat messages: ``system`` (when not empty), then the filled template."""
    head = [{"role": "system", "content": system}] if system else []
    return head + [{"role": "user", "content": template.format(prompt)}]


def mesh_prompt_ids(tokenizer, prompt: str, reasoning: str, vocab: MeshVocab) -> list[int]:
    """The mesh turn's prompt: ``"{prompt}. {reasoning}"`` through the chat template, then
    ``<mesh-start>``."""
    messages = [{"role": "user", "content": f"{prompt}. {reasoning}"}]
    return chat_prompt_ids(tokenizer, messages) + [vocab.start_id]


def parse_mesh_turn(prompt_ids: list[int], completion_ids: list[int], reasoning: str, vocab: MeshVocab,
                    n_tokens: int, pad: str = "error") -> StepOutcome:
    """The mesh turn's outcome: its codes read as the segment opened by the prompt's ``<mesh-start>``
    (:func:`parse_mesh_segment` rules), or the failure reason; ``plan`` is the reasoning it continued."""
    outcome = StepOutcome(list(prompt_ids), list(completion_ids), reasoning)
    try:
        outcome.codes = parse_mesh_segment([vocab.start_id, *completion_ids], vocab, n_tokens, pad=pad)
    except MeshTokenError as exc:
        outcome.failure = exc.reason
    return outcome


def reasoning_then_mesh_rollout(model, tokenizer, vqvae, vocab: MeshVocab, prompts: list[str], config, *,
                                seed: int | None = None, backend=None, sample_seeds=None) -> Rollout:
    """Both turns for ``prompts`` (already repeated G times, grouped); ``config``: a
    :class:`ar3d_r1.config.HiGRPOConfig`. Seeds as :func:`ar3d_r1.rollout.two_step_rollout` (turn 1 the
    reasoning, turn 2 the mesh). Returns a :class:`Rollout` whose ``step1`` outcomes carry the reasoning
    (no codes) and ``step2`` the meshes."""
    n_tokens = vqvae.config.num_tokens
    template = load_reasoning_prompt(config.reasoning_prompt_file)
    stops = stop_ids(model, tokenizer, vocab)
    common = dict(temperature=config.temperature, top_k=config.top_k, top_p=config.top_p, stops=stops)
    think = dict(max_new_tokens=config.max_plan_tokens, grammar=None, **common)
    mesh = dict(max_new_tokens=config.max_mesh_tokens or n_tokens + 2,
                grammar=(vocab, n_tokens) if config.constrain else None, **common)

    p1 = [chat_prompt_ids(tokenizer, reasoning_messages(p, template, config.reasoning_system_prompt))
          for p in prompts]
    c1 = sample_turn(model, tokenizer, p1, think, backend=backend, step_seed=seed,
                     seeds=sample_seeds(1) if backend is not None else None)
    step1 = [StepOutcome(p, c, tokenizer.decode(c, skip_special_tokens=True))
             for p, c in zip(p1, c1, strict=True)]
    p2 = [mesh_prompt_ids(tokenizer, p, o.plan, vocab) for p, o in zip(prompts, step1, strict=True)]
    c2 = sample_turn(model, tokenizer, p2, mesh, backend=backend,
                     step_seed=None if seed is None else seed + 1,
                     seeds=sample_seeds(2) if backend is not None else None)
    step2 = [parse_mesh_turn(p, c, o.plan, vocab, n_tokens, config.mesh_pad)
             for p, c, o in zip(p2, c2, step1, strict=True)]
    decode_grids(vqvae, step2)
    return Rollout(prompts=list(prompts), step1=step1, step2=step2)
