"""KD/FD differences with a CI from resampling cases jointly, checked against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from mme3dr.compare.sets import SetSide, _FdResampler, _kd_blocks, _kd_resamples, set_metric_delta
from mme3dr.metrics.definitions import FdDinov2, KdDinov2
from mme3dr.metrics.fd import fd
from mme3dr.metrics.kid import mmd2_unbiased, polynomial_kernel

C, V = 8, 3  # cases, rows (views) per case


def _side(rng, shift=0.0, d=6, rows_per_case=V) -> SetSide:
    x = rng.normal(shift, 1.0, size=(C * rows_per_case, d))
    return SetSide(x, np.repeat(np.arange(C), rows_per_case), C)


def _repeat(side: SetSide, w: np.ndarray) -> np.ndarray:
    return np.concatenate([np.repeat(side.feats[side.cases == c], int(w[c]), axis=0) for c in range(C)])


def test_kd_block_sums_equal_the_unbiased_mmd_of_the_resampled_rows():
    rng = np.random.default_rng(0)
    gen, ref = _side(rng, 0.5), _side(rng)
    weights = np.stack([np.bincount(rng.integers(0, C, C), minlength=C) for _ in range(5)]).astype(float)
    got = _kd_resamples(gen, ref, weights, _kd_blocks(ref, ref))
    for w, value in zip(weights, got, strict=True):
        x, y = _repeat(gen, w), _repeat(ref, w)
        want = mmd2_unbiased(polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y))
        assert value == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("d", [64, 4])  # low-rank (rows ≤ d) and covariance routes
def test_fd_resampler_equals_fd_of_the_resampled_rows(d):
    rng = np.random.default_rng(1)
    gen, ref = _side(rng, 0.3, d=d), _side(rng, d=d)
    resample = _FdResampler(gen, ref)
    for _ in range(4):
        w = np.bincount(rng.integers(0, C, C), minlength=C).astype(float)
        assert resample(w) == pytest.approx(fd(_repeat(gen, w), _repeat(ref, w)), rel=1e-7)


def test_identical_runs_give_zero_difference_and_a_zero_width_interval():
    rng = np.random.default_rng(2)
    gen, ref = _side(rng, 0.4, d=16), _side(rng, d=16)
    for cls in (KdDinov2, FdDinov2):
        delta, low, high, used = set_metric_delta(cls, gen, gen, ref)
        assert delta == 0.0 and low == pytest.approx(0.0, abs=1e-12) and high == pytest.approx(0.0, abs=1e-12)
        assert used == cls.bootstrap_resamples


@pytest.mark.filterwarnings("ignore:KD subset size clamped")
def test_a_run_further_from_the_references_is_worse_and_the_ci_says_so():
    rng = np.random.default_rng(3)
    ref = _side(rng, d=16)
    near, far = _side(rng, 0.1, d=16), _side(rng, 1.5, d=16)
    for cls in (KdDinov2, FdDinov2):
        delta, low, high, _ = set_metric_delta(cls, near, far, ref)
        assert 0 < low <= delta <= high
        metric = cls()
        metric.update(far.feats, ref.feats)
        far_value = metric.compute().value
        metric = cls()
        metric.update(near.feats, ref.feats)
        assert delta == pytest.approx(far_value - metric.compute().value)
