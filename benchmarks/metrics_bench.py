"""KD and FD: our numpy functions vs torchmetrics, same features, same process (issue 3, Must show 5).

Default workload (protocol v1 at full size): 5,000 generated vs 5,000 reference features of dimension
2,048; KD with 100 subsets of 1,000, FD in float64. torchmetrics' ``KernelInceptionDistance`` and
``FrechetInceptionDistance`` receive the same float64 features through a pass-through ``feature``
module. For KD both sides use the *same* subsets (torchmetrics' ``torch.randperm`` draws are replayed
and handed to :func:`mme3dr.metrics.kid_subset_scores`), so the values must agree; the protocol's own
draw (:func:`mme3dr.metrics.kid`, numpy PCG64 seed 0) is timed too.

Peak memory is the resident-set peak above the phase's starting RSS, sampled every 5 ms from
``/proc/self/statm`` by a background thread (numpy and torch CPU allocations both show there).

Run: ``python benchmarks/metrics_bench.py`` (``--help`` for sizes). Prints a table and ratios
(ours / torchmetrics; < 1 means ours is faster).
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from contextlib import contextmanager

import numpy as np

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE


@contextmanager
def measure(results: dict, name: str):
    """Wall time and RSS peak above the starting RSS of the ``with`` body."""
    start_rss = rss_bytes()
    peak = [start_rss]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(0.005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - t0
        stop.set()
        thread.join()
        peak[0] = max(peak[0], rss_bytes())
        results[name] = {"seconds": elapsed, "peak_mib": (peak[0] - start_rss) / 2**20}


def make_features(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative, correlated, Inception-pool3-like features (ReLU of a low-rank mix plus noise)."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(64, d))
    gen = np.maximum(rng.normal(size=(n, 64)) @ basis / 8 + 0.3 * rng.normal(size=(n, d)), 0.0)
    ref = np.maximum(rng.normal(size=(n, 64)) @ basis / 8 + 0.3 * rng.normal(size=(n, d)) + 0.05, 0.0)
    return gen, ref


def main() -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    parser.add_argument("--n", type=int, default=5000, help="features per side (default 5000)")
    parser.add_argument("--d", type=int, default=2048, help="feature dimension (default 2048)")
    parser.add_argument("--subsets", type=int, default=100, help="KD subsets (default 100)")
    parser.add_argument("--subset-size", type=int, default=1000, help="KD subset size m (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    from mme3dr.metrics import fd, kid, kid_subset_scores

    d, m, subsets = args.d, args.subset_size, args.subsets
    gen, ref = make_features(args.n, d, args.seed)
    gen_t, ref_t = torch.from_numpy(gen), torch.from_numpy(ref)

    class PassThrough(torch.nn.Module):
        def forward(self, x):
            if x.dtype == torch.uint8:  # torchmetrics' probe of the feature size
                return torch.zeros(x.shape[0], d, dtype=torch.float64)
            return x

    # torchmetrics draws, per subset, randperm(n_real) then randperm(n_fake) from the global torch RNG.
    torch.manual_seed(args.seed)
    idx_ref, idx_gen = [], []
    for _ in range(subsets):
        idx_ref.append(torch.randperm(len(ref))[:m].numpy())
        idx_gen.append(torch.randperm(len(gen))[:m].numpy())
    idx_ref, idx_gen = np.stack(idx_ref), np.stack(idx_gen)

    res: dict = {}
    with measure(res, "KD ours (torchmetrics' subsets)"):
        scores = kid_subset_scores(gen, ref, idx_gen, idx_ref)
    ours_kd = (scores.mean(), scores.std())
    with measure(res, "KD ours (protocol draw, seed 0)"):
        protocol_kd = kid(gen, ref, subsets=subsets, subset_size=m, seed=0)
    with measure(res, "KD torchmetrics"):
        tm_kid = KernelInceptionDistance(feature=PassThrough(), subsets=subsets, subset_size=m)
        tm_kid.update(ref_t, real=True)
        tm_kid.update(gen_t, real=False)
        torch.manual_seed(args.seed)
        tm_kd = tuple(v.item() for v in tm_kid.compute())
    with measure(res, "FD ours"):
        ours_fd = fd(gen, ref)
    with measure(res, "FD torchmetrics"):
        tm_fid = FrechetInceptionDistance(feature=PassThrough())
        tm_fid.update(ref_t, real=True)
        tm_fid.update(gen_t, real=False)
        tm_fd = tm_fid.compute().item()

    print(f"features: {args.n} vs {args.n}, d={d}; KD {subsets} subsets of {m}; torch threads "
          f"{torch.get_num_threads()}, cpus {os.cpu_count()}")
    print(f"{'phase':36s} {'seconds':>9s} {'peak MiB':>9s}")
    for name, r in res.items():
        print(f"{name:36s} {r['seconds']:9.2f} {r['peak_mib']:9.0f}")
    rel_kd = abs(ours_kd[0] - tm_kd[0]) / abs(tm_kd[0])
    rel_std = abs(ours_kd[1] - tm_kd[1]) / abs(tm_kd[1])
    rel_fd = abs(ours_fd - tm_fd) / abs(tm_fd)
    print(f"KD mean ours {ours_kd[0]:.12g}  torchmetrics {tm_kd[0]:.12g}  rel diff {rel_kd:.2e}")
    print(f"KD std  ours {ours_kd[1]:.12g}  torchmetrics {tm_kd[1]:.12g}  rel diff {rel_std:.2e}")
    print(f"KD (protocol draw, seed 0) mean {protocol_kd[0]:.12g} std {protocol_kd[1]:.12g}")
    print(f"FD      ours {ours_fd:.12g}  torchmetrics {tm_fd:.12g}  rel diff {rel_fd:.2e}")
    kd_ratio = res["KD ours (torchmetrics' subsets)"]["seconds"] / res["KD torchmetrics"]["seconds"]
    fd_ratio = res["FD ours"]["seconds"] / res["FD torchmetrics"]["seconds"]
    total = (res["KD ours (torchmetrics' subsets)"]["seconds"] + res["FD ours"]["seconds"]) / (
        res["KD torchmetrics"]["seconds"] + res["FD torchmetrics"]["seconds"]
    )
    print(f"time ratio ours/torchmetrics: KD {kd_ratio:.2f}x  FD {fd_ratio:.2f}x  KD+FD {total:.2f}x "
          "(target <= 1.0x)")
    ok = max(rel_kd, rel_std, rel_fd) < 1e-6 and total <= 1.0
    print("RESULT:", "PASS" if ok else "FAIL", "(same values to 1e-6 relative, KD+FD time <= 1.0x)")


if __name__ == "__main__":
    main()
