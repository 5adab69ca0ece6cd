"""CLIP score: per view, per asset, and aggregated over assets and categories (design.md §3).

Per view: ``100 · max(cos(image, text), 0)`` (Hessel et al. 2021, CLIPScore with w = 100 as in
torchmetrics' ``CLIPScore``). Per asset: the mean over its views. Benchmark and per category: the mean
over assets with a 95% percentile bootstrap CI (1,000 resamples over assets, seed 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mme3dr.metrics.bootstrap import PROTOCOL_RESAMPLES, PROTOCOL_SEED, bootstrap_ci

#: CLIPScore's weight w (Hessel et al. 2021); puts scores on the 0–100 scale the paper reports.
CLIP_WEIGHT = 100.0


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("a CLIP embedding has zero norm; the encoder output is degenerate")
    return x / norms


def per_view_clip_scores(image_feats: np.ndarray, text_feat: np.ndarray) -> np.ndarray:
    """``100 · max(cos, 0)`` of each view: ``image_feats (V, D)``, ``text_feat (D,)`` → ``(V,)`` float64.

    The inputs need not be normalised; the cosine normalises them.

    >>> per_view_clip_scores(np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]), np.array([2.0, 0.0]))
    array([100.,   0.,   0.])
    """
    img = _unit_rows(np.atleast_2d(np.asarray(image_feats, dtype=np.float64)))
    txt = _unit_rows(np.asarray(text_feat, dtype=np.float64).reshape(1, -1))[0]
    if img.shape[1] != txt.shape[0]:
        raise ValueError(
            f"image features have dimension {img.shape[1]} but the text feature has {txt.shape[0]}"
        )
    return CLIP_WEIGHT * np.maximum(img @ txt, 0.0)


def asset_clip_score(image_feats: np.ndarray, text_feat: np.ndarray) -> float:
    """An asset's CLIP score: the mean of :func:`per_view_clip_scores` over its views."""
    return float(per_view_clip_scores(image_feats, text_feat).mean())


def summarise(values: Sequence[float], n_boot: int = PROTOCOL_RESAMPLES, seed: int = PROTOCOL_SEED) -> dict:
    """``{"mean", "ci95": [low, high], "n"}`` of per-asset values (bootstrap over assets)."""
    vals = np.asarray(values, dtype=np.float64)
    low, high = bootstrap_ci(vals, n=n_boot, seed=seed)
    return {"mean": float(vals.mean()), "ci95": [low, high], "n": int(vals.size)}


def aggregate_clip_scores(
    asset_scores: Sequence[float],
    categories: Sequence[str] | None = None,
    n_boot: int = PROTOCOL_RESAMPLES,
    seed: int = PROTOCOL_SEED,
) -> dict:
    """Benchmark-level and per-category CLIP score from per-asset scores.

    Args:
        asset_scores: ``(A,)`` per-asset CLIP scores (each already a mean over views).
        categories: ``(A,)`` category of each asset, or ``None`` for no per-category breakdown.
        n_boot, seed: bootstrap resamples and seed (protocol: 1,000 and 0; each category is bootstrapped
            with the same seed).

    Returns:
        ``{"mean", "ci95", "n", "per_category": {category: {"mean", "ci95", "n"}}}``, categories sorted.
    """
    scores = np.asarray(asset_scores, dtype=np.float64)
    if scores.ndim != 1 or scores.size == 0:
        raise ValueError("asset_scores must be a non-empty 1-D sequence")
    out = summarise(scores, n_boot=n_boot, seed=seed)
    out["per_category"] = {}
    if categories is not None:
        cats = np.asarray(list(categories), dtype=object)
        if cats.shape != scores.shape:
            raise ValueError(f"{len(cats)} categories given for {scores.size} asset scores")
        for cat in sorted(set(cats.tolist())):
            out["per_category"][cat] = summarise(scores[cats == cat], n_boot=n_boot, seed=seed)
    return out
