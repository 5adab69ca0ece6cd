"""KD (kid) against an independent numpy reference and torchmetrics; its properties (design.md §3)."""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import pytest

from mme3dr.metrics import draw_subsets, kid, kid_subset_scores

kid_module = importlib.import_module("mme3dr.metrics.kid")


# ---------------------------------------------------------------- independent references (no project code)
def ref_mmd2_loops(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² with k(a, b) = (a·b/d + 1)³, written as explicit pair sums (small n only)."""
    d = x.shape[1]

    def k(a, b):
        return (float(np.dot(a, b)) / d + 1.0) ** 3

    m, n = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    syy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j)
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n))
    return sxx / (m * (m - 1)) + syy / (n * (n - 1)) - 2 * sxy / (m * n)


def ref_mmd2_matrix(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    kxx = (x @ x.T / d + 1.0) ** 3
    kyy = (y @ y.T / d + 1.0) ** 3
    kxy = (x @ y.T / d + 1.0) ** 3
    m, n = len(x), len(y)
    off = lambda a: a.sum() - np.einsum("ii->", a)  # noqa: E731
    return off(kxx) / (m * (m - 1)) + off(kyy) / (n * (n - 1)) - 2 * kxy.sum() / (m * n)


def ref_kid(x, y, subsets, m, seed, mmd=ref_mmd2_matrix):
    """The protocol's draw rule, restated: per subset choice(n_gen) then choice(n_ref), PCG64(seed)."""
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(subsets):
        ig = rng.choice(len(x), m, replace=False)
        ir = rng.choice(len(y), m, replace=False)
        vals.append(mmd(x[ig], y[ir]))
    return float(np.mean(vals)), float(np.std(vals))


def features(kind: str, n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "random":
        return rng.normal(size=(n, d)) + shift
    # Structured: low-rank, non-negative (ReLU-pooled like Inception pool3), with duplicated rows.
    basis = np.abs(rng.normal(size=(4, d)))
    x = np.maximum(rng.normal(size=(n, 4)) @ basis, 0.0) + shift
    x[: n // 10] = x[0]
    return x


# (n_gen, n_ref, d, subsets, m): sizes from 10 to 5,000 and dimensions from 8 to 2,048, kept cheap.
CASES = [
    (10, 12, 8, 5, 10),
    (10, 10, 2048, 3, 10),
    (300, 250, 64, 10, 200),
    (5000, 5000, 8, 3, 1000),
    (1200, 1500, 2048, 4, 1000),  # takes the precomputed-Gram path
]


@pytest.mark.parametrize("kind", ["random", "structured"])
@pytest.mark.parametrize("n_gen,n_ref,d,subsets,m", CASES)
def test_kid_equals_independent_reference(kind, n_gen, n_ref, d, subsets, m):
    x = features(kind, n_gen, d, 1)
    y = features(kind, n_ref, d, 2, shift=0.2)
    got = kid(x, y, subsets=subsets, subset_size=m, seed=0)
    want = ref_kid(x, y, subsets, m, seed=0)
    assert got[0] == pytest.approx(want[0], rel=1e-6, abs=1e-12)
    assert got[1] == pytest.approx(want[1], rel=1e-6, abs=1e-12)


def test_kid_matches_explicit_pair_sums_on_tiny_sets():
    x, y = features("random", 12, 8, 3), features("random", 12, 8, 4, shift=0.5)
    got = kid(x, y, subsets=4, subset_size=9, seed=5)
    want = ref_kid(x, y, 4, 9, seed=5, mmd=ref_mmd2_loops)
    assert got == pytest.approx(want, rel=1e-9)


def test_gram_and_per_subset_paths_agree(monkeypatch):
    x, y = features("random", 400, 32, 1), features("structured", 420, 32, 2)
    ig, ir = draw_subsets(400, 420, 8, 300, 0)
    fast = kid_subset_scores(x, y, ig, ir)  # 3·8·300² > n² terms: precomputed Grams
    monkeypatch.setattr(kid_module, "GRAM_MEMORY_LIMIT", 0)
    slow = kid_subset_scores(x, y, ig, ir)
    np.testing.assert_allclose(fast, slow, rtol=1e-10)


class PassThrough:
    """A torchmetrics `feature` module that returns its input: the metric sees our features as-is."""

    def __new__(cls, dim: int):
        import torch

        class _PassThrough(torch.nn.Module):
            def forward(self, x):
                if x.dtype == torch.uint8:  # torchmetrics' dummy image probe
                    return torch.zeros(x.shape[0], dim, dtype=torch.float64)
                return x

        return _PassThrough()


@pytest.mark.parametrize("n,d", [(50, 8), (400, 256), (600, 2048)])
def test_kid_agrees_with_torchmetrics_full_sets(n, d):
    torch = pytest.importorskip("torch")
    from torchmetrics.image.kid import KernelInceptionDistance

    x, y = features("random", n, d, 1), features("structured", n, d, 2)
    # m = n: every subset is the whole set, so the random draws of both libraries coincide.
    tm = KernelInceptionDistance(feature=PassThrough(d), subsets=3, subset_size=n)
    tm.update(torch.from_numpy(y), real=True)
    tm.update(torch.from_numpy(x), real=False)
    tm_mean, _ = tm.compute()
    ours, _ = kid(x, y, subsets=3, subset_size=n)
    assert ours == pytest.approx(tm_mean.item(), rel=1e-6)


def test_kid_agrees_with_torchmetrics_on_the_same_subsets():
    torch = pytest.importorskip("torch")
    from torchmetrics.image.kid import KernelInceptionDistance

    n_real, n_fake, d, subsets, m = 300, 280, 64, 10, 100
    x, y = features("random", n_fake, d, 1), features("random", n_real, d, 2, shift=0.3)
    # Replay torchmetrics' draws: per subset randperm(n_real) then randperm(n_fake) from the global RNG.
    torch.manual_seed(123)
    idx_r, idx_f = [], []
    for _ in range(subsets):
        idx_r.append(torch.randperm(n_real)[:m].numpy())
        idx_f.append(torch.randperm(n_fake)[:m].numpy())
    ours = kid_subset_scores(x, y, np.stack(idx_f), np.stack(idx_r))
    tm = KernelInceptionDistance(feature=PassThrough(d), subsets=subsets, subset_size=m)
    tm.update(torch.from_numpy(y), real=True)
    tm.update(torch.from_numpy(x), real=False)
    torch.manual_seed(123)
    tm_mean, tm_std = tm.compute()
    assert ours.mean() == pytest.approx(tm_mean.item(), rel=1e-6)
    assert ours.std() == pytest.approx(tm_std.item(), rel=1e-6)


# ---------------------------------------------------------------- properties
def test_kid_of_a_set_with_itself_is_near_zero():
    x = features("random", 2000, 64, 7)
    mean, _ = kid(x, x, subsets=20, subset_size=1000)
    shifted, _ = kid(x, x + 0.5, subsets=20, subset_size=1000)
    # Subsets of one set share points, so the cross term gains k(x, x) terms: slightly negative, tiny.
    assert -0.02 * shifted < mean <= 0.0
    # Two independent draws of one distribution: zero within the subset noise (unbiased estimator).
    y = features("random", 2000, 64, 8)
    mean_xy, std_xy = kid(x, y, subsets=20, subset_size=1000)
    assert abs(mean_xy) < 3 * std_xy


def test_kid_grows_with_shift():
    x = features("random", 500, 32, 1)
    y = features("random", 500, 32, 2)
    values = [kid(x, y + s, subsets=10, subset_size=300)[0] for s in (0.0, 0.25, 0.5, 1.0)]
    assert all(a < b for a, b in zip(values, values[1:], strict=False))


def test_kid_is_invariant_to_sample_order_and_deterministic():
    x = features("structured", 300, 16, 1)
    y = features("random", 300, 16, 2)
    perm = np.random.default_rng(9).permutation(300)
    # Full-set subsets: the estimate depends on the sets, not their order.
    a = kid(x, y, subsets=2, subset_size=300)
    b = kid(x[perm], y[perm[::-1]], subsets=2, subset_size=300)
    assert a[0] == pytest.approx(b[0], rel=1e-12)
    assert kid(x, y, subsets=7, subset_size=100, seed=3) == kid(x, y, subsets=7, subset_size=100, seed=3)
    assert kid(x, y, subsets=7, subset_size=100, seed=3) != kid(x, y, subsets=7, subset_size=100, seed=4)


def test_subset_size_is_clamped_with_a_warning():
    x, y = features("random", 40, 8, 1), features("random", 30, 8, 2)
    with pytest.warns(UserWarning, match="clamped from 1000 to 30"):
        got = kid(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert got == kid(x, y, subset_size=30)


@pytest.mark.parametrize(
    "x,y,match",
    [
        (np.zeros((5, 3)), np.zeros((5, 4)), "dimensions differ"),
        (np.zeros((1, 3)), np.zeros((5, 3)), "at least 2"),
        (np.full((5, 3), np.nan), np.zeros((5, 3)), "NaN"),
        (np.zeros(5), np.zeros((5, 3)), "2-D"),
    ],
)
def test_bad_input_gets_a_clear_error(x, y, match):
    with pytest.raises(ValueError, match=match):
        kid(x, y, subsets=2, subset_size=2)


@pytest.mark.slow
def test_kid_reference_at_protocol_size():
    x = features("random", 5000, 2048, 1)
    y = features("structured", 5000, 2048, 2)
    assert kid(x, y, subsets=5, subset_size=1000) == pytest.approx(ref_kid(x, y, 5, 1000, 0), rel=1e-6)
