"""Helpers shared by the OBJ/PLY/OFF/STL readers: robust text decoding, header face counts, trimesh.

Light module (numpy; trimesh imported when a file is parsed).
"""

from __future__ import annotations

import io
import re
import struct
from pathlib import Path

import numpy as np

from mme3dr.assets.geometry import MeshError, MeshFailure
from mme3dr.assets.references import decode_text

__all__ = ["declared_faces", "decode_text", "parse_with_trimesh", "trimesh_normals"]


def _too_many(path, n: int, max_faces: int, how: str) -> None:
    if n > max_faces:
        raise MeshError(MeshFailure.too_many_faces, path,
                        f"{n:,} faces ({how}) exceed the limit of {max_faces:,}; decimate the mesh or raise "
                        "max_faces")


def declared_faces(path: Path, data: bytes, max_faces: int) -> None:
    """Raise ``too_many_faces`` from what the file declares, before it is parsed: the PLY header's
    ``element face N``, OFF's counts line, binary STL's triangle count, the number of ASCII STL
    ``facet`` or OBJ ``f`` records (a polygon record is at least one triangle)."""
    suffix = path.suffix.lower()
    if suffix == ".ply":
        end = data.find(b"end_header")
        header = decode_text(data[: end if end >= 0 else 4096])
        m = re.search(r"^element\s+face\s+(\d+)", header, re.MULTILINE)
        if m:
            _too_many(path, int(m.group(1)), max_faces, "declared by the PLY header")
    elif suffix == ".off":
        tokens = []
        for line in decode_text(data[:4096]).splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                tokens.extend(line.split())
            if len(tokens) >= 3 + ("OFF" in tokens[:1] or tokens[:1] == ["COFF"]):
                break
        counts = [t for t in tokens if t.isdigit()]
        if len(counts) >= 2:
            _too_many(path, int(counts[1]), max_faces, "declared by the OFF header")
    elif suffix == ".stl":
        binary_size = 84 + 50 * struct.unpack_from("<I", data, 80)[0] if len(data) >= 84 else -1
        if data[:5].lower() == b"solid" and binary_size != len(data):
            _too_many(path, data.count(b"facet normal"), max_faces, "ASCII STL facets")
        elif binary_size >= 0:
            _too_many(path, (binary_size - 84) // 50, max_faces, "declared by the binary STL header")
    elif suffix == ".obj":
        _too_many(path, data.count(b"\nf ") + data.startswith(b"f "), max_faces, "OBJ face records")


def parse_with_trimesh(path: Path, data: bytes, file_type: str, resolver=None):
    """trimesh scene of ``data`` (text formats handed over as clean UTF-8); parser errors ->
    ``corrupt_file``."""
    import trimesh

    try:
        return trimesh.load_scene(file_obj=io.BytesIO(data), file_type=file_type, resolver=resolver,
                                  process=False)
    except MemoryError:
        raise
    except Exception as exc:  # trimesh raises many types from many parsers: all mean "unreadable"
        raise MeshError(MeshFailure.corrupt_file, path,
                        f"could not be parsed ({type(exc).__name__}: {exc})") from exc


def trimesh_normals(mesh) -> np.ndarray | None:
    """The vertex normals the *file* gave (trimesh keeps them in its cache), else None (flat shading)."""
    cached = mesh._cache.cache.get("vertex_normals")
    if cached is None or len(cached) != len(mesh.vertices):
        return None
    return np.asarray(cached, np.float64)


def scene_geometries(scene):
    """(geometry, 4x4 transform) of every node of a trimesh scene, and the number of point clouds."""
    import trimesh

    out, n_points = [], 0
    for node in scene.graph.nodes_geometry:
        transform, name = scene.graph[node]
        geom = scene.geometry.get(name)
        if isinstance(geom, trimesh.Trimesh) and len(geom.faces):
            out.append((geom, np.asarray(transform, np.float64)))
        elif isinstance(geom, trimesh.PointCloud):
            n_points += 1
    return out, n_points
