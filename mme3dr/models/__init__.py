"""Model adapters: the protocol any text-to-3D model implements, discovery, and the built-in adapters.

Light: importing this package loads only the (standard-library) protocol; adapters load on demand
through ``mme3dr.models.registry.load_model``.
"""

from __future__ import annotations

from mme3dr.models.protocol import (
    Asset,
    BaseTextTo3DModel,
    GenerationRequest,
    ModelInfo,
    TextTo3DModel,
    derive_seed,
)

__all__ = ["Asset", "BaseTextTo3DModel", "GenerationRequest", "ModelInfo", "TextTo3DModel", "derive_seed"]
