"""The supervised warm start before Hi-GRPO: prompt → (plan, target mesh tokens), for both steps.

ShapeLLM-Omni is instruction-tuned on text → mesh-token pairs before the paper's RL; the ``tiny-cpu``
pipeline does the same in miniature (design.md §6). For each procedural prompt, the target shape is
voxelised, encoded by the fitted VQVAE into N codes, and written as two chat turns, one per rollout
step, in exactly the form the rollout asks for:

- step 1: ``step1_messages(p)`` → ``semantic_plan`` + ``<mesh-start>`` codes ``<mesh-end>``;
- step 2: ``step2_messages(p, semantic_plan)`` → ``visual_plan`` + the same segment.

The loss is the mean cross-entropy of the assistant's tokens (prompt tokens are masked with -100), the
standard causal-LM SFT objective.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from ar3d_r1.config import SFTConfig
from ar3d_r1.policy.mesh_tokens import format_mesh_segment
from ar3d_r1.rollout.hi_grpo import chat_prompt_ids
from ar3d_r1.rollout.prompts import TaskPrompt, geometry_prompts, step1_messages, step2_messages


@torch.no_grad()
def target_codes(vqvae, prompts: list[TaskPrompt]) -> np.ndarray:
    """``(P, N) int64`` VQVAE codes of each prompt's target shape (voxelised at the VQVAE's resolution)."""
    from ar3d_r1.policy.shapes import voxelise_shape

    r = vqvae.config.resolution
    grids = np.stack([voxelise_shape(p.spec, r, fill=True) for p in prompts]).astype(np.float32)
    device = next(vqvae.parameters()).device
    return vqvae.encode(torch.as_tensor(grids[:, None], device=device)).cpu().numpy()


def sft_examples(tokenizer, prompts: list[TaskPrompt], codes: np.ndarray) -> list[tuple[list, list]]:
    """``(prompt_ids, answer_ids)`` pairs, two per prompt (step 1 and step 2); answers end with eos."""
    examples = []
    for p, c in zip(prompts, codes, strict=True):
        segment = format_mesh_segment(c)
        turns = ((step1_messages(p.text), p.semantic_plan()),
                 (step2_messages(p.text, p.semantic_plan()), p.visual_plan()))
        for messages, plan in turns:
            answer = tokenizer(f"{plan} {segment}", add_special_tokens=False)["input_ids"]
            examples.append((chat_prompt_ids(tokenizer, messages), list(answer) + [tokenizer.eos_token_id]))
    return examples


def collate(examples, pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (-100 on prompt and padding)."""
    width = max(len(p) + len(a) for p, a in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full_like(ids, -100)
    att = torch.zeros_like(ids)
    for i, (p, a) in enumerate(examples):
        seq = torch.as_tensor(p + a)
        ids[i, : len(seq)] = seq
        att[i, : len(seq)] = 1
        labels[i, len(p): len(seq)] = torch.as_tensor(a)
    return {"input_ids": ids, "attention_mask": att, "labels": labels}


def run_sft(config: SFTConfig, *, console=None) -> Path:
    """Build (or load) the policy, fit it on the task's examples, save it to ``config.output_dir``."""
    from ar3d_r1.policy.loading import load_policy
    from ar3d_r1.policy.tiny import build_tiny_policy
    from ar3d_r1.policy.vqvae import load_vqvae

    torch.manual_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(config.output_dir)
    vqvae = load_vqvae(config.vqvae)
    source = config.policy
    if not source:
        source = str(build_tiny_policy(out / "init", codebook_size=vqvae.config.codebook_size,
                                       seed=config.seed, hidden_size=config.hidden_size,
                                       num_layers=config.num_layers))
    model, processor = load_policy(source)
    tok = processor.tokenizer
    prompts = geometry_prompts(config.num_prompts, config.prompt_seed)
    examples = sft_examples(tok, prompts, target_codes(vqvae, prompts))
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 20))
    rng = np.random.default_rng(config.seed)
    log = []
    start = time.perf_counter()
    for step in range(config.max_steps):
        pick = rng.choice(len(examples), size=min(config.batch_size, len(examples)), replace=False)
        batch = collate([examples[i] for i in pick], tok.pad_token_id)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        log.append({"step": step + 1, "loss": float(loss.detach()), "seconds": time.perf_counter() - start})
        if console is not None and ((step + 1) % config.log_every == 0 or step + 1 == config.max_steps):
            console.print(f"sft step {step + 1}/{config.max_steps} loss {log[-1]['loss']:.4f}")
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    (out / "sft_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log), encoding="utf-8")
    return out
