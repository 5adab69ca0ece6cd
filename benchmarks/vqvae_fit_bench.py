"""The ``tiny-cpu`` VQVAE fit (issue 15, Must show 5): held-out voxel IoU reached within the time budget.

Runs ``FitConfig.preset("tiny-cpu")`` (the code behind ``ar3d-r1 vqvae fit --preset tiny-cpu``) with
``--threads`` torch threads and prints, for the same held-out procedural shapes, the fitted model's IoU
against two baselines measured in the same run:

- ``untrained``: the same VQVAE before any step (the floor);
- ``nearest-8``: the non-learned codec with the same latent grid, 32^3 -> 8^3 by 4^3-block majority ->
  32^3 by repetition (512 bits per shape; the VQVAE spends 128 tokens x 8 bits = 1,024).

    python benchmarks/vqvae_fit_bench.py --threads 2        # the Must-show setting (2 cores, 10 min)
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch


def nearest_codec_iou(grids: np.ndarray, factor: int) -> float:
    """Mean IoU of block-majority downsampling by ``factor`` then repetition, on (B, R, R, R) bool grids."""
    from ar3d_r1.policy.voxels import voxel_iou

    b, r = grids.shape[0], grids.shape[1]
    m = r // factor
    blocks = grids.reshape(b, m, factor, m, factor, m, factor).mean(axis=(2, 4, 6)) >= 0.5
    up = blocks.repeat(factor, 1).repeat(factor, 2).repeat(factor, 3)
    return float(np.mean(voxel_iou(up, grids)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the claim is for 2 cores)")
    ap.add_argument("--max-seconds", type=float, default=None, help="override the preset's time budget")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="also save the fitted VQVAE here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from ar3d_r1.policy.fit import FitConfig, evaluate_reconstruction, fit_vqvae
    from ar3d_r1.policy.shapes import shape_grids
    from ar3d_r1.policy.vqvae import VQVAE3D

    overrides = {"seed": args.seed, "threads": args.threads}
    if args.max_seconds is not None:
        overrides["max_seconds"] = args.max_seconds
    config = FitConfig.preset("tiny-cpu", **overrides)
    cfg = config.vqvae
    # The held-out shapes exactly as fit_vqvae draws them (same seed offset).
    _, val = shape_grids(config.n_val, cfg.resolution, seed=config.seed + 1_000_003, fill=config.fill)
    torch.manual_seed(config.seed)
    untrained = evaluate_reconstruction(VQVAE3D(cfg), torch.from_numpy(val).float().unsqueeze(1))["iou"]
    nearest = nearest_codec_iou(val, cfg.resolution // cfg.latent_resolution)

    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    first_hit: dict[str, float] = {}

    def progress(record: dict[str, float]) -> None:
        if "val_iou" in record:
            print(f"  step {int(record['step']):5d}  {record['seconds']:6.0f} s  val IoU "
                  f"{record['val_iou']:.4f}  codes used {record['codes_used']:.1%}", flush=True)
            if record["val_iou"] >= 0.85 and not first_hit:
                first_hit.update(step=record["step"], seconds=record["seconds"])

    result = fit_vqvae(config, args.out, progress=progress)
    wall = time.perf_counter() - t0
    summary = {
        "preset": "tiny-cpu", "threads": args.threads, "load_avg_1min_at_start": round(load, 2),
        "val_iou": round(result.val_iou, 4), "codes_used": round(result.codes_used, 4),
        "perplexity": round(result.perplexity, 1), "steps": result.steps, "seconds_total": round(wall, 1),
        "first_eval_at_or_above_0.85": first_hit or None,
        "baseline_untrained_iou": round(untrained, 4), "baseline_nearest_8_iou": round(nearest, 4),
        "ratio_vs_nearest_8": round(result.val_iou / nearest, 3) if nearest else None,
    }
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
