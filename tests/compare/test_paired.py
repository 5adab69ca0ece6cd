"""The paired statistics of `mme3dr compare`: delta, bootstrap CI coverage, sign-flip p-value, Holm."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mme3dr.compare.paired import case_sums, holm, paired_bootstrap, sign_flip_pvalue
from mme3dr.metrics.definitions import ClipScore

PROTOCOL = {"n": ClipScore.bootstrap_resamples, "seed": ClipScore.bootstrap_seed,
            "level": ClipScore.bootstrap_level}


def test_a_run_against_itself_gives_delta_zero_and_p_one():
    cases, sums, counts = case_sums([f"c{i}" for i in range(30)], np.zeros(30))
    assert paired_bootstrap(sums, counts, **PROTOCOL) == (0.0, 0.0, 0.0)
    assert sign_flip_pvalue(sums, counts, permutations=ClipScore.permutations, seed=0) == 1.0
    # the exact path too (few cases)
    assert sign_flip_pvalue(sums[:5], counts[:5], permutations=1000, seed=0) == 1.0


def test_the_delta_is_the_mean_paired_difference_over_pairs():
    ids = ["a", "a", "b", "c", "c", "c"]
    diffs = np.array([1.0, 3.0, -2.0, 0.5, 0.5, 2.0])
    cases, sums, counts = case_sums(ids, diffs)
    assert cases == ["a", "b", "c"] and counts.tolist() == [2, 1, 3]
    delta, low, high = paired_bootstrap(sums, counts, **PROTOCOL)
    assert delta == pytest.approx(diffs.mean())
    assert low <= delta <= high


def test_one_sample_per_case_equals_the_protocols_bootstrap_ci_of_the_differences():
    from mme3dr.metrics.bootstrap import bootstrap_ci

    d = np.random.default_rng(5).normal(1.0, 2.0, size=50)
    _, sums, counts = case_sums([str(i) for i in range(50)], d)
    _, low, high = paired_bootstrap(sums, counts, **PROTOCOL)
    assert (low, high) == pytest.approx(bootstrap_ci(d), rel=1e-12)


def test_the_ci_covers_the_set_delta_at_the_stated_rate_over_repeated_seeds():
    true_delta, reps, hits = 1.8, 400, 0
    for seed in range(reps):
        rng = np.random.default_rng(1000 + seed)
        d = true_delta + rng.normal(0.0, 3.0, size=60)
        _, sums, counts = case_sums([str(i) for i in range(60)], d)
        delta, low, high = paired_bootstrap(sums, counts, n=1000, seed=seed, level=0.95)
        hits += low <= true_delta <= high
    coverage = hits / reps
    # 95% nominal; the percentile bootstrap runs slightly narrow at 60 cases. ±2.2 binomial SDs (≈2.4%).
    assert 0.905 <= coverage <= 0.985, coverage


def _independent_exact_p(diffs: list[float]) -> float:
    """Two-sided sign-flip p-value by brute force, one sign vector at a time (plain Python)."""
    observed = abs(sum(diffs)) / len(diffs)
    extreme = total = 0
    for signs in itertools.product((1, -1), repeat=len(diffs)):
        stat = abs(sum(s * d for s, d in zip(signs, diffs, strict=True))) / len(diffs)
        extreme += stat >= observed - 1e-12
        total += 1
    return extreme / total


@pytest.mark.parametrize("shift", [0.0, 0.3, 1.0])
def test_exact_p_value_matches_an_independent_permutation_computation(shift):
    diffs = (np.random.default_rng(7).normal(shift, 1.0, size=12)).round(6).tolist()
    _, sums, counts = case_sums([str(i) for i in range(12)], np.array(diffs))
    assert sign_flip_pvalue(sums, counts, permutations=10_000, seed=0) == pytest.approx(
        _independent_exact_p(diffs), abs=1e-12)


def test_monte_carlo_p_value_agrees_with_an_independent_monte_carlo_estimate():
    rng = np.random.default_rng(11)
    diffs = rng.normal(0.35, 1.0, size=40)
    _, sums, counts = case_sums([str(i) for i in range(40)], diffs)
    p = sign_flip_pvalue(sums, counts, permutations=ClipScore.permutations, seed=0)
    # independent: another generator, a Python loop over 20,000 flips
    other = np.random.default_rng(12345)
    obs = abs(diffs.mean())
    flips = [abs((other.choice([-1.0, 1.0], size=40) * diffs).mean()) >= obs for _ in range(20_000)]
    assert p == pytest.approx(np.mean(flips), abs=0.01)
    assert 0.0 < p < 0.2


def test_clear_difference_gets_a_small_p_value_and_a_ci_excluding_zero():
    d = np.random.default_rng(3).normal(2.0, 1.0, size=80)
    _, sums, counts = case_sums([str(i) for i in range(80)], d)
    delta, low, high = paired_bootstrap(sums, counts, **PROTOCOL)
    assert 0 < low < delta < high
    assert sign_flip_pvalue(sums, counts, permutations=ClipScore.permutations, seed=0) < 0.001


def test_holm_matches_a_hand_computation():
    # sorted: 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([0.2]) == [0.2]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="NaN"):
        case_sums(["a"], np.array([np.nan]))
    with pytest.raises(ValueError, match="one sum and one count"):
        paired_bootstrap(np.zeros(0), np.zeros(0), **PROTOCOL)


def test_sentence_reads_in_the_direction_of_the_difference():
    from mme3dr.compare.text import sentence

    up = {"delta": 1.8, "ci95_low": 0.9, "ci95_high": 2.7, "p_value": 0.002, "n_pairs": 249, "n_cases": 249}
    assert sentence("B", "A", "clip", up, True) == (
        "B is higher on CLIP by 1.8 [0.9, 2.7] than A (better), p = 0.002, 249 pairs.")
    down = {"delta": -0.5, "ci95_low": -0.9, "ci95_high": 0.1, "p_value": None, "n_pairs": 15, "n_cases": 15}
    text = sentence("B", "A", "kd_incep", down, False)
    assert text.startswith("B is lower on KD_incep (×100) by 0.5 [-0.1, 0.9] than A (better), 15 cases")
    assert text.endswith("not a significant difference.")
