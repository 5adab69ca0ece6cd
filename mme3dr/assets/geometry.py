"""What every format reader produces: :class:`MeshPart` lists, and the typed :class:`MeshError`.

Light module (numpy only). Readers (``gltf``, ``obj``, ``plain_formats``) build parts in the file's
own frame with node transforms applied; :func:`mme3dr.assets.mesh.load_mesh` validates and
normalises them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from mme3dr.assets.materials import Material

__all__ = ["MeshError", "MeshFailure", "MeshPart", "flip_winding_if_mirrored"]


class MeshFailure(str, Enum):
    """Why an asset could not be used. Values are stable strings written to results and logs."""

    missing_file = "missing_file"
    empty_file = "empty_file"
    unsupported_format = "unsupported_format"
    corrupt_file = "corrupt_file"
    point_cloud_only = "point_cloud_only"
    no_triangles = "no_triangles"
    non_finite_coordinates = "non_finite_coordinates"
    zero_extent = "zero_extent"
    too_many_faces = "too_many_faces"
    #: The file uses something that changes its look which the renderer cannot honour (named in
    #: ``detail``: "unsupported_feature: KHR_texture_basisu ..."); never rendered approximately.
    unsupported_feature = "unsupported_feature"
    #: A reference (MTL, texture, glTF buffer or image) leaves the asset's folder: an absolute path, a
    #: URI, ``..``, a symlink pointing out (:mod:`mme3dr.assets.references`). Never read.
    asset_refused = "asset_refused"
    #: An image declares more pixels than ``MAX_IMAGE_PIXELS``, or a side longer than ``MAX_IMAGE_SIDE``
    #: (checked from its header, before decoding).
    image_too_large = "image_too_large"


class MeshError(Exception):
    """An asset failed to load or validate; ``reason`` says which way, ``detail`` says what to do."""

    def __init__(self, reason: MeshFailure, path: str | os.PathLike, detail: str) -> None:
        self.reason = MeshFailure(reason)
        self.path = str(path)
        self.detail = detail
        super().__init__(f"{self.path}: {self.reason.value}: {detail}")


@dataclass
class MeshPart:
    """One drawable piece with one material, in the output frame.

    positions (n, 3) float64 while loading, float32 once loaded; faces (m, 3) int64 indices,
    counter-clockwise = front (glTF 2.0 §3.7.2.1); normals (n, 3) float32 or None (None: the file gives
    none, the renderer shades each triangle flat, as glTF 2.0 §3.7.2.1 requires); uv (n, 2) float32, the
    coordinate set the material's texture uses (glTF convention: v grows downwards in the image), or
    None; colors (n, 4) float32 linear RGBA vertex colours (multiply the base colour) or None.
    """

    positions: np.ndarray
    faces: np.ndarray
    material: Material = field(default_factory=Material.grey)
    normals: np.ndarray | None = None
    uv: np.ndarray | None = None
    colors: np.ndarray | None = None


def flip_winding_if_mirrored(faces: np.ndarray, linear: np.ndarray) -> np.ndarray:
    """Faces with reversed winding when the 3x3 ``linear`` part of a transform mirrors (det < 0).

    glTF 2.0 §3.5.2: "When a mesh primitive uses any triangle-based topology, the determinant of the
    node's global transform defines the winding order of that primitive. If the determinant is a
    positive value, the winding order triangle faces is counterclockwise; in the opposite case, the
    winding order is clockwise." Reversing the index order keeps counter-clockwise = front after the
    mirror, so front-facing tests and culling stay right.
    """
    if np.linalg.det(np.asarray(linear, np.float64)[:3, :3]) < 0:
        return np.ascontiguousarray(faces[:, ::-1])
    return faces
