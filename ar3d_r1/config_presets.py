"""The field values of :mod:`ar3d_r1.config`'s presets (``ar3d-r1 train --preset NAME``); what each preset
is, and the source of its numbers, is in :mod:`ar3d_r1.config`'s docstring and docs/training.md.

Plain data: this module imports nothing of ``ar3d_r1`` (``ar3d_r1.config`` re-exports :data:`PRESETS`).
"""

from __future__ import annotations

from typing import Any

#: ``{preset: {"sft": fields, "train": fields}}``, laid over the dataclasses' defaults by
#: :func:`ar3d_r1.config.preset`.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {
        "sft": {},  # ShapeLLM-Omni is already instruction-tuned; no warm start
        "train": dict(
            output_dir="runs/paper/train", policy="yejunliang23/ShapeLLM-7B-omni",
            vqvae="yejunliang23/3DVQVAE",
            task="vlm", learning_rate=1e-6, beta=0.01, num_generations=8, per_device_train_batch_size=1,
            gradient_accumulation_steps=2, max_steps=1200, lam=1.0, epsilon_low=0.2, epsilon_high=0.28,
            temperature=0.7, top_k=8192, top_p=0.7, render_size=512, save_steps=100,
        ),
    },
    # The authors' released one-step trainer (3DGen-R1 at 290cb73; every field: docs/training.md "The
    # authors' released trainer"). 7 processes x 2 micro-steps x 1 prompt x G 8 = 14 prompts per step.
    "3dgen-r1": {
        "sft": {},
        "train": dict(
            output_dir="runs/3dgen-r1/train", policy="yejunliang23/ShapeLLM-7B-omni",
            vqvae="yejunliang23/3DVQVAE", task="hps-unified2", rollout_style="reasoning-then-mesh",
            two_step=True,
            advantage_mode="shared", loss_segments="joint", loss_normaliser="micro-batch", mesh_mask="all",
            clip_ratio=False,
            reward_rig="video6", malformed_reward="half-column", mesh_pad="repeat",
            frozen_modules="visual,vision_tower,vision_model,mm_projector,multi_modal_projector,"
                           "vision_resampler,aligner,lm_head",
            learning_rate=1e-6, lr_scheduler_type="linear", warmup_steps=0, weight_decay=0.0,
            max_grad_norm=1.0,
            beta=0.01, num_generations=8, per_device_train_batch_size=8, gradient_accumulation_steps=2,
            max_steps=900, save_steps=200, scale_rewards="unbiased", adv_eps=1e-4, dynamic_sampling="off",
            temperature=1.0, top_k=0, top_p=1.0, max_plan_tokens=2048, max_mesh_tokens=2048,
            render_size=512, mixed_precision="bf16",
        ),
    },
    "tiny-cpu": {
        # One torch thread: a tiny model's ops are too small to split, and on a shared 2-core machine two
        # threads thrash (measured at load 8: generation 14.9 s vs 1.4 s, an SFT step 3.0 s vs 0.6 s).
        # The warm start sees five prompts; Hi-GRPO then trains on the first of them for 80 steps (one
        # prompt x G 16 a step): with five prompts, 40-80 steps on 2 cores did not lift the reward by
        # 3 standard errors. G 16 and a 30-step linear warm-up: at a constant lr the policy gained most
        # of its reward within the first 5 steps (inside the first-10 window the proof compares), and
        # G 8's step means were too noisy (seeds 0-2 failed with z 0.55-2.43; with both changes z 5.4 and
        # 7.9; docs/training.md, "The CPU reference run").
        "sft": dict(output_dir="runs/tiny-cpu/sft", vqvae="runs/vqvae-tiny", threads=1, num_prompts=5,
                    prompt_seed=1, max_steps=100),
        "train": dict(
            output_dir="runs/tiny-cpu/train", policy="runs/tiny-cpu/sft", vqvae="runs/vqvae-tiny", threads=1,
            task="geometry", num_prompts=1, prompt_seed=1, learning_rate=1e-4,
            lr_scheduler_type="constant_with_warmup", warmup_steps=30, beta=0.01, num_generations=16,
            per_device_train_batch_size=4, gradient_accumulation_steps=4, max_steps=80, lam=1.0,
            temperature=0.7, top_k=0, top_p=1.0,
            max_plan_tokens=32, render_size=64, save_steps=0, logprob_chunk=512,
        ),
    },
}
