"""The authors' released eval script's "KD": per-object mean RBF similarity (compatibility profile only).

The AR3D-R1 eval script reports, under the name "KD", the mean RBF-kernel similarity
``exp(−γ‖x − y‖²)`` between the DINOv2-base CLS features of an object's generated views and its ground-truth
views (all view pairs; γ = 1/d, the default of ``sklearn.metrics.pairwise.rbf_kernel`` it calls), averaged
over objects. Higher means more similar, so it is *not* the kernel distance of protocol v1; it exists to
compare against numbers made by that script (profile ``ar3d-r1-script``), never for the leaderboard.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def rbf_kernel_matrix(x: np.ndarray, y: np.ndarray, gamma: float | None = None) -> np.ndarray:
    """``exp(−γ‖xᵢ − yⱼ‖²)`` for ``x: (n, d)``, ``y: (m, d)`` → ``(n, m)`` float64; γ defaults to 1/d."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"need (n, d) and (m, d) arrays with the same d, got {x.shape} and {y.shape}")
    g = 1.0 / x.shape[1] if gamma is None else float(gamma)
    sq = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T)
    return np.exp(-g * np.maximum(sq, 0.0))


def object_rbf_similarity(feats_gen: np.ndarray, feats_ref: np.ndarray, gamma: float | None = None) -> float:
    """Mean RBF similarity over all (generated view, reference view) pairs of one object."""
    return float(rbf_kernel_matrix(feats_gen, feats_ref, gamma).mean())


def mean_rbf_similarity(
    per_object_gen: Sequence[np.ndarray], per_object_ref: Sequence[np.ndarray], gamma: float | None = None
) -> float:
    """The script's "KD": :func:`object_rbf_similarity` averaged over objects (lists of ``(V, d)``)."""
    if len(per_object_gen) != len(per_object_ref) or not per_object_gen:
        raise ValueError("need the same, non-zero number of generated and reference objects")
    sims = [object_rbf_similarity(g, r, gamma) for g, r in zip(per_object_gen, per_object_ref, strict=True)]
    return float(np.mean(sims))
