"""The difference of a set metric (KD, FD) between two runs, with a CI from resampling cases jointly.

A set metric compares a run's generated feature set with the reference feature set, so a bootstrap
resample draws C cases with replacement (``default_rng(seed).integers(0, C, size=(n, C))``, the
protocol's draw) and takes, for *both* runs and for the references, the feature rows of the drawn cases
(a case drawn k times counts k times). The statistic of a resample is ``metric(B) − metric(A)``.

- KD: the full-set unbiased MMD² with the protocol's cubic kernel ``k(x, y) = (xᵀy/d + 1)³`` (Gretton
  et al. 2012, eq. 3), whose expectation is that of the protocol's subset average. The kernel matrices
  are computed once and summed per pair of cases (``S[c, c'] = Σ k`` over their rows), so a resample
  with case counts ``w`` costs ``wᵀSw``: with ``n_x = Σ w_c n_c``,
  ``Σ_{i≠j} k(x_i, x_j) = wᵀS_xx w − Σ w_c diag_c`` (the diagonal: each row with itself).
- FD: the Fréchet distance of the weighted mean and unbiased covariance, through
  :mod:`mme3dr.metrics.fd` (the low-rank nuclear-norm form when a set is smaller than the dimension).

The reported difference is the protocol's own value (the metric class's ``compute``) for each run; the
CI is the percentile interval of the bootstrap differences, centred on it: ``delta + q − full`` where
``full`` is the full-set estimator on the original cases (equal to ``delta`` for FD, and for KD when
the sets are smaller than the protocol's subset size). Arrays: features ``(N, d)`` float, case indices
``(N,)`` int in ``[0, C)``.
"""

from __future__ import annotations

import warnings

import numpy as np

from mme3dr.metrics.fd import frechet_distance
from mme3dr.metrics.kid import _cube_kernel_inplace

__all__ = ["SetSide", "set_metric_delta"]


class SetSide:
    """One feature set split by case: ``feats (N, d)`` float64 and ``cases (N,)`` int64 in ``[0, C)``."""

    def __init__(self, feats: np.ndarray, cases: np.ndarray, n_cases: int) -> None:
        self.feats = np.asarray(feats, dtype=np.float64)
        self.cases = np.asarray(cases, dtype=np.int64)
        if self.feats.ndim != 2 or self.cases.shape != (self.feats.shape[0],):
            raise ValueError(f"features {self.feats.shape} and case indices {self.cases.shape} do not match")
        if self.cases.size and (self.cases.min() < 0 or self.cases.max() >= n_cases):
            raise ValueError(f"case indices must lie in [0, {n_cases})")
        self.n_cases = n_cases
        self.rows_per_case = np.bincount(self.cases, minlength=n_cases).astype(np.float64)

    def indicator(self) -> np.ndarray:
        """``(C, N)`` 0/1 matrix: row c marks the rows of case c."""
        p = np.zeros((self.n_cases, self.cases.size))
        p[self.cases, np.arange(self.cases.size)] = 1.0
        return p


def _kd_blocks(x: SetSide, y: SetSide) -> tuple[np.ndarray, np.ndarray]:
    """Case-block sums ``(C, C)`` of the cubic kernel between ``x`` and ``y``, and (when ``x is y``) the
    per-case sums of its diagonal ``(C,)``."""
    k = _cube_kernel_inplace(x.feats @ y.feats.T, x.feats.shape[1])
    diag = np.bincount(x.cases, weights=np.diagonal(k), minlength=x.n_cases) if x is y else None
    return x.indicator() @ k @ y.indicator().T, diag


def _kd_resamples(gen: SetSide, ref: SetSide, weights: np.ndarray,
                  ref_blocks: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Full-set unbiased MMD² of ``gen`` vs ``ref`` for each row of case counts ``weights (R, C)``;
    ``ref_blocks`` is ``_kd_blocks(ref, ref)`` (shared by both runs)."""
    sxx, dxx = _kd_blocks(gen, gen)
    syy, dyy = ref_blocks
    sxy, _ = _kd_blocks(gen, ref)
    nx, ny = weights @ gen.rows_per_case, weights @ ref.rows_per_case
    xx = np.einsum("rc,rc->r", weights @ sxx, weights) - weights @ dxx
    yy = np.einsum("rc,rc->r", weights @ syy, weights) - weights @ dyy
    xy = np.einsum("rc,rc->r", weights @ sxy, weights)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = xx / (nx * (nx - 1)) + yy / (ny * (ny - 1)) - 2.0 * xy / (nx * ny)
    out[(nx < 2) | (ny < 2)] = np.nan
    return out


class _FdResampler:
    """FD of ``gen`` vs ``ref`` under case counts ``w (C,)``, exact, with the per-resample work kept small.

    Few rows (``min(N_gen, N_ref) ≤ d``, as :func:`mme3dr.metrics.fd.fd` decides): everything from the
    Gram matrices computed once. With row weights r (a row's case count), n = Σr, μ = Σ rᵢxᵢ/n and the
    centred, weighted rows aᵢ = √rᵢ (xᵢ − μ)/√(n − 1): ``Tr Σ = Σ rᵢ‖xᵢ‖²/(n−1) − n‖μ‖²/(n−1)``,
    ``Tr (Σ₁Σ₂)^½ = ‖A₁A₂ᵀ‖_*`` (the low-rank form of :func:`mme3dr.metrics.fd._fd_low_rank`), and every
    inner product of centred rows is a Gram entry minus row/column means of the Gram matrix.
    Many rows: the weighted mean and covariance (per-case sums and scatter matrices when they fit in
    memory), then :func:`mme3dr.metrics.fd.frechet_distance`.
    """

    def __init__(self, gen: SetSide, ref: SetSide) -> None:
        self.gen, self.ref = gen, ref
        d = gen.feats.shape[1]
        self.low_rank = min(gen.feats.shape[0], ref.feats.shape[0]) <= d
        if self.low_rank:
            x, y = gen.feats, ref.feats
            self.gxx, self.gyy, self.gxy = x @ x.T, y @ y.T, x @ y.T
        else:
            self.stats = [self._case_stats(side) for side in (gen, ref)]

    @staticmethod
    def _case_stats(side: SetSide):
        p = side.indicator()
        sums = p @ side.feats  # (C, d)
        d = side.feats.shape[1]
        if side.n_cases * d * d * 8 > 2 * 1024**3:
            return sums, None
        scatter = np.einsum("cn,ni,nj->cij", p, side.feats, side.feats, optimize=True)
        return sums, scatter.reshape(side.n_cases, d * d)

    def _moments(self, k: int, w: np.ndarray):
        side, (sums, scatter) = (self.gen, self.ref)[k], self.stats[k]
        n = w @ side.rows_per_case
        if n < 2:
            return None
        mu = w @ sums / n
        if scatter is not None:
            second = (w @ scatter).reshape(mu.size, mu.size)
        else:
            r = w[side.cases]
            second = (side.feats * r[:, None]).T @ side.feats
        return mu, (second - n * np.outer(mu, mu)) / (n - 1.0)

    def __call__(self, w: np.ndarray) -> float:
        if not self.low_rank:
            a, b = self._moments(0, w), self._moments(1, w)
            if a is None or b is None:
                return float("nan")
            return frechet_distance(a[0], a[1], b[0], b[1])
        rx, ry = w[self.gen.cases], w[self.ref.cases]
        kx, ky = rx > 0, ry > 0
        rx, ry = rx[kx], ry[ky]
        n1, n2 = rx.sum(), ry.sum()
        if n1 < 2 or n2 < 2:
            return float("nan")
        gxx, gyy, gxy = self.gxx[np.ix_(kx, kx)], self.gyy[np.ix_(ky, ky)], self.gxy[np.ix_(kx, ky)]
        mu11, mu22, mu12 = rx @ gxx @ rx / n1**2, ry @ gyy @ ry / n2**2, rx @ gxy @ ry / (n1 * n2)
        tr1 = (rx @ np.diagonal(gxx) - n1 * mu11) / (n1 - 1.0)
        tr2 = (ry @ np.diagonal(gyy) - n2 * mu22) / (n2 - 1.0)
        centred = gxy - (gxy @ ry / n2)[:, None] - (rx @ gxy / n1)[None, :] + mu12
        m = np.sqrt(rx)[:, None] * centred * np.sqrt(ry)[None, :] / np.sqrt((n1 - 1.0) * (n2 - 1.0))
        small = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
        nuclear = np.sqrt(np.clip(np.linalg.eigvalsh(small), 0.0, None)).sum()
        return float(mu11 + mu22 - 2.0 * mu12 + tr1 + tr2 - 2.0 * nuclear)


def _full_set(metric_cls, gen: SetSide, ref: SetSide) -> float:
    """The metric class's own (protocol) value of ``gen`` vs ``ref``, already scaled."""
    metric = metric_cls()
    metric.update(gen.feats, ref.feats)
    with warnings.catch_warnings():  # small categories clamp KD's subset size; expected here
        warnings.simplefilter("ignore")
        return metric.compute().value


def set_metric_delta(metric_cls, gen_a: SetSide, gen_b: SetSide, ref: SetSide
                     ) -> tuple[float, float, float, int]:
    """``(delta, ci95_low, ci95_high, n_resamples_used)`` of ``metric(B) − metric(A)``, scaled.

    ``metric_cls`` is a :class:`mme3dr.metrics.definitions.SetDistanceMetric` subclass; its
    ``bootstrap_resamples``, ``bootstrap_seed``, ``bootstrap_level`` and ``scale`` are used. Resamples
    where a side has fewer than two rows are dropped (counted out of ``n_resamples_used``).
    """
    from mme3dr.metrics.definitions import KernelDistance

    c = ref.n_cases
    if not (gen_a.n_cases == gen_b.n_cases == c):
        raise ValueError("the three feature sets must index the same cases")
    delta = _full_set(metric_cls, gen_b, ref) - _full_set(metric_cls, gen_a, ref)
    rng = np.random.default_rng(metric_cls.bootstrap_seed)
    idx = rng.integers(0, c, size=(metric_cls.bootstrap_resamples, c))
    weights = np.stack([np.bincount(row, minlength=c) for row in idx]).astype(np.float64)
    ones = np.ones((1, c))
    if issubclass(metric_cls, KernelDistance):
        # Row 0: the original cases (every count 1), the rest: the resamples.
        both = np.concatenate([ones, weights])
        ref_blocks = _kd_blocks(ref, ref)
        diffs = _kd_resamples(gen_b, ref, both, ref_blocks) - _kd_resamples(gen_a, ref, both, ref_blocks)
        full, boot = float(diffs[0]), diffs[1:]
    else:
        fd_a, fd_b = _FdResampler(gen_a, ref), _FdResampler(gen_b, ref)
        boot = np.array([fd_b(w) - fd_a(w) for w in weights])
        full = fd_b(ones[0]) - fd_a(ones[0])
    boot = boot[np.isfinite(boot)] * metric_cls.scale
    if boot.size == 0:
        return delta, float("nan"), float("nan"), 0
    level = metric_cls.bootstrap_level
    low, high = np.quantile(boot - full * metric_cls.scale, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return delta, float(delta + low), float(delta + high), int(boot.size)
