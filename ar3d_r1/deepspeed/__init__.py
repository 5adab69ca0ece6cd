"""DeepSpeed configs of the ``paper`` preset on one node of 8 GPUs (docs/training.md, "At scale").

- ``zero2.json`` / ``zero3.json``: DeepSpeed configs. Batch arithmetic of the paper run (paper-facts.md):
  ``train_micro_batch_size_per_gpu`` 1 (per-device batch 1) × ``gradient_accumulation_steps`` 2 × 8 GPUs
  = ``train_batch_size`` 16 completions = 2 prompts × G 8 per optimizer step; ``gradient_clipping`` is
  the preset's ``max_grad_norm``; bf16. No ``optimizer`` block: the trainer's own AdamW is used.
- ``accelerate_zero2.yaml`` / ``accelerate_zero3.yaml``: ``accelerate launch --config_file`` files that
  point at them (paths relative to the repository root).
- ``zero3_3dgen_r1.json`` / ``accelerate_zero3_3dgen_r1.yaml``: the ``3dgen-r1`` preset's layout (the
  authors' ``run_grpo_3d.sh``): 7 training processes on GPUs 1-7 (GPU 0 serves UnifiedReward-2.0), per
  process 8 completions (one prompt × G 8) per micro-step × accumulation 2, so ``train_batch_size`` 112 =
  14 prompts × 8 per optimizer step [paper: 8 GPUs, effective batch 16].
"""

from pathlib import Path

HERE = Path(__file__).resolve().parent


def config_path(name: str) -> Path:
    """The path of ``zero2.json``, ``zero3.json``, ``accelerate_zero2.yaml`` or ``accelerate_zero3.yaml``."""
    path = HERE / name
    if not path.is_file():
        have = sorted(p.name for p in HERE.iterdir())
        raise FileNotFoundError(f"no DeepSpeed config {name!r} in {HERE}; have {have}")
    return path
