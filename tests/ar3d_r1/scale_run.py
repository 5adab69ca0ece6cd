"""A tiny Hi-GRPO run for the at-scale tests (multi-process equivalence, kill -9 and resume).

Run as ``python tests/ar3d_r1/scale_run.py --stand_ins DIR --output_dir OUT [--field value ...]`` or
under ``accelerate launch``. The config is the ``tiny-cpu`` preset's with test-sized overrides (any
:class:`ar3d_r1.config.HiGRPOConfig` field may be given as a flag), a 16-token VQVAE and a random tiny
policy (:func:`build_stand_ins`). A random policy never writes a well-formed mesh, so the geometric
rewards would all be 0 and nothing would train; :class:`TokenTask` instead scores each sample by which
tokens it drew, a deterministic function of the completion that differs between samples, so the
advantages, the clipped loss and the optimizer all move the weights. At the end the policy's
parameters are written to ``OUT/params.pt`` (float64, by name) for the tests to compare.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


class TokenTask:
    """Procedural prompts; R_high = share of step-1 completion tokens with an even id, R_low = share of
    step-2 tokens whose id is a multiple of 3 (both in [0, 1], never NaN)."""

    def __init__(self, num_prompts: int, prompt_seed: int) -> None:
        from ar3d_r1.rollout.prompts import geometry_prompts

        self.prompts = geometry_prompts(num_prompts, prompt_seed)

    def score(self, rollout):
        from ar3d_r1.rewards.tasks import Scores

        def share(outs, k):
            return np.array([np.mean([t % k == 0 for t in o.completion_ids]) for o in outs], dtype=np.float64)

        r_high = share(rollout.step1, 2)
        r_low = share(rollout.step2 if rollout.step2 is not None else rollout.step1, 3)
        dims = {"step1/even": float(r_high.mean()), "step2/third": float(r_low.mean())}
        return Scores(r_high, r_low, dims, [None] * len(r_high), [None] * len(r_low))


def build_stand_ins(root: Path, seed: int = 0) -> Path:
    """A random 16-token VQVAE (``root/vqvae``) and a random tiny policy (``root/policy``)."""
    import torch

    from ar3d_r1.policy.tiny import build_tiny_policy
    from ar3d_r1.policy.vqvae import VQVAE3D, VQVAEConfig, save_vqvae

    torch.manual_seed(seed)
    cfg = VQVAEConfig.tiny(resolution=16)
    save_vqvae(VQVAE3D(cfg), root / "vqvae")
    build_tiny_policy(root / "policy", codebook_size=cfg.codebook_size, seed=seed)
    return root


# A constant rate: the preset's warm-up would leave 3 test steps with (almost) nothing to compare.
TEST_OVERRIDES = dict(max_plan_tokens=4, num_generations=4, num_prompts=4, threads=1, save_steps=0,
                      learning_rate=1e-3, lr_scheduler_type="constant", warmup_steps=0, logprob_chunk=64,
                      max_steps=3, dynamic_sampling="off")


def main(argv: list[str]) -> None:
    import torch

    from ar3d_r1.config import HiGRPOConfig, parse_args, preset
    from ar3d_r1.engine.trainer import HiGRPOTrainer
    from ar3d_r1.policy.loading import load_policy
    from ar3d_r1.policy.vqvae import load_vqvae

    stand_ins = Path(argv[argv.index("--stand_ins") + 1])
    rest = [a for i, a in enumerate(argv) if a != "--stand_ins" and (i == 0 or argv[i - 1] != "--stand_ins")]
    base = preset("tiny-cpu", "train", policy=str(stand_ins / "policy"), vqvae=str(stand_ins / "vqvae"),
                  **TEST_OVERRIDES)
    config = parse_args(HiGRPOConfig, rest, base)
    torch.set_num_threads(config.threads)
    vqvae = load_vqvae(config.vqvae)
    model, processor = load_policy(config.policy)
    ref = load_policy(config.policy)[0] if config.beta != 0.0 else None
    task = TokenTask(config.num_prompts, config.prompt_seed)
    trainer = HiGRPOTrainer(config, model, processor, vqvae, task, ref_model=ref)
    trainer.train()
    if trainer.accelerator.is_main_process:
        params = {k: v.detach().double().cpu() for k, v in
                  trainer.accelerator.unwrap_model(trainer.model).named_parameters()}
        torch.save(params, Path(config.output_dir) / "params.pt")
        (Path(config.output_dir) / "distributed_type.txt").write_text(
            f"{trainer.accelerator.distributed_type} {trainer.accelerator.num_processes}\n")
        print(dataclasses.asdict(config)["output_dir"], flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main(sys.argv[1:])
