"""FD against an independent scipy reference and torchmetrics; its properties and failure modes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg

from mme3dr.metrics import FrechetDistanceError, fd, frechet_distance


def ref_fd(x: np.ndarray, y: np.ndarray) -> float:
    """pytorch-fid's formula restated with numpy/scipy: np.cov (ddof=1) and scipy sqrtm."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.atleast_2d(np.cov(x, rowvar=False)), np.atleast_2d(np.cov(y, rowvar=False))
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        off = np.eye(s1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((s1 + off) @ (s2 + off))
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def features(kind: str, n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "random":
        return rng.normal(size=(n, d)) * rng.uniform(0.5, 2.0, size=d) + shift
    basis = np.abs(rng.normal(size=(max(2, d // 4), d)))
    return np.maximum(rng.normal(size=(n, basis.shape[0])) @ basis, 0.0) / d + shift


# n from 10 to 5,000, d from 8 to 512 here; d = 2,048 (scipy sqrtm takes minutes on 2 cores) is the slow test.
CASES = [(50, 60, 8), (500, 400, 64), (5000, 5000, 8), (1500, 1200, 512)]


@pytest.mark.parametrize("kind", ["random", "structured"])
@pytest.mark.parametrize("n_gen,n_ref,d", CASES)
def test_fd_equals_independent_reference(kind, n_gen, n_ref, d):
    x, y = features(kind, n_gen, d, 1), features(kind, n_ref, d, 2, shift=0.1)
    want = ref_fd(x, y)
    assert fd(x, y) == pytest.approx(want, rel=1e-6)
    if d <= 64:
        assert fd(x, y, method="sqrtm") == pytest.approx(want, rel=1e-6)


def test_fd_with_fewer_samples_than_dimensions_matches_reference():
    # n < d: singular covariances, the case the ε fallback exists for.
    x, y = features("random", 10, 64, 1), features("random", 12, 64, 2, shift=0.3)
    assert fd(x, y) == pytest.approx(ref_fd(x, y), rel=1e-6)


@pytest.mark.parametrize("n,d", [(40, 8), (600, 256)])
def test_fd_agrees_with_torchmetrics(n, d):
    torch = pytest.importorskip("torch")
    from torchmetrics.image.fid import FrechetInceptionDistance

    class PassThrough(torch.nn.Module):
        def forward(self, x):
            if x.dtype == torch.uint8:  # torchmetrics probes the feature size with a dummy image
                return torch.zeros(x.shape[0], d, dtype=torch.float64)
            return x

    x, y = features("random", n, d, 1), features("structured", n + 7, d, 2)
    tm = FrechetInceptionDistance(feature=PassThrough())
    tm.update(torch.from_numpy(y), real=True)
    tm.update(torch.from_numpy(x), real=False)
    assert fd(x, y) == pytest.approx(tm.compute().item(), rel=1e-6)


def test_fd_of_a_set_with_itself_is_zero_and_grows_with_shift():
    x = features("random", 800, 32, 3)
    assert abs(fd(x, x)) < 1e-8
    values = [fd(x, x + s) for s in (0.1, 0.5, 1.0, 2.0)]
    assert all(a < b for a, b in zip(values, values[1:], strict=False))
    # A pure shift s in every dimension adds exactly d·s² (the covariance term cancels).
    assert values[-1] == pytest.approx(32 * 4.0, rel=1e-9)


def test_fd_is_order_invariant_and_deterministic():
    x, y = features("structured", 300, 16, 1), features("random", 300, 16, 2)
    perm = np.random.default_rng(0).permutation(300)
    assert fd(x[perm], y) == pytest.approx(fd(x, y), rel=1e-10)
    assert fd(x, y) == fd(x, y)


def test_imaginary_square_root_fails_loudly():
    # Σ₁Σ₂ with a negative eigenvalue (Σ₂ is not PSD): its square root is genuinely complex.
    mu = np.zeros(2)
    s1 = np.eye(2)
    s2 = np.array([[1.0, 0.0], [0.0, -0.5]])
    with pytest.raises(FrechetDistanceError, match="imaginary component"):
        frechet_distance(mu, s1, mu, s2)
    with pytest.raises(FrechetDistanceError):
        frechet_distance(mu, s1, mu, s2, method="sqrtm")


@pytest.mark.parametrize(
    "x,y,match",
    [
        (np.zeros((5, 3)), np.zeros((5, 4)), "dimensions differ"),
        (np.zeros((1, 3)), np.zeros((5, 3)), "at least 2"),
        (np.full((5, 3), np.inf), np.zeros((5, 3)), "NaN or infinite"),
    ],
)
def test_bad_input_gets_a_clear_error(x, y, match):
    with pytest.raises(ValueError, match=match):
        fd(x, y)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["random", "structured"])
def test_fd_reference_at_protocol_size(kind):
    x, y = features(kind, 5000, 2048, 1), features(kind, 5000, 2048, 2, shift=0.05)
    assert fd(x, y) == pytest.approx(ref_fd(x, y), rel=1e-6)


@pytest.mark.parametrize("n_gen,n_ref,d", [(30, 40, 512), (100, 20, 256), (64, 64, 64)])
def test_low_rank_route_equals_covariance_routes(n_gen, n_ref, d):
    from mme3dr.metrics import feature_statistics

    x, y = features("structured", n_gen, d, 5), features("random", n_ref, d, 6, shift=0.2)
    stats = (*feature_statistics(x), *feature_statistics(y))
    low_rank = fd(x, y)  # min(n) ≤ d: nuclear-norm route
    assert low_rank == pytest.approx(frechet_distance(*stats), rel=1e-8)
    assert low_rank == pytest.approx(ref_fd(x, y), rel=1e-6)
    # A set against itself: exactly zero up to rounding, without the √noise bias of eigenvalue routes.
    assert abs(fd(x, x)) < 1e-9 * max(1.0, low_rank)
