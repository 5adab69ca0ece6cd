"""The input check shared by the set metrics (KD, FD): a finite float64 ``(N, D)`` matrix, N ≥ 2."""

from __future__ import annotations

import numpy as np


def as_feature_matrix(x: np.ndarray, name: str, purpose: str) -> np.ndarray:
    """``x`` as a float64 ``(N, D)`` array with N ≥ 2 finite rows, else a ``ValueError`` naming ``name``
    and what the two rows are needed for (``purpose``, e.g. "a covariance")."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (N, D) feature array, got shape {arr.shape}")
    if arr.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 feature vectors for {purpose}, got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values; check the feature extractor's input")
    return arr
