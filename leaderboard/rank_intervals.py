"""95% rank intervals of leaderboard rows, from a paired bootstrap over cases (numpy only, no torch).

Rows that were scored on the same manifest, protocol and profile saw the same cases, so their
per-sample scores pair up case by case. One bootstrap resample draws C cases with replacement
(``default_rng(seed).integers(0, C, size=(n, C))``, the protocol's draw, with the resamples, seed and
level of the metric's class in :mod:`mme3dr.metrics.definitions`), recomputes every row's mean over the
drawn cases and ranks the rows (rank 1 = best; tied rows share the better rank). A row's rank
interval is the ``(1 ∓ level)/2`` quantiles of its ranks over the resamples (lower bound rounded down,
upper bound rounded up: numpy's ``lower``/``higher`` methods). Two rows next to each other in the
table differ significantly when the paired bootstrap CI of their difference
(:func:`mme3dr.compare.paired.paired_bootstrap`) excludes 0.

Input: ``scores (R, C)`` float64, one row per submission and one column per case (a case's mean over
its samples); only cases every row scored are used (:func:`case_matrix`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["adjacent_significant", "case_matrix", "rank_intervals"]


def case_matrix(per_case: list[dict[str, float]]) -> tuple[list[str], np.ndarray]:
    """``(cases, scores (R, C))`` over the cases every row has a score for, cases sorted by id."""
    common = set(per_case[0]) if per_case else set()
    for scores in per_case[1:]:
        common &= set(scores)
    cases = sorted(common)
    return cases, np.array([[scores[c] for c in cases] for scores in per_case], dtype=np.float64)


def _ranks(means: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """``means (n, R)`` → ranks ``(n, R)`` int: 1 + the number of rows strictly better."""
    other, this = means[:, None, :], means[:, :, None]  # better[k, r, o]: row o beats row r in draw k
    better = other > this if higher_is_better else other < this
    return 1 + better.sum(axis=2)


def rank_intervals(scores: np.ndarray, higher_is_better: bool, *, n: int, seed: int, level: float
                   ) -> list[tuple[int, int]]:
    """Each row's ``(low, high)`` bootstrap rank interval (module docstring); ``scores (R, C)``."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] == 0:
        raise ValueError(f"scores must be (rows, cases) with at least one case, got {s.shape}")
    idx = np.random.default_rng(seed).integers(0, s.shape[1], size=(n, s.shape[1]))
    means = np.stack([s[:, row].mean(axis=1) for row in idx])  # (n, R)
    ranks = _ranks(means, higher_is_better)
    low = np.quantile(ranks, (1.0 - level) / 2.0, axis=0, method="lower")
    high = np.quantile(ranks, (1.0 + level) / 2.0, axis=0, method="higher")
    return [(int(lo), int(hi)) for lo, hi in zip(low, high, strict=True)]


def adjacent_significant(scores: np.ndarray, order: list[int], *, n: int, seed: int, level: float
                         ) -> list[bool]:
    """For each neighbour pair ``(order[i], order[i+1])`` in display order: does the paired bootstrap CI
    of their mean difference over cases exclude 0? ``len(order) − 1`` booleans."""
    from mme3dr.compare.paired import paired_bootstrap

    s = np.asarray(scores, dtype=np.float64)
    out = []
    for a, b in zip(order, order[1:], strict=False):
        _, low, high = paired_bootstrap(s[b] - s[a], np.ones(s.shape[1]), n=n, seed=seed, level=level)
        out.append(not (low <= 0.0 <= high))
    return out
