"""The CPU reference run's verdict: did the mean total reward rise, against a no-learning control?

``reward_rise`` compares the mean total reward (R_high + R_low, per step, over its G samples) of the
last ``window`` steps with that of the first ``window``: the difference, its standard error
``sqrt(s_first² / n + s_last² / n)`` from the per-step means' sample variances (Welch), and their ratio
z. The trainer visits its prompts epoch by epoch, so with a prompt set whose size divides the window
both windows hold the same prompts (``tiny-cpu`` trains on one prompt) and the prompt-to-prompt spread
cancels in the difference.

    python -m ar3d_r1.reference runs/tiny-cpu/train runs/tiny-cpu/control --plot docs/img/tiny_cpu_reward.png
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np


def load_metrics(run_dir: str | Path) -> list[dict]:
    """The records of ``run_dir/metrics.jsonl`` (one per optimizer step)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a training run's output_dir?")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def reward_rise(records: list[dict], window: int = 10, key: str = "reward/total") -> dict[str, float]:
    """``{first, last, diff, se, z, steps}`` for the first and last ``window`` steps (module docstring).

    Raises ValueError when the run has fewer than ``2 × window`` steps.
    """
    values = np.array([r[key] for r in records], dtype=np.float64)
    if len(values) < 2 * window:
        raise ValueError(f"{len(values)} steps recorded; the comparison needs at least {2 * window}")
    first, last = values[:window], values[-window:]
    se = math.sqrt(first.var(ddof=1) / window + last.var(ddof=1) / window)
    diff = float(last.mean() - first.mean())
    return {"first": float(first.mean()), "last": float(last.mean()), "diff": diff, "se": se,
            "z": diff / se if se > 0 else float("inf") if diff > 0 else 0.0, "steps": len(values)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="training output dirs (the first is the run)")
    ap.add_argument("--window", type=int, default=10)
    ap.add_argument("--plot", type=Path, default=None, help="write both reward curves to this PNG")
    ap.add_argument("--labels", nargs="*", default=None, help="curve labels (default: the run dirs)")
    args = ap.parse_args(argv)
    curves = {}
    labels = args.labels or [str(r) for r in args.runs]
    for run, label in zip(args.runs, labels, strict=True):
        records = load_metrics(run)
        res = reward_rise(records, args.window)
        print(f"{run}: first {args.window} {res['first']:.3f}, last {args.window} {res['last']:.3f}, "
              f"diff {res['diff']:+.3f} ± {res['se']:.3f} (z = {res['z']:.2f}), {res['steps']} steps, "
              f"{sum(r['seconds'] for r in records):.0f} s of steps")
        curves[label] = records
    if args.plot:
        from ar3d_r1.engine.reward_curve import plot_reward_curves

        args.plot.parent.mkdir(parents=True, exist_ok=True)
        plot_reward_curves(curves, args.plot)
        print(args.plot)


if __name__ == "__main__":
    main()
