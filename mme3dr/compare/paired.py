"""Paired statistics of two runs on the same cases: bootstrap CI, sign-flip p-value, Holm (numpy only).

The unit of resampling is the *case*: a case's samples (``--samples-per-prompt``) share a prompt and a
reference, so they move together. Every function takes per-case sums and counts of the paired
differences ``d = B − A``::

    case_sums: (C,) float64   Σ of d over the case's pairs
    case_counts: (C,) int     number of pairs of the case (≥ 1)

and the statistic is the mean difference over pairs, ``Σ sums / Σ counts`` (with one sample per case,
the plain mean of the per-case differences).

- :func:`paired_bootstrap` — percentile bootstrap over cases, the protocol's draw
  (:func:`mme3dr.metrics.bootstrap.bootstrap_means`: ``rng.integers(0, C, size=(n, C))`` with
  ``default_rng(seed)``), so with one sample per case it equals ``bootstrap_ci`` of the differences.
- :func:`sign_flip_pvalue` — the paired permutation test (Fisher 1935; Good, *Permutation Tests*, §3.1):
  under H₀ "A and B are exchangeable on every case" each case's difference is equally likely to have
  either sign. Two-sided p-value of ``|mean|``: exact over all 2^C flips when ``2^C ≤ permutations``,
  else ``(1 + #{|T*| ≥ |T|}) / (1 + permutations)`` over random flips (Phipson & Smyth 2010).
- :func:`holm` — Holm's step-down adjustment (Holm 1979) for several comparisons against one baseline.
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ["case_sums", "holm", "paired_bootstrap", "sign_flip_pvalue"]

#: Relative tolerance when comparing a permuted statistic with the observed one: flips that give the
#: same value up to float rounding must count as "at least as extreme" (else a run against itself,
#: all differences 0, would not get p = 1).
_TIES = 1e-9


def case_sums(case_ids: list[str], diffs: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Group per-pair differences by case: ``(cases in first-seen order, sums (C,), counts (C,))``."""
    order: dict[str, int] = {}
    for c in case_ids:
        order.setdefault(c, len(order))
    idx = np.fromiter((order[c] for c in case_ids), dtype=np.int64, count=len(case_ids))
    d = np.asarray(diffs, dtype=np.float64)
    if d.shape != idx.shape:
        raise ValueError(f"{len(case_ids)} case ids for {d.size} differences")
    if not np.all(np.isfinite(d)):
        raise ValueError("paired differences contain NaN or infinity")
    sums = np.bincount(idx, weights=d, minlength=len(order))
    counts = np.bincount(idx, minlength=len(order))
    return list(order), sums, counts


def _check(sums: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(sums, dtype=np.float64).ravel()
    c = np.asarray(counts, dtype=np.float64).ravel()
    if s.size == 0 or s.shape != c.shape:
        raise ValueError(f"need one sum and one count per case, got {s.size} sums and {c.size} counts")
    if np.any(c < 1):
        raise ValueError("every case needs at least one pair")
    return s, c


def paired_bootstrap(sums: np.ndarray, counts: np.ndarray, *, n: int, seed: int, level: float
                     ) -> tuple[float, float, float]:
    """``(delta, low, high)``: the mean paired difference and its percentile bootstrap CI over cases.

    ``n`` resamples of the C cases with replacement (``default_rng(seed).integers(0, C, size=(n, C))``,
    one draw as :func:`mme3dr.metrics.bootstrap.bootstrap_means`); bounds at the ``(1 ∓ level)/2``
    quantiles (numpy's linear interpolation). Inputs as in the module docstring.
    """
    s, c = _check(sums, counts)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, s.size, size=(n, s.size))
    boot = s[idx].sum(axis=1) / c[idx].sum(axis=1)
    low, high = np.quantile(boot, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(s.sum() / c.sum()), float(low), float(high)


def sign_flip_pvalue(sums: np.ndarray, counts: np.ndarray, *, permutations: int, seed: int) -> float:
    """Two-sided paired sign-flip permutation p-value of the mean difference, in ``(0, 1]``.

    A flip multiplies a whole case's sum by −1 (its count is unchanged). Exact (every one of the 2^C
    sign vectors, the identity included) when ``2^C ≤ permutations``; otherwise ``permutations`` random
    sign vectors from ``default_rng(seed)`` and the add-one estimate. All differences zero gives 1.
    """
    s, c = _check(sums, counts)
    total = c.sum()
    observed = abs(s.sum()) / total
    tol = _TIES * max(observed, np.abs(s).max() / total, 1e-300)
    if s.size <= 20 and 2**s.size <= permutations:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=s.size)))
        stats = np.abs(signs @ s) / total
        return float(np.mean(stats >= observed - tol))
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, permutations, 2000):  # bounded memory: 2,000 × C signs at a time
        k = min(2000, permutations - start)
        signs = rng.choice(np.array([1.0, -1.0]), size=(k, s.size))
        hits += int(np.count_nonzero(np.abs(signs @ s) / total >= observed - tol))
    return float((1 + hits) / (1 + permutations))


def holm(pvalues: list[float]) -> list[float]:
    """Holm-adjusted p-values, in the input order: sort ascending, multiply the i-th smallest (0-based)
    by ``m − i``, make the sequence non-decreasing, cap at 1 (Holm 1979). Rejecting where the adjusted
    value is ≤ α controls the family-wise error rate at α.

    >>> holm([0.01, 0.04, 0.03])
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(pvalues, dtype=np.float64)
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out = np.empty(m)
    out[order] = adjusted
    return [round(float(v), 15) for v in out]
