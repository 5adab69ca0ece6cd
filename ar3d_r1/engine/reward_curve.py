"""The reward curve of a Hi-GRPO run (``reward_curve.png``), and of a run beside its control."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def moving_average(values: list[float], window: int = 10) -> np.ndarray:
    """The trailing mean of the last ``window`` values at each position (fewer at the start), NaN skipped;
    float64, the length of ``values``."""
    x = np.asarray(values, dtype=np.float64)
    out = np.full(len(x), np.nan)
    for i in range(len(x)):
        part = x[max(0, i + 1 - window):i + 1]
        if np.isfinite(part).any():
            out[i] = np.nanmean(part)
    return out


def plot_reward_curves(runs: dict[str, list[dict]], path: Path, window: int = 10) -> Path:
    """Mean total reward per step of each run (``{label: metrics records}``; the first is the run, a
    second the control, e.g. ``python -m ar3d_r1.reference RUN CONTROL --plot``) as a PNG: the raw steps
    thin and faint, their ``window``-step moving average (:func:`moving_average`) bold, in one colour
    per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    for (label, recs), colour in zip(runs.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"],
                                     strict=False):
        steps = [r["step"] for r in recs]
        reward = [np.nan if r.get("reward/total") is None else r["reward/total"] for r in recs]
        ax.plot(steps, reward, color=colour, lw=0.8, alpha=0.35)
        ax.plot(steps, moving_average(reward, window), color=colour, lw=2.0,
                label=f"{label} ({window}-step mean)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("mean total reward (R_high + R_low)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
