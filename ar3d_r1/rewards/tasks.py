"""What the trainer trains on: a prompt source and a scorer that turns a rollout into R_high and R_low.

:class:`GeometryTask` is the ``tiny-cpu`` task (procedural prompts, geometric rewards on reward6 renders
and voxels, :mod:`ar3d_r1.rewards.geometry`). Both ensembles use the dimension normalisation of
:func:`ar3d_r1.rewards.ensemble.dimension_normalised`: each reward's dimensions are summed and divided
by their count, then rewards are summed (paper §5). Step 1's rewards score M1 (global), step 2's score
M2 (local); in one-step mode both score M1. The paper's task, the served VLM rewards on captions from a
file, is :class:`ar3d_r1.rewards.vlm_task.VLMTask` (``task vlm``), with the same interface.

A sample without a shape has NaN in its rewards; :func:`resolve_failures` applies the config's
``malformed_reward`` rule ("zero": it scores 0; "mask": it drops out of the loss).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ar3d_r1.rewards.ensemble import ensemble
from ar3d_r1.rollout.prompts import TaskPrompt, geometry_prompts

__all__ = ["GeometryTask", "Scores", "ensemble", "resolve_failures"]


@dataclass
class Scores:
    """Rewards of one generation batch (B samples): ``r_high``, ``r_low`` ``(B,) float64`` (NaN for a
    failed sample), per-dimension means for the log, failure reasons per step, and ``stats``: counts
    for the log that add up over processes (the served rewards' requests, :mod:`ar3d_r1.rewards.vlm_task`)."""

    r_high: np.ndarray
    r_low: np.ndarray
    dimensions: dict[str, float]
    failures1: list[str | None]
    failures2: list[str | None]
    stats: dict[str, float] = field(default_factory=dict)


class GeometryTask:
    """The procedural geometry task: ``num_prompts`` prompts, targets voxelised at the VQVAE's resolution
    and rendered once with the reward renderer."""

    def __init__(self, num_prompts: int, prompt_seed: int, resolution: int, render_size: int) -> None:
        from ar3d_r1.policy.shapes import voxelise_shape
        from ar3d_r1.rewards.geometry import Reward6Renderer, TargetShape

        self.prompts: list[TaskPrompt] = geometry_prompts(num_prompts, prompt_seed)
        self.render = Reward6Renderer(render_size)
        self.targets: dict[str, TargetShape] = {}
        for p in self.prompts:
            grid = voxelise_shape(p.spec, resolution, fill=True)
            self.targets[p.text] = TargetShape(grid=grid, views=self.render(grid))

    def state_dict(self) -> dict:
        """The reward cache a checkpoint keeps: the reward6 renders of recent grids."""
        return {"render": self.render.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.render.load_state_dict(state["render"])

    def score(self, rollout) -> Scores:
        from ar3d_r1.rewards.geometry import STEP1_REWARDS, STEP2_REWARDS, global_geometry, local_geometry

        prompts = rollout.prompts
        targets = [self.targets[p] for p in prompts]
        m1 = [o.grid for o in rollout.step1]
        m2 = [o.grid for o in rollout.step2] if rollout.step2 is not None else m1
        views1 = [None if g is None else self.render(g) for g in m1]
        high = global_geometry(prompts, views1, grids=m1, targets=targets)
        low = local_geometry(prompts, [None] * len(m2), grids=m2, targets=targets)
        dims = {f"step1/{k}": float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
                for k, v in high.values.items()}
        dims.update({f"step2/{k}": float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
                     for k, v in low.values.items()})
        return Scores(ensemble(high.values, STEP1_REWARDS), ensemble(low.values, STEP2_REWARDS), dims,
                      high.failures, low.failures)


def resolve_failures(rewards: np.ndarray, group_size: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``malformed_reward`` to ``rewards (B,)`` with NaN for failed samples.

    Returns ``(rewards, valid)``: ``"zero"`` (and ``"half-column"``, whose task,
    :class:`ar3d_r1.rewards.authors.HPSUnifiedTask`, leaves no NaN) puts 0 in place of NaN and keeps every
    sample; ``"mask"``
    puts the group's mean of its valid samples (0 if none) in place of NaN, so the failed sample does
    not shift its group's statistics, and marks it invalid (``valid (B,) bool``) for the loss mask.
    """
    r = np.asarray(rewards, dtype=np.float64).copy()
    bad = ~np.isfinite(r)
    if mode in ("zero", "half-column"):  # half-column: the task already scored its failures (0 / 0.5)
        r[bad] = 0.0
        return r, np.ones_like(bad)
    if mode != "mask":
        raise ValueError(f"malformed_reward must be 'zero', 'mask' or 'half-column', got {mode!r}")
    grouped, bad_g = r.reshape(-1, group_size), bad.reshape(-1, group_size)
    for g in range(grouped.shape[0]):
        ok = ~bad_g[g]
        grouped[g, bad_g[g]] = grouped[g, ok].mean() if ok.any() else 0.0
    return grouped.reshape(-1), ~bad
