"""Percentile bootstrap CI: reproducible, matches a plain-numpy restatement, shrinks with more data."""

from __future__ import annotations

import numpy as np
import pytest

from mme3dr.metrics import bootstrap_ci


def test_matches_plain_numpy_restatement():
    values = np.random.default_rng(3).normal(20, 5, size=60)
    rng = np.random.default_rng(0)
    means = values[rng.integers(0, 60, size=(1000, 60))].mean(axis=1)
    want = tuple(np.quantile(means, [0.025, 0.975]))
    assert bootstrap_ci(values) == pytest.approx(want, rel=1e-12)


def test_deterministic_and_covers_the_mean():
    values = np.random.default_rng(1).uniform(0, 40, size=100)
    a, b = bootstrap_ci(values), bootstrap_ci(values)
    assert a == b
    assert a[0] < values.mean() < a[1]
    assert bootstrap_ci(values, seed=1) != a


def test_interval_narrows_with_more_samples():
    rng = np.random.default_rng(2)
    small, large = rng.normal(size=20), rng.normal(size=2000)
    w_small = np.subtract(*bootstrap_ci(small)[::-1])
    w_large = np.subtract(*bootstrap_ci(large)[::-1])
    assert w_large < w_small / 3


def test_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_ci([1.0, float("nan")])
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci([1.0], level=1.5)
