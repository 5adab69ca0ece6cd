"""Reward ensembles of Hi-GRPO: dimension normalisation, R_high, R_low and the step-1 target.

Source: the paper (Tang et al. 2025, "Are We Ready for RL in Text-to-3D Generation?", §Hi-GRPO,
summarised in paper-facts.md). Each reward model's score is divided by its number of dimensions, so a
three-dimension reward (UnifiedReward-2.0: alignment + coherence + style) weighs no more than a
one-dimension one::

    R_high = HPS₁ + Unified₁ + Consist₁                         (step 1: HPS, UnifiedReward-Think, category)
    R_low  = HPS₂ + Unified₂/3 + Consist₂/3 + Part₂/2           (step 2: HPS, UnifiedReward-2.0,
                                                                  colour/material/texture, parts)
    step-1 target = R_high + λ·R_low                            (λ = 1.0 in the paper)

Ranges (design.md §6): HPS [0, 1]; UnifiedReward-Think 1–5; category {0, 1}; UnifiedReward-2.0 dims
1–5 each; consistency dims [0, 1] each; part existence {0..1 mean} and completeness [0, 1]. So
R_high ∈ [1, 7] and R_low ∈ [1, 7].

Shapes: every dimension is a ``(G,)`` float array over a group of G samples (G = 8 in the paper); the
results are ``(G,) float64``. A failed sample carries NaN in its dimensions and gets NaN here: the
trainer masks it (or zeroes it by a flag), these functions never invent a value for it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

#: Step-1 rewards → their dimension names (R_high).
STEP1_REWARDS: dict[str, tuple[str, ...]] = {
    "hps": ("hps",),
    "unified_think": ("geometric_alignment",),
    "category": ("category_match",),
}
#: Step-2 rewards → their dimension names (R_low).
STEP2_REWARDS: dict[str, tuple[str, ...]] = {
    "hps": ("hps",),
    "unified2": ("alignment", "coherence", "style"),
    "consistency": ("colour", "material", "texture"),
    "parts": ("part_existence", "part_completeness"),
}
PAPER_LAMBDA = 1.0


def dimension_normalised(dims: Mapping[str, np.ndarray], names: tuple[str, ...]) -> np.ndarray:
    """One reward's contribution: ``(Σ_d dims[d]) / D`` over its ``D = len(names)`` dimensions.

    Args:
        dims: dimension name → ``(G,)`` array (extra names are ignored).
        names: the reward's dimension names.

    Returns:
        ``(G,) float64``.

    Raises:
        KeyError: a dimension is missing (the message lists what was given).
        ValueError: dimensions of different lengths, or not one-dimensional.
    """
    missing = [n for n in names if n not in dims]
    if missing:
        raise KeyError(f"missing reward dimensions {missing}; given {sorted(dims)}")
    cols = [np.asarray(dims[n], dtype=np.float64) for n in names]
    if any(c.ndim != 1 for c in cols) or len({c.shape for c in cols}) != 1:
        raise ValueError(f"dimensions {list(names)} must be (G,) arrays of one length; got "
                         f"{[c.shape for c in cols]}")
    return np.sum(cols, axis=0) / len(names)


def ensemble(dims: Mapping[str, np.ndarray], rewards: dict[str, tuple[str, ...]]) -> np.ndarray:
    """``Σ_rewards dimension_normalised(dims, names)`` over ``rewards`` (reward name → its dimension
    names): ``(G,) float64``, NaN where a sample failed. R_high and R_low are this over
    :data:`STEP1_REWARDS` / :data:`STEP2_REWARDS`; the tiny-cpu task uses it with the geometric ones."""
    return np.sum([dimension_normalised(dims, names) for names in rewards.values()], axis=0)


def r_high(dims: Mapping[str, np.ndarray]) -> np.ndarray:
    """R_high = HPS₁ + Unified₁ + Consist₁ over ``(G,)`` dims ``hps``, ``geometric_alignment``,
    ``category_match``; returns ``(G,) float64`` (NaN where a sample's dimension is NaN)."""
    return ensemble(dims, STEP1_REWARDS)


def r_low(dims: Mapping[str, np.ndarray]) -> np.ndarray:
    """R_low = HPS₂ + Unified₂/3 + Consist₂/3 + Part₂/2 over ``(G,)`` dims ``hps``, ``alignment``,
    ``coherence``, ``style``, ``colour``, ``material``, ``texture``, ``part_existence``,
    ``part_completeness``; returns ``(G,) float64``."""
    return ensemble(dims, STEP2_REWARDS)


def step1_target(r_high: np.ndarray, r_low: np.ndarray, lam: float = PAPER_LAMBDA) -> np.ndarray:
    """The reward step 1 trains on: ``R_high + λ·R_low`` (the step-2 result fed back), ``(G,) float64``.

    ``r_low`` is the R_low of the step-2 sample that continued each step-1 sample (same index).
    """
    high, low = np.asarray(r_high, dtype=np.float64), np.asarray(r_low, dtype=np.float64)
    if high.shape != low.shape:
        raise ValueError(f"r_high {high.shape} and r_low {low.shape} must have the same shape")
    return high + float(lam) * low
