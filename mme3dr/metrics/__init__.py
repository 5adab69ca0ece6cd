"""Metric maths as pure numpy/scipy functions, and metric classes carrying their facts (no torch)."""

from __future__ import annotations

from mme3dr.metrics.bootstrap import bootstrap_ci, bootstrap_means
from mme3dr.metrics.clip_score import aggregate_clip_scores, asset_clip_score, per_view_clip_scores
from mme3dr.metrics.definitions import (
    METRICS,
    ClipScore,
    FdDinov2,
    FdIncep,
    KdDinov2,
    KdIncep,
    KernelDistance,
    Metric,
    MetricValue,
    ReferenceClip,
    ScriptRbfSimilarity,
    SetDistanceMetric,
    get_metric,
)
from mme3dr.metrics.fd import FrechetDistanceError, fd, feature_statistics, frechet_distance
from mme3dr.metrics.kid import draw_subsets, kid, kid_subset_scores
from mme3dr.metrics.rbf_similarity import mean_rbf_similarity, object_rbf_similarity

__all__ = [
    "METRICS",
    "ClipScore",
    "FdDinov2",
    "FdIncep",
    "FrechetDistanceError",
    "KdDinov2",
    "KernelDistance",
    "KdIncep",
    "Metric",
    "MetricValue",
    "ReferenceClip",
    "ScriptRbfSimilarity",
    "SetDistanceMetric",
    "aggregate_clip_scores",
    "asset_clip_score",
    "bootstrap_ci",
    "bootstrap_means",
    "draw_subsets",
    "fd",
    "feature_statistics",
    "frechet_distance",
    "get_metric",
    "kid",
    "kid_subset_scores",
    "mean_rbf_similarity",
    "object_rbf_similarity",
    "per_view_clip_scores",
]
