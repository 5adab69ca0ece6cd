"""Hi-GRPO reward ensembles against hand-computed values for a group of 8 (Must-show 4).

Every expected number below was worked out by hand from the paper's formulas (see the comments), not
by calling the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest

from ar3d_r1.rewards.ensemble import dimension_normalised, r_high, r_low, step1_target

STEP1 = {
    "hps": [0.20, 0.25, 0.30, 0.22, 0.28, 0.24, 0.26, 0.21],
    "geometric_alignment": [3, 4, 2, 5, 1, 3.5, 4, 2],
    "category_match": [1, 1, 0, 1, 0, 1, 1, 0],
}
# R_high = hps + geometric_alignment/1 + category_match/1
R_HIGH = [4.20, 5.25, 2.30, 6.22, 1.28, 4.74, 5.26, 2.21]

STEP2 = {
    "hps": [0.21, 0.27, 0.29, 0.25, 0.30, 0.22, 0.24, 0.20],
    "alignment": [4, 5, 3, 4, 2, 3, 5, 1],
    "coherence": [3, 4, 3, 5, 2, 4, 4, 2],
    "style": [2, 4, 3, 3, 2, 5, 3, 3],        # sums 9, 13, 9, 12, 6, 12, 12, 6 → /3
    "colour": [1, 0.5, 0.8, 1, 0, 0.6, 0.9, 0.3],
    "material": [1, 0.5, 0.7, 0.5, 0, 0.6, 0.9, 0.3],
    "texture": [1, 0.5, 0.6, 0.9, 0, 0.6, 0.6, 0.3],  # sums 3, 1.5, 2.1, 2.4, 0, 1.8, 2.4, 0.9 → /3
    "part_existence": [1, 1, 0.5, 1, 0, 1, 0.5, 0],
    "part_completeness": [0.8, 0.6, 0.5, 1, 0, 0.4, 0.5, 0],  # sums 1.8, 1.6, 1, 2, 0, 1.4, 1, 0 → /2
}
# R_low = hps + (3, 13/3, 3, 4, 2, 4, 4, 2) + (1, .5, .7, .8, 0, .6, .8, .3) + (.9, .8, .5, 1, 0, .7, .5, 0)
R_LOW = [5.11, 0.27 + 13 / 3 + 0.5 + 0.8, 4.49, 6.05, 2.30, 5.52, 5.54, 2.50]


def test_r_high_group_of_8():
    np.testing.assert_allclose(r_high(STEP1), R_HIGH, rtol=0, atol=1e-12)


def test_r_low_group_of_8():
    np.testing.assert_allclose(r_low(STEP2), R_LOW, rtol=0, atol=1e-12)
    assert abs(R_LOW[1] - 5.903333333333333) < 1e-12


@pytest.mark.parametrize(("lam", "expected"), [
    (1.0, [9.31, 11.153333333333333, 6.79, 12.27, 3.58, 10.26, 10.80, 4.71]),
    (0.5, [6.755, 8.201666666666667, 4.545, 9.245, 2.43, 7.50, 8.03, 3.46]),
    (0.0, R_HIGH),
])
def test_step1_target_feeds_r_low_back_with_lambda(lam, expected):
    np.testing.assert_allclose(step1_target(r_high(STEP1), r_low(STEP2), lam), expected, rtol=0, atol=1e-12)


def test_ranking_inside_the_group_changes_with_feedback():
    # Sample 1 beats sample 6 on R_high alone (5.25 < 5.26 → 6 first) but not after λ·R_low.
    assert r_high(STEP1)[6] > r_high(STEP1)[1]
    target = step1_target(r_high(STEP1), r_low(STEP2), 1.0)
    assert target[1] > target[6]


def test_a_failed_sample_stays_nan():
    dims = {k: np.array(v, dtype=float) for k, v in STEP2.items()}
    dims["style"][3] = np.nan
    out = r_low(dims)
    assert np.isnan(out[3]) and np.isfinite(np.delete(out, 3)).all()


def test_missing_or_ragged_dimensions_are_errors():
    with pytest.raises(KeyError, match="category_match"):
        r_high({"hps": [0.1], "geometric_alignment": [3]})
    with pytest.raises(ValueError, match="one length"):
        dimension_normalised({"a": [1, 2], "b": [1]}, ("a", "b"))
    with pytest.raises(ValueError, match="same shape"):
        step1_target(np.zeros(8), np.zeros(7), 1.0)
