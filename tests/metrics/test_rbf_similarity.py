"""The authors'-script "KD" (mean RBF similarity) against a direct restatement of sklearn's rbf_kernel."""

from __future__ import annotations

import numpy as np
import pytest

from mme3dr.metrics import mean_rbf_similarity, object_rbf_similarity


def ref_rbf_mean(x, y, gamma=None):
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    total = 0.0
    for a in x:
        for b in y:
            total += np.exp(-gamma * np.sum((a - b) ** 2))
    return total / (len(x) * len(y))


def test_object_similarity_matches_pairwise_loop():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 12)), rng.normal(size=(5, 12))
    assert object_rbf_similarity(x, y) == pytest.approx(ref_rbf_mean(x, y), rel=1e-12)
    assert object_rbf_similarity(x, y, gamma=0.3) == pytest.approx(ref_rbf_mean(x, y, 0.3), rel=1e-12)


def test_higher_means_more_similar_and_mean_over_objects():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 8))
    assert object_rbf_similarity(x[:1], x[:1]) == pytest.approx(1.0)
    near, far = object_rbf_similarity(x, x + 0.1), object_rbf_similarity(x, x + 3.0)
    assert near > far
    assert mean_rbf_similarity([x, x], [x + 0.1, x + 3.0]) == pytest.approx((near + far) / 2)
    with pytest.raises(ValueError):
        mean_rbf_similarity([x], [])
