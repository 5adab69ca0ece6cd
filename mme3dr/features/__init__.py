"""Feature extractors (CLIP, Inception-v3 pool3, DINOv2 CLS), their weights, and metric profiles.

Importing this package is light: torch, open_clip and transformers load when an encoder is built.
"""

from __future__ import annotations

from mme3dr.features.profiles import PROFILES, MetricProfile, get_profile, prepare_prompt
from mme3dr.features.weights import CATALOGUE, WeightsNotFoundError, WeightSpec, resolve_weights

_LAZY = {
    "FeatureSuite": ("mme3dr.features.suite", "FeatureSuite"),
    "load_feature_suite": ("mme3dr.features.suite", "load_feature_suite"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'mme3dr.features' has no attribute {name!r}")


__all__ = [
    "CATALOGUE",
    "PROFILES",
    "FeatureSuite",
    "MetricProfile",
    "WeightSpec",
    "WeightsNotFoundError",
    "get_profile",
    "load_feature_suite",
    "prepare_prompt",
    "resolve_weights",
]
