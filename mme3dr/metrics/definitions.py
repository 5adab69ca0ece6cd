"""Metric classes: the facts reports and the leaderboard read (class-level data), plus accumulation.

Maths lives in the pure functions (:mod:`kid`, :mod:`fd`, :mod:`clip_score`, :mod:`rbf_similarity`);
a class only collects inputs across a run and calls its function, then applies ``scale``. Tables,
sorting and plots read ``higher_is_better``/``scale``/``feature`` generically instead of hard-coding names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from mme3dr.metrics.bootstrap import PROTOCOL_LEVEL, PROTOCOL_RESAMPLES, PROTOCOL_SEED
from mme3dr.metrics.clip_score import aggregate_clip_scores
from mme3dr.metrics.fd import fd
from mme3dr.metrics.kid import kid
from mme3dr.metrics.rbf_similarity import object_rbf_similarity


@dataclass
class MetricValue:
    """One reported number: ``value`` (already scaled), optional ``std`` / ``ci95`` and extra fields."""

    name: str
    value: float
    std: float | None = None
    ci95: tuple[float, float] | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out: dict = {"value": self.value}
        if self.std is not None:
            out["std"] = self.std
        if self.ci95 is not None:
            out["ci95"] = list(self.ci95)
        out.update(self.extra)
        return out


class Metric:
    """Base class. Subclasses set the class-level facts below."""

    #: Key used in results.json and on the leaderboard.
    name: ClassVar[str]
    #: Human-readable column title.
    title: ClassVar[str]
    #: One sentence for a legend: what the number measures (reports show it beside the table).
    description: ClassVar[str] = ""
    higher_is_better: ClassVar[bool]
    #: Reported value = raw value × scale (KD: ×100, as the paper's Table 4).
    scale: ClassVar[float] = 1.0
    #: Which feature extractor of the suite feeds it (``clip``, ``inception``, ``dinov2``).
    feature: ClassVar[str]
    #: Plot bounds of the reported value (None = unbounded).
    lower_bound: ClassVar[float | None] = None
    upper_bound: ClassVar[float | None] = None
    leaderboard_eligible: ClassVar[bool] = True
    #: Confidence intervals (reported CIs and ``mme3dr compare``): percentile bootstrap over cases with
    #: this many resamples, this seed and this level (protocol v1, :mod:`mme3dr.metrics.bootstrap`).
    bootstrap_resamples: ClassVar[int] = PROTOCOL_RESAMPLES
    bootstrap_seed: ClassVar[int] = PROTOCOL_SEED
    bootstrap_level: ClassVar[float] = PROTOCOL_LEVEL
    #: Random sign flips of ``mme3dr compare``'s paired permutation test (exact enumeration when the
    #: cases allow fewer flips than this); seeded with ``bootstrap_seed``.
    permutations: ClassVar[int] = 10_000

    @classmethod
    def facts(cls) -> dict:
        """The class-level facts as a JSON-ready dict (for the metric card and results.json)."""
        return {
            "name": cls.name,
            "title": cls.title,
            "higher_is_better": cls.higher_is_better,
            "scale": cls.scale,
            "feature": cls.feature,
            "lower_bound": cls.lower_bound,
            "upper_bound": cls.upper_bound,
            "leaderboard_eligible": cls.leaderboard_eligible,
        }


class SetDistanceMetric(Metric):
    """A distance between the generated and reference feature *sets* (KD, FD)."""

    def __init__(self) -> None:
        self._gen: list[np.ndarray] = []
        self._ref: list[np.ndarray] = []

    def update(self, feats_gen: np.ndarray | None = None, feats_ref: np.ndarray | None = None) -> None:
        """Add ``(n, d)`` feature rows to either side."""
        if feats_gen is not None:
            self._gen.append(np.atleast_2d(np.asarray(feats_gen, dtype=np.float64)))
        if feats_ref is not None:
            self._ref.append(np.atleast_2d(np.asarray(feats_ref, dtype=np.float64)))

    def _stacked(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._gen or not self._ref:
            side = "generated" if not self._gen else "reference"
            raise ValueError(f"{self.name}: no features collected for the {side} side")
        return np.concatenate(self._gen), np.concatenate(self._ref)

    def compute(self) -> MetricValue:
        raise NotImplementedError


class KernelDistance(SetDistanceMetric):
    higher_is_better = False
    # ×100 as in the paper's Table 4 ("KD reported ×100").
    scale = 100.0
    lower_bound = None  # the unbiased estimator can be slightly negative
    subsets: ClassVar[int] = 100
    subset_size: ClassVar[int] = 1000
    seed: ClassVar[int] = 0

    def compute(self) -> MetricValue:
        gen, ref = self._stacked()
        mean, std = kid(gen, ref, subsets=self.subsets, subset_size=self.subset_size, seed=self.seed)
        m = min(self.subset_size, gen.shape[0], ref.shape[0])
        extra = {
            "subsets": self.subsets, "subset_size": m, "seed": self.seed,
            "n_gen": gen.shape[0], "n_ref": ref.shape[0],
        }
        return MetricValue(self.name, mean * self.scale, std=std * self.scale, extra=extra)


class FrechetDistance(SetDistanceMetric):
    higher_is_better = False
    lower_bound = 0.0
    # A resample of FD needs its own covariances and matrix square root (≈1 s at 249 cases × 24 views of
    # 2,048-d features), so ``mme3dr compare`` draws fewer resamples for it than the protocol's 1,000;
    # KD's resamples are cheap (case-block kernel sums), so KD keeps the protocol's number.
    bootstrap_resamples = 200

    def compute(self) -> MetricValue:
        gen, ref = self._stacked()
        extra = {"n_gen": gen.shape[0], "n_ref": ref.shape[0]}
        return MetricValue(self.name, fd(gen, ref) * self.scale, extra=extra)


class KdIncep(KernelDistance):
    name = "kd_incep"
    title = "KD_incep (×100)"
    description = ("Kernel distance (unbiased MMD², cubic polynomial kernel) between the generated and "
                   "reference sets of Inception-v3 pool3 view features, ×100")
    feature = "inception"


class KdDinov2(KernelDistance):
    name = "kd_dinov2"
    title = "KD_dinov2 (×100)"
    description = ("Kernel distance between the generated and reference sets of DINOv2-base CLS view "
                   "features, ×100")
    feature = "dinov2"


class FdIncep(FrechetDistance):
    name = "fd_incep"
    title = "FD_incep"
    description = ("Fréchet distance between Gaussians fitted to the generated and reference Inception-v3 "
                   "view features")
    feature = "inception"


class FdDinov2(FrechetDistance):
    name = "fd_dinov2"
    title = "FD_dinov2"
    description = ("Fréchet distance between Gaussians fitted to the generated and reference DINOv2-base "
                   "view features")
    feature = "dinov2"


class ClipScore(Metric):
    """Mean over assets of the per-asset CLIP score, with a bootstrap CI and per-category breakdown."""

    name = "clip"
    title = "CLIP"
    description = ("CLIPScore (100 × cosine, floored at 0) of each generated asset's views against its "
                   "prompt, mean over views, then over assets")
    higher_is_better = True
    scale = 1.0  # the ×100 is part of the per-view definition (CLIPScore's w = 100)
    feature = "clip"
    lower_bound = 0.0
    upper_bound = 100.0

    def __init__(self) -> None:
        self._scores: list[float] = []
        self._categories: list[str | None] = []

    def update(self, asset_score: float, category: str | None = None) -> None:
        self._scores.append(float(asset_score))
        self._categories.append(category)

    def compute(self) -> MetricValue:
        if not self._scores:
            raise ValueError("clip: no asset scores collected")
        cats = None if any(c is None for c in self._categories) else self._categories
        agg = aggregate_clip_scores(self._scores, cats, n_boot=self.bootstrap_resamples,
                                     seed=self.bootstrap_seed)
        return MetricValue(
            self.name, agg["mean"] * self.scale, ci95=tuple(agg["ci95"]),
            extra={"n": agg["n"], "per_category": agg["per_category"]},
        )


class ReferenceClip(ClipScore):
    """The CLIP score of the *reference* object's renders against the same prompt: the ceiling a model's
    ``clip`` is read against. Averaged over every evaluated case whose reference rendered (all samples of
    the run, failed generations included), so it is one number per benchmark and render settings, the
    same for every model. A diagnostic, not a model's score: never a leaderboard column."""

    name = "reference_clip"
    title = "reference CLIP (ceiling)"
    description = ("CLIPScore of the reference object's views against the same prompt, mean over every case "
                   "whose reference rendered: the ceiling to read clip against (not a model's score)")
    leaderboard_eligible = False


class ScriptRbfSimilarity(Metric):
    """The authors' script's "KD" (ar3d-r1-script profile): mean per-object RBF similarity (higher=closer)."""

    name = "script_kd_dinov2_rbf"
    title = "script \"KD\" (RBF sim., DINOv2)"
    description = ("The authors' script's \"KD\": mean RBF similarity of DINOv2 CLS features per object "
                   "(not a distance)")
    higher_is_better = True
    feature = "dinov2"
    lower_bound = 0.0
    upper_bound = 1.0
    leaderboard_eligible = False

    def __init__(self) -> None:
        self._sims: list[float] = []

    def update(self, object_feats_gen: np.ndarray, object_feats_ref: np.ndarray) -> None:
        """One object's ``(V, d)`` generated and ``(W, d)`` reference features."""
        self._sims.append(object_rbf_similarity(object_feats_gen, object_feats_ref))

    def compute(self) -> MetricValue:
        if not self._sims:
            raise ValueError(f"{self.name}: no objects collected")
        return MetricValue(self.name, float(np.mean(self._sims)) * self.scale, extra={"n": len(self._sims)})


METRICS: dict[str, type[Metric]] = {
    cls.name: cls
    for cls in (ClipScore, ReferenceClip, KdIncep, KdDinov2, FdIncep, FdDinov2, ScriptRbfSimilarity)
}


def get_metric(name: str) -> type[Metric]:
    """The metric class registered under ``name`` (see :data:`METRICS`)."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(sorted(METRICS))}") from None
