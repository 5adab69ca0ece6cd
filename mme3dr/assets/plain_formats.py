"""PLY, OFF and STL -> :class:`MeshPart` lists: geometry plus vertex or face colours.

These formats carry no material: a part with vertex colours has base colour white x the colours
(sRGB-encoded, as tools write them, decoded to linear; alpha ignored: the formats define no alpha
mode, so the surface is opaque); face colours become vertex colours of unshared vertices; a part
without colours is uncoloured (the protocol's grey). Normals are used when the file has them (PLY
``nx ny nz``; STL facet normals are not trusted and the triangles are shaded flat). A PLY naming a
texture image (``comment TextureFile``, MeshLab's convention) is refused as ``unsupported_feature``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mme3dr.assets.geometry import MeshError, MeshFailure, MeshPart
from mme3dr.assets.materials import Material, srgb_to_linear
from mme3dr.assets.text_formats import decode_text, parse_with_trimesh, scene_geometries, trimesh_normals

__all__ = ["read_plain"]


def _clean_text_header(suffix: str, data: bytes) -> bytes:
    """The bytes trimesh parses: text formats re-encoded as UTF-8; a PLY's header likewise (its binary
    body untouched), so a non-UTF-8 comment cannot make the file unreadable."""
    if suffix == ".ply":
        end = data.find(b"end_header")
        if end < 0:
            return data
        end = data.index(b"\n", end) + 1 if b"\n" in data[end:] else len(data)
        header = decode_text(data[:end]).encode("ascii", errors="replace")
        return header + data[end:]
    if suffix == ".off" or (suffix == ".stl" and data[:5].lower() == b"solid" and b"\0" not in data[:400]):
        return decode_text(data).encode("utf-8")
    return data


def _colours(geom) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(vertex colours (n, 4) float32 linear | None, face colours (m, 4) float32 linear | None)."""
    visual = geom.visual
    kind = getattr(visual, "kind", None)
    if kind == "vertex":
        raw, per = np.asarray(visual.vertex_colors, np.float64), "vertex"
    elif kind == "face":
        raw, per = np.asarray(visual.face_colors, np.float64), "face"
    else:
        return None, None
    rgb = srgb_to_linear(raw[:, :3] / 255.0)
    out = np.concatenate([rgb, np.ones((len(rgb), 1), np.float32)], axis=1).astype(np.float32)
    return (out, None) if per == "vertex" else (None, out)


def read_plain(path: Path, data: bytes) -> tuple[list[MeshPart], int]:
    """(parts, point clouds) of a PLY/OFF/STL file."""
    suffix = path.suffix.lower()
    if suffix == ".ply":
        end = data.find(b"end_header")
        header = decode_text(data[: end if end >= 0 else 4096])
        if re.search(r"^comment\s+TextureFile", header, re.MULTILINE | re.IGNORECASE):
            raise MeshError(MeshFailure.unsupported_feature, path,
                            "unsupported_feature: PLY texture image (comment TextureFile); "
                            "convert to glTF/OBJ")
    scene = parse_with_trimesh(path, _clean_text_header(suffix, data), suffix.lstrip("."))
    geometries, n_points = scene_geometries(scene)
    parts = []
    for geom, transform in geometries:
        positions = np.asarray(geom.vertices, np.float64)
        faces = np.asarray(geom.faces, np.int64).reshape(-1, 3)
        normals = None if suffix == ".stl" else trimesh_normals(geom)
        vcolors, fcolors = _colours(geom)
        if fcolors is not None and len(fcolors) == len(faces) and len(faces) and faces.max() < len(positions):
            positions = positions[faces].reshape(-1, 3)
            normals = None if normals is None else normals[faces].reshape(-1, 3)
            vcolors = np.repeat(fcolors, 3, axis=0)
            faces = np.arange(len(positions), dtype=np.int64).reshape(-1, 3)
        if vcolors is not None and len(vcolors) != len(positions):
            vcolors = None
        positions = positions @ transform[:3, :3].T + transform[:3, 3]
        material = Material() if vcolors is not None else Material.grey()
        normals = None if normals is None else normals.astype(np.float32)
        parts.append(MeshPart(positions=positions, faces=faces, material=material, normals=normals,
                              colors=vcolors))
    return parts, n_points
