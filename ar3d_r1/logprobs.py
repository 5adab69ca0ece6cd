"""Per-token log-probabilities of completions, computed in chunks of positions.

The paper policy's vocabulary is ~160k (Qwen2.5's 151,665 text tokens + 8,194 mesh tokens), and a
two-step Hi-GRPO sample carries ~2 × 1,024 mesh tokens plus its plans, so full logits for one sample
are ~2,100 × 160k × 4 B ≈ 1.3 GB in float32, and autograd would keep them all for the backward pass.
Here the backbone runs once, and the LM head + log-softmax run over ``chunk`` positions at a time under
activation checkpointing: the forward keeps only each chunk's inputs (hidden states), and the backward
recomputes one chunk's logits at a time. Peak logits memory is ``chunk × V`` floats instead of
``T × V``. (trl 1.16 does the same with a fused autograd function, ``add_fused_lm_head``.)

Log-probs are taken under the sampling temperature, ``log softmax(logits / τ)``, as trl does: the
importance ratio and the KL then compare the distribution the samples were actually drawn from.
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

#: Positions per LM-head chunk: 1,024 × 160k × 4 B ≈ 650 MB of logits at the paper's vocabulary.
DEFAULT_CHUNK = 1024


def _chunk_logps(hidden: torch.Tensor, weight: torch.Tensor, bias, labels: torch.Tensor, temperature: float):
    """``hidden (n, H)``, ``weight (V, H)``, ``labels (n,)`` → ``(n,)`` log-probs of the labels."""
    logits = torch.nn.functional.linear(hidden, weight, bias).float()
    if temperature != 1.0:
        logits = logits / temperature
    return logits.log_softmax(-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)


def completion_logprobs(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    n_completion: int,
    *,
    temperature: float = 1.0,
    chunk: int = DEFAULT_CHUNK,
    **forward_kwargs,
) -> torch.Tensor:
    """Log-probs of the last ``n_completion`` tokens of each row, given everything before them.

    Args:
        model: a HF causal LM (``…ForCausalLM`` or ``Qwen2_5_VLForConditionalGeneration``): its
            ``base_model`` gives ``last_hidden_state`` and ``get_output_embeddings()`` the LM head.
        input_ids: ``(B, P + C)`` int64, prompt (left-padded) then completion (right-padded).
        attention_mask: ``(B, P + C)`` {0, 1}.
        n_completion: C, the completion width.
        temperature: sampling temperature τ (logits are divided by it).
        chunk: positions per LM-head chunk.
        forward_kwargs: passed to the backbone (e.g. ``pixel_values``).

    Returns:
        ``(B, C)`` float32 log π(token_t | tokens_<t); padding positions hold the log-prob of the pad
        token and must be masked by the caller. Differentiable when grad is enabled.
    """
    if input_ids.shape != attention_mask.shape or input_ids.dim() != 2:
        raise ValueError(f"input_ids {tuple(input_ids.shape)} and attention_mask must be the same (B, L)")
    if not 0 < n_completion < input_ids.shape[1]:
        raise ValueError(f"n_completion must be in [1, {input_ids.shape[1] - 1}], got {n_completion}")
    out = model.base_model(
        input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **forward_kwargs
    )
    # position t predicts token t + 1: the hidden states before each completion token
    hidden = out.last_hidden_state[:, -n_completion - 1 : -1]
    labels = input_ids[:, -n_completion:]
    head = model.get_output_embeddings()
    b, c, h = hidden.shape
    flat_h, flat_y = hidden.reshape(b * c, h), labels.reshape(b * c)
    parts = []
    for start in range(0, b * c, chunk):
        hs, ys = flat_h[start : start + chunk], flat_y[start : start + chunk]
        if torch.is_grad_enabled() and hs.requires_grad:
            parts.append(
                checkpoint(_chunk_logps, hs, head.weight, head.bias, ys, temperature, use_reentrant=False)
            )
        else:
            parts.append(_chunk_logps(hs, head.weight, head.bias, ys, temperature))
    return torch.cat(parts).view(b, c)


def pack_sequences(
    prompt_ids: list[list[int]], completion_ids: list[list[int]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch token lists as ``[left-padded prompt | right-padded completion]`` (trl's layout).

    Returns ``input_ids (B, P + C)`` int64, ``attention_mask (B, P + C)`` int64 and
    ``completion_mask (B, C)`` int64 (1 on real completion tokens). Raises ValueError on an empty
    completion or mismatched list lengths.
    """
    if len(prompt_ids) != len(completion_ids):
        raise ValueError(f"{len(prompt_ids)} prompts but {len(completion_ids)} completions")
    if any(len(c) == 0 for c in completion_ids):
        raise ValueError("a completion is empty; drop it or give it at least the end-of-sequence token")
    b = len(prompt_ids)
    p_len, c_len = max(len(p) for p in prompt_ids), max(len(c) for c in completion_ids)
    ids = torch.full((b, p_len + c_len), pad_id, dtype=torch.long)
    att = torch.zeros((b, p_len + c_len), dtype=torch.long)
    for i, (p, c) in enumerate(zip(prompt_ids, completion_ids, strict=True)):
        ids[i, p_len - len(p) : p_len] = torch.as_tensor(p, dtype=torch.long)
        ids[i, p_len : p_len + len(c)] = torch.as_tensor(c, dtype=torch.long)
        att[i, p_len - len(p) : p_len + len(c)] = 1
    return ids, att, att[:, p_len:].clone()
