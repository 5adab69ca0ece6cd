"""A trainer on the random tiny policy (shapes kept well-formed by the mesh grammar), and a scripted task
whose rewards the test chooses, for the engine tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def make_trainer(root: Path, out: Path, **overrides):
    from ar3d_r1.cli.train import build_trainer
    from ar3d_r1.config import preset

    settings = dict(policy=str(root / "policy"), vqvae=str(root / "vqvae"), output_dir=str(out),
                    num_prompts=2, num_generations=2, per_device_train_batch_size=1,
                    gradient_accumulation_steps=2, max_steps=2,
                    max_plan_tokens=4, render_size=32, constrain=True, save_steps=1, dynamic_sampling="off",
                    temperature=1.0, lr_scheduler_type="constant", warmup_steps=0)  # every step moves
    return build_trainer(preset("tiny-cpu", **{**settings, **overrides}))


class ScriptedTask:
    """The trainer's prompts, scored by ``rule(prompt_index, row, call) -> (r_high, r_low)`` (NaN: a failed
    sample); ``row`` is the sample's row in the scored batch, ``call`` counts ``score`` calls."""

    def __init__(self, prompts, rule) -> None:
        self.prompts, self.rule, self.calls = prompts, rule, 0
        self.index = {p.text: i for i, p in enumerate(prompts)}

    def score(self, rollout):
        from ar3d_r1.rewards.tasks import Scores

        pairs = [self.rule(self.index[p], row, self.calls) for row, p in enumerate(rollout.prompts)]
        self.calls += 1
        r_high, r_low = (np.array(x, dtype=np.float64) for x in zip(*pairs, strict=True))
        n = len(pairs)
        finite = r_low[np.isfinite(r_low)]
        mean = float(finite.mean()) if finite.size else float("nan")
        return Scores(r_high, r_low, {"scripted": mean}, [None] * n, [None] * n)


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
