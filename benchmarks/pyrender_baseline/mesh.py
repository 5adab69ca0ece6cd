"""Load, validate and normalise 3D assets into the canonical frame of protocol v1.

Light module: numpy + trimesh only (no OpenGL, no torch). Every way an asset can be unusable ends in a
:class:`MeshError` whose ``reason`` is a :class:`MeshFailure`, so callers (the batch renderer, the
evaluation pipeline) record *why* an asset failed instead of crashing inside trimesh or OpenGL.

Canonical frame (design.md §3): Y up, bounding-box centre at the origin, longest side 1.0, so the
asset lies in [-0.5, 0.5]^3. Z-up sources (Blender, Toys4K, TRELLIS ground truth) are rotated by the
caller that knows their convention (``up_axis="z"``); the loader never guesses it per asset.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np

from mme3dr.hashing import file_sha256

SUPPORTED_SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".stl", ".off")
# Formats that carry no material: a texture trimesh invents for them (a UV-only PLY gets a 2x2
# placeholder image) is not the asset's colour, so such parts render as uncoloured grey.
_MATERIAL_LESS = (".ply", ".stl", ".off")
UNCOLOURED_BASE_COLOR = (0.8, 0.8, 0.8, 1.0)  # design.md §3: assets without colour get 0.8 grey
DEFAULT_MAX_FACES = 2_000_000
# Z up -> Y up, the glTF convention: (x, y, z) -> (x, z, -y). A proper rotation (det +1) about +X.
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
_TRIMESH_DEFAULT_DIFFUSE = (102, 102, 102, 255)  # trimesh's SimpleMaterial default, not asset data


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


class MeshError(Exception):
    """An asset failed to load or validate; ``reason`` says which way, ``detail`` says what to do."""

    def __init__(self, reason: MeshFailure, path: str | os.PathLike, detail: str) -> None:
        self.reason = MeshFailure(reason)
        self.path = str(path)
        self.detail = detail
        super().__init__(f"{self.path}: {self.reason.value}: {detail}")


@dataclass
class MeshPart:
    """One drawable piece with one material, already in the output frame.

    positions (n, 3) float32; faces (m, 3) int64 indices into positions; normals (n, 3) float32 or
    None; uv (n, 2) float32 or None; texture (h, w, 3|4) uint8 (sRGB) or None; vertex_colors (n, 4)
    uint8 or None; base_color (4,) float32 RGBA in [0, 1], linear (glTF baseColorFactor semantics).
    ``vertex_colors_linear`` is True for glTF COLOR_0 (linear by the glTF spec) and False for
    PLY/OBJ colours, which tools write sRGB-encoded.
    """

    positions: np.ndarray
    faces: np.ndarray
    normals: np.ndarray | None = None
    uv: np.ndarray | None = None
    texture: np.ndarray | None = None
    vertex_colors: np.ndarray | None = None
    base_color: np.ndarray = field(default_factory=lambda: np.array(UNCOLOURED_BASE_COLOR, np.float32))
    vertex_colors_linear: bool = False


@dataclass
class CanonicalMesh:
    """A validated asset: its parts, provenance, face count and bounds ``(2, 3)`` float64 (min, max)."""

    parts: list[MeshPart]
    source_path: str
    source_sha256: str
    n_faces: int
    bounds: np.ndarray
    up_axis: str = "y"
    normalised: bool = True


def check_asset_file(path: Path) -> None:
    """Cheap checks before parsing: exists, is a file, supported suffix, not empty (raises MeshError)."""
    if not path.exists():
        raise MeshError(MeshFailure.missing_file, path, "no such file; check the path")
    if not path.is_file():
        raise MeshError(MeshFailure.missing_file, path, "not a regular file (a directory?)")
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise MeshError(
            MeshFailure.unsupported_format,
            path,
            f"suffix {path.suffix!r} is not one of {', '.join(SUPPORTED_SUFFIXES)}; "
            "convert it (e.g. .blend via `mme3dr` Toys4K tools, or export to .glb)",
        )
    if path.stat().st_size == 0:
        raise MeshError(MeshFailure.empty_file, path, "the file is 0 bytes; re-export or re-download it")


def _load_scene(path: Path):
    """trimesh scene of the file; any parser error becomes ``corrupt_file``."""
    import trimesh

    try:
        return trimesh.load_scene(str(path), process=False)
    except Exception as exc:  # trimesh raises many types from many parsers: all mean "unreadable"
        raise MeshError(
            MeshFailure.corrupt_file, path, f"could not be parsed ({type(exc).__name__}: {exc})"
        ) from exc


def _material_colour(material, suffix: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(texture (h, w, 3|4) uint8 | None, base_color (4,) float32 | None) of a trimesh material."""
    from trimesh.visual.material import PBRMaterial, SimpleMaterial

    if material is None or suffix in _MATERIAL_LESS:
        return None, None
    if isinstance(material, PBRMaterial):
        image = material.baseColorTexture
        factor = material.baseColorFactor
        base = None if factor is None else np.asarray(factor, np.float64)
        if base is not None and base.max() > 1.0:  # trimesh stores factors as uint8
            base = base / 255.0
    elif isinstance(material, SimpleMaterial):
        image = material.image
        diffuse = None if material.diffuse is None else tuple(int(v) for v in material.diffuse)
        base = None if diffuse in (None, _TRIMESH_DEFAULT_DIFFUSE) else np.asarray(diffuse) / 255.0
    else:
        return None, None
    texture = None
    if image is not None:
        mode = "RGBA" if "A" in image.mode else "RGB"
        texture = np.ascontiguousarray(np.asarray(image.convert(mode), dtype=np.uint8))
    if base is not None:
        base = np.concatenate([base[:3], base[3:4] if base.size > 3 else [1.0]]).astype(np.float32)
    elif texture is not None:
        base = np.ones(4, np.float32)  # glTF: an absent baseColorFactor is 1, the texture shows as is
    return texture, base


def _part_from_trimesh(mesh, transform: np.ndarray, suffix: str) -> MeshPart:
    """Bake a scene node's 4x4 transform into one trimesh geometry and keep its colours."""
    positions = np.asarray(mesh.vertices, np.float64)
    faces = np.asarray(mesh.faces, np.int64).reshape(-1, 3)
    normals = None
    if len(faces) and faces.min() >= 0 and faces.max() < len(positions):
        with np.errstate(all="ignore"):
            normals = np.asarray(mesh.vertex_normals, np.float64)
    visual = mesh.visual
    kind = getattr(visual, "kind", None)
    uv = texture = vcolors = None
    base = None
    if kind == "texture":
        texture, base = _material_colour(getattr(visual, "material", None), suffix)
        if texture is not None and getattr(visual, "uv", None) is not None:
            uv = np.asarray(visual.uv, np.float32)[:, :2]
            if len(uv) != len(positions):
                texture, uv = None, None
        else:
            texture = None
    elif kind == "vertex":
        vcolors = np.asarray(visual.vertex_colors, np.uint8)
    elif kind == "face":
        # Face colours become vertex colours on an unshared copy of the vertices (3 per face).
        fcolors = np.asarray(visual.face_colors, np.uint8)
        positions = positions[faces].reshape(-1, 3)
        normals = None if normals is None else normals[faces].reshape(-1, 3)
        vcolors = np.repeat(fcolors, 3, axis=0)
        faces = np.arange(len(positions), dtype=np.int64).reshape(-1, 3)
    # Node transform: points by the full affine map, normals by the inverse transpose of its 3x3.
    rot = transform[:3, :3]
    positions = positions @ rot.T + transform[:3, 3]
    if normals is not None:
        with np.errstate(all="ignore"):
            normals = normals @ np.linalg.inv(rot)
    return MeshPart(
        positions=positions,
        faces=faces,
        normals=normals,
        uv=uv,
        texture=texture,
        vertex_colors=vcolors,
        base_color=np.array(UNCOLOURED_BASE_COLOR if base is None else base, np.float32),
        vertex_colors_linear=suffix in (".glb", ".gltf"),
    )


def _flatten(scene, path: Path) -> tuple[list[MeshPart], int]:
    """Mesh parts of every scene node (transforms applied) and the number of point clouds.

    A point cloud is an explicit point geometry (a vertex-only PLY); vertices without faces in a mesh
    format (an OBJ of lines) are a mesh with no triangles.
    """
    import trimesh

    suffix = path.suffix.lower()
    parts: list[MeshPart] = []
    n_points = 0
    for node in scene.graph.nodes_geometry:
        transform, geom_name = scene.graph[node]
        geom = scene.geometry.get(geom_name)
        if isinstance(geom, trimesh.Trimesh):
            if len(geom.faces):
                parts.append(_part_from_trimesh(geom, np.asarray(transform, np.float64), suffix))
        elif isinstance(geom, trimesh.PointCloud):
            n_points += 1
    return parts, n_points


def _validate(
    parts: list[MeshPart], n_points: int, path: Path, max_faces: int
) -> tuple[int, list[np.ndarray]]:
    """The face count and, per part, the indices of the vertices its faces use (sorted, unique)."""
    if not parts:
        if n_points:
            raise MeshError(
                MeshFailure.point_cloud_only, path, "the file holds points but no faces; mesh it first"
            )
        raise MeshError(MeshFailure.no_triangles, path, "the file holds no triangles")
    n_faces = sum(len(p.faces) for p in parts)
    if n_faces > max_faces:
        raise MeshError(
            MeshFailure.too_many_faces,
            path,
            f"{n_faces:,} faces exceed the limit of {max_faces:,}; decimate the mesh or raise max_faces",
        )
    used = []
    for part in parts:
        if part.faces.min() < 0 or part.faces.max() >= len(part.positions):
            raise MeshError(
                MeshFailure.corrupt_file, path, "face indices point past the vertex list (truncated?)"
            )
        used.append(np.unique(part.faces))
        if not np.isfinite(part.positions[used[-1]]).all():
            raise MeshError(
                MeshFailure.non_finite_coordinates, path, "vertex coordinates contain NaN or inf"
            )
    return n_faces, used


def _used_bounds(parts: list[MeshPart], used: list[np.ndarray]) -> np.ndarray:
    """(2, 3) float64 bounds of the vertices that faces use (stray unused vertices do not count);
    ``used``: per part, the vertex indices its faces use."""
    points = np.concatenate([p.positions[u] for p, u in zip(parts, used, strict=True)])
    return np.stack([points.min(axis=0), points.max(axis=0)])


def load_mesh(
    path: str | os.PathLike,
    *,
    up_axis: str = "y",
    normalise: bool = True,
    max_faces: int = DEFAULT_MAX_FACES,
    sha256: str | None = None,
) -> CanonicalMesh:
    """Load an asset, validate it and bring it into the canonical frame.

    ``up_axis="z"`` rotates a Z-up source into Y up (x, y, z) -> (x, z, -y). ``normalise=False``
    keeps the source frame's scale and position (used with a transforms.json that comes with its own
    normalised mesh). ``sha256``: the file's hash when the caller already computed it.
    Raises :class:`MeshError` with a :class:`MeshFailure` reason.
    """
    path = Path(path)
    if up_axis not in ("y", "z"):
        raise ValueError(f"up_axis must be 'y' or 'z', not {up_axis!r}")
    check_asset_file(path)
    sha = sha256 or file_sha256(path)
    parts, n_points = _flatten(_load_scene(path), path)
    n_faces, used = _validate(parts, n_points, path, max_faces)
    if up_axis == "z":
        for part in parts:
            part.positions = part.positions @ Z_UP_TO_Y_UP.T
            if part.normals is not None:
                part.normals = part.normals @ Z_UP_TO_Y_UP.T
    bounds = _used_bounds(parts, used)  # the Z-up rotation moves vertices, not which ones are used
    extent = float((bounds[1] - bounds[0]).max())
    if not np.isfinite(extent) or extent <= 1e-12 * max(1.0, float(np.abs(bounds).max())):
        raise MeshError(MeshFailure.zero_extent, path, "all vertices coincide: the mesh has no size")
    if normalise:
        # Centre the bounding box on the origin, then scale uniformly so the longest side is 1.0.
        centre = (bounds[0] + bounds[1]) / 2.0
        for part in parts:
            part.positions = (part.positions - centre) / extent
        bounds = (bounds - centre) / extent
    for part in parts:
        # Unused vertices may hold NaN (validation only checks used ones): zero them for the renderer.
        finite = np.nan_to_num(part.positions, nan=0.0, posinf=0.0, neginf=0.0)
        part.positions = np.ascontiguousarray(finite, np.float32)
        if part.normals is not None:
            with np.errstate(all="ignore"):
                length = np.linalg.norm(part.normals, axis=1, keepdims=True)
                normals = part.normals / length
            # Degenerate faces give zero-length normals; any unit vector keeps the shader finite.
            bad = ~np.isfinite(normals).all(axis=1)
            normals[bad] = (0.0, 0.0, 1.0)
            part.normals = normals.astype(np.float32)
    return CanonicalMesh(
        parts=parts,
        source_path=str(path),
        source_sha256=sha,
        n_faces=n_faces,
        bounds=bounds,
        up_axis=up_axis,
        normalised=normalise,
    )
