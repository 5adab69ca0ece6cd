"""Percentile bootstrap confidence intervals over assets (design.md §3: 1,000 resamples, seed 0)."""

from __future__ import annotations

import numpy as np

#: Protocol v1's bootstrap (design.md §3): resamples, seed and level of every reported 95% CI. Read by
#: the metric classes (``Metric.bootstrap_resamples`` …) and by ``mme3dr compare``; never restate them.
PROTOCOL_RESAMPLES = 1000
PROTOCOL_SEED = 0
PROTOCOL_LEVEL = 0.95


def bootstrap_means(values: np.ndarray, n: int = PROTOCOL_RESAMPLES, seed: int = PROTOCOL_SEED) -> np.ndarray:
    """Means of ``n`` resamples with replacement of ``values: (k,)``; returns ``(n,)`` float64.

    Resample r uses indices ``rng.integers(0, k, size=(n, k))[r]`` with ``rng = default_rng(seed)``, drawn
    in one call so the result does not depend on how it is batched.
    """
    vals = np.asarray(values, dtype=np.float64).ravel()
    if vals.size == 0:
        raise ValueError("bootstrap needs at least one value")
    if not np.all(np.isfinite(vals)):
        raise ValueError("bootstrap values contain NaN or infinity")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, vals.size, size=(n, vals.size))
    return vals[idx].mean(axis=1)


def bootstrap_ci(
    values: np.ndarray, n: int = PROTOCOL_RESAMPLES, seed: int = PROTOCOL_SEED,
    level: float = PROTOCOL_LEVEL,
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``values: (k,)``: ``(low, high)`` floats.

    The bounds are the ``(1 − level)/2`` and ``(1 + level)/2`` quantiles (numpy's default linear
    interpolation) of :func:`bootstrap_means`. One value gives a zero-width interval.

    >>> bootstrap_ci([1.0, 1.0, 1.0])
    (1.0, 1.0)
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    means = bootstrap_means(values, n=n, seed=seed)
    low, high = np.quantile(means, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return float(low), float(high)
