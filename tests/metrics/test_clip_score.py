"""CLIP score maths: per view 100·max(cos, 0), mean over views, mean over assets with CI, per category."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mme3dr.metrics import aggregate_clip_scores, asset_clip_score, per_view_clip_scores


def test_per_view_scores_equal_a_hand_computation():
    text = np.array([3.0, 4.0])  # unit: (0.6, 0.8)
    views = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0], [0.6, 0.8]])
    # cosines: 0.6, 0.8, -0.6 (clamped to 0), 1.0
    np.testing.assert_allclose(per_view_clip_scores(views, text), [60.0, 80.0, 0.0, 100.0])
    assert asset_clip_score(views, text) == pytest.approx((60 + 80 + 0 + 100) / 4)


def test_aggregation_over_assets_and_categories_by_hand():
    scores = [10.0, 20.0, 30.0, 50.0]
    cats = ["spatial", "spatial", "stylized", "stylized"]
    out = aggregate_clip_scores(scores, cats, n_boot=200, seed=0)
    assert out["mean"] == pytest.approx(27.5)
    assert out["n"] == 4
    assert out["per_category"]["spatial"]["mean"] == pytest.approx(15.0)
    assert out["per_category"]["stylized"]["mean"] == pytest.approx(40.0)
    low, high = out["ci95"]
    assert 10.0 <= low < 27.5 < high <= 50.0
    assert list(out["per_category"]) == ["spatial", "stylized"]


def test_random_embeddings_match_direct_cosine():
    rng = np.random.default_rng(0)
    img, txt = rng.normal(size=(24, 16)), rng.normal(size=16)
    cos = img @ txt / (np.linalg.norm(img, axis=1) * np.linalg.norm(txt))
    np.testing.assert_allclose(per_view_clip_scores(img, txt), 100 * np.clip(cos, 0, None), rtol=1e-12)
    assert all(0.0 <= s <= 100.0 for s in per_view_clip_scores(img, txt))
    assert not math.isnan(asset_clip_score(img, txt))


def test_errors_are_clear():
    with pytest.raises(ValueError, match="dimension"):
        per_view_clip_scores(np.ones((2, 3)), np.ones(4))
    with pytest.raises(ValueError, match="zero norm"):
        per_view_clip_scores(np.zeros((2, 3)), np.ones(3))
    with pytest.raises(ValueError, match="categories"):
        aggregate_clip_scores([1.0, 2.0], ["a"])
    with pytest.raises(ValueError, match="non-empty"):
        aggregate_clip_scores([])
