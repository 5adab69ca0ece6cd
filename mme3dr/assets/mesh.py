"""Load, validate and normalise 3D assets into the canonical frame of protocol v1.

Light module: numpy, Pillow and trimesh only (no OpenGL, no torch). Each format has its reader
(:mod:`gltf` for GLB/glTF, :mod:`obj` for OBJ/MTL, :mod:`plain_formats` for PLY/OFF/STL); they fill
the one material model of :mod:`materials`. Every way an asset can be unusable ends in a
:class:`MeshError` whose ``reason`` is a :class:`MeshFailure`, so callers record *why* an asset failed.

Canonical frame (design.md §3): Y up, bounding-box centre at the origin, longest side 1.0, so the
asset lies in [-0.5, 0.5]^3. Z-up sources (Blender, Toys4K, TRELLIS ground truth) are rotated by the
caller that knows their convention (``up_axis="z"``); the loader never guesses it per asset.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mme3dr.assets.geometry import MeshError, MeshFailure, MeshPart
from mme3dr.assets.materials import UNCOLOURED_GREY
from mme3dr.hashing import file_sha256

__all__ = ["DEFAULT_MAX_FACES", "SUPPORTED_SUFFIXES", "CanonicalMesh", "MeshError", "MeshFailure", "MeshPart",
           "check_asset_file", "file_sha256", "load_mesh"]

SUPPORTED_SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".stl", ".off")
UNCOLOURED_BASE_COLOR = (UNCOLOURED_GREY, UNCOLOURED_GREY, UNCOLOURED_GREY, 1.0)  # design.md §3
DEFAULT_MAX_FACES = 2_000_000
# Z up -> Y up, the glTF convention: (x, y, z) -> (x, z, -y). A proper rotation (det +1) about +X.
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


@dataclass
class CanonicalMesh:
    """A validated asset: its parts, provenance, face count, bounds ``(2, 3)`` float64 (min, max) and
    ``notes``: what the loader could not use and left uncoloured (a missing MTL or texture), written
    into the render's metadata."""

    parts: list[MeshPart]
    source_path: str
    source_sha256: str
    n_faces: int
    bounds: np.ndarray
    up_axis: str = "y"
    normalised: bool = True
    notes: list[str] = field(default_factory=list)


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


#: What a reader raises for a file whose values are not what its format allows (a string where a number
#: belongs, an object for a list, nesting too deep): the file's fault, ``corrupt_file``.
_MALFORMED = (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError, RecursionError,
              UnicodeError, struct.error, np.linalg.LinAlgError)


def _read_parts(path: Path, max_faces: int) -> tuple[list[MeshPart], int, list[str]]:
    """(parts, point clouds, notes) of the file, by format; malformed values -> ``corrupt_file``."""
    try:
        return _read_format(path, max_faces)
    except MeshError:
        raise
    except _MALFORMED as exc:
        raise MeshError(MeshFailure.corrupt_file, path,
                        f"malformed file ({type(exc).__name__}: {str(exc)[:300]})") from exc


def _read_format(path: Path, max_faces: int) -> tuple[list[MeshPart], int, list[str]]:
    """(parts, point clouds, notes) of the file, by format. Declared face counts are checked first."""
    from mme3dr.assets.text_formats import declared_faces

    data = path.read_bytes()
    suffix = path.suffix.lower()
    if suffix in (".glb", ".gltf"):
        from mme3dr.assets.gltf import read_gltf

        return read_gltf(path, data, max_faces)
    declared_faces(path, data, max_faces)
    if suffix == ".obj":
        from mme3dr.assets.obj import read_obj

        return read_obj(path, data)
    from mme3dr.assets.plain_formats import read_plain

    parts, n_points = read_plain(path, data)
    return parts, n_points, []


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


def _has_area(part: MeshPart) -> bool:
    """Whether any triangle of ``part`` has a non-zero area (its corners' cross product)."""
    f = part.faces
    distinct = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])
    if not distinct.any():
        return False
    p, f = part.positions, f[distinct]
    for start in range(0, len(f), 1 << 16):  # a real mesh answers in its first chunk
        c = f[start:start + (1 << 16)]
        with np.errstate(all="ignore"):
            if np.any(np.cross(p[c[:, 1]] - p[c[:, 0]], p[c[:, 2]] - p[c[:, 0]])):
                return True
    return False


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
    parts, n_points, notes = _read_parts(path, max_faces)
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
    if not any(_has_area(p) for p in parts):
        raise MeshError(MeshFailure.no_triangles, path, f"all {n_faces:,} triangles are degenerate (zero "
                                                        "area: repeated indices or collinear corners)")
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
        notes=notes,
    )
