"""Assets: the one loader for generated and ground-truth meshes (validate, normalise into the canonical
frame), procedural primitive shapes, and the content-addressed asset store.

Light: numpy and trimesh only (no torch, no OpenGL).
"""

from __future__ import annotations

from mme3dr.assets.mesh import (
    DEFAULT_MAX_FACES,
    SUPPORTED_SUFFIXES,
    CanonicalMesh,
    MeshError,
    MeshFailure,
    MeshPart,
    check_asset_file,
    load_mesh,
)
from mme3dr.assets.store import AssetStore, StoredAsset

__all__ = [
    "DEFAULT_MAX_FACES",
    "SUPPORTED_SUFFIXES",
    "AssetStore",
    "CanonicalMesh",
    "MeshError",
    "MeshFailure",
    "MeshPart",
    "StoredAsset",
    "check_asset_file",
    "load_mesh",
]
