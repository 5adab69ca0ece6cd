"""Coloured primitive parts and their deterministic GLB export (shared by ``primitives`` and ``demo``).

Light: numpy + trimesh. Every builder returns ``trimesh.Trimesh`` objects with per-vertex RGBA colours;
``write_glb`` concatenates them into one mesh and writes a GLB whose bytes depend only on the inputs
(no timestamps, fixed tessellation), so references and baseline outputs are reproducible to the byte.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

__all__ = [
    "COLOURS",
    "box",
    "capsule",
    "cone",
    "cylinder",
    "mesh_glb_bytes",
    "paint",
    "sphere",
    "torus",
    "write_glb",
]

#: Colour words -> sRGB 0-255.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (200, 30, 30),
    "green": (40, 160, 60),
    "blue": (40, 80, 200),
    "yellow": (235, 200, 40),
    "orange": (240, 130, 30),
    "purple": (120, 50, 160),
    "pink": (240, 140, 180),
    "brown": (120, 75, 40),
    "wooden": (150, 100, 55),
    "black": (25, 25, 25),
    "white": (240, 240, 240),
    "grey": (128, 128, 128),
    "gray": (128, 128, 128),
    "silver": (190, 190, 200),
    "golden": (212, 175, 55),
    "gold": (212, 175, 55),
}


def paint(mesh: trimesh.Trimesh, rgb: tuple[int, int, int]) -> trimesh.Trimesh:
    """Set every vertex colour of ``mesh`` to ``rgb`` (opaque); returns the mesh."""
    colours = np.tile(np.array([*rgb, 255], dtype=np.uint8), (len(mesh.vertices), 1))
    mesh.visual = trimesh.visual.ColorVisuals(mesh=mesh, vertex_colors=colours)
    return mesh


def _place(mesh: trimesh.Trimesh, at=(0.0, 0.0, 0.0), rgb=(128, 128, 128)) -> trimesh.Trimesh:
    mesh.apply_translation(np.asarray(at, dtype=np.float64))
    return paint(mesh, rgb)


def box(size, at=(0.0, 0.0, 0.0), rgb=(128, 128, 128)) -> trimesh.Trimesh:
    """Axis-aligned box of extents ``size`` (x, y, z) centred at ``at``."""
    return _place(trimesh.creation.box(extents=size), at, rgb)


def sphere(radius: float, at=(0.0, 0.0, 0.0), rgb=(128, 128, 128), scale=(1.0, 1.0, 1.0)) -> trimesh.Trimesh:
    """UV-free icosphere (subdivisions 3); ``scale`` stretches it into an ellipsoid."""
    m = trimesh.creation.icosphere(subdivisions=3, radius=radius)
    m.apply_scale(np.asarray(scale, dtype=np.float64))
    return _place(m, at, rgb)


def _y_up(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    # trimesh builds cylinders/cones/capsules along +Z; the protocol frame is Y up.
    mesh.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, [1.0, 0.0, 0.0]))
    return mesh


def cylinder(radius: float, height: float, at=(0.0, 0.0, 0.0), rgb=(128, 128, 128),
             sections: int = 32, axis: str = "y") -> trimesh.Trimesh:
    """Cylinder centred at ``at`` along ``axis`` (``"y"`` upright, ``"x"`` or ``"z"`` lying)."""
    m = trimesh.creation.cylinder(radius=radius, height=height, sections=sections)
    if axis == "y":
        _y_up(m)
    elif axis == "x":
        m.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [0.0, 1.0, 0.0]))
    return _place(m, at, rgb)


def cone(radius: float, height: float, at=(0.0, 0.0, 0.0), rgb=(128, 128, 128),
         sections: int = 32) -> trimesh.Trimesh:
    """Upright cone whose base is centred at ``at`` and whose tip points to +Y."""
    return _place(_y_up(trimesh.creation.cone(radius=radius, height=height, sections=sections)), at, rgb)


def torus(major: float, minor: float, at=(0.0, 0.0, 0.0), rgb=(128, 128, 128),
          axis: str = "y") -> trimesh.Trimesh:
    """Torus around ``axis`` (``"y"``: lying flat like a ring on a table)."""
    m = trimesh.creation.torus(major_radius=major, minor_radius=minor, major_sections=48, minor_sections=16)
    if axis == "y":
        _y_up(m)
    elif axis == "x":
        m.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [0.0, 1.0, 0.0]))
    return _place(m, at, rgb)


def capsule(radius: float, height: float, at=(0.0, 0.0, 0.0), rgb=(128, 128, 128)) -> trimesh.Trimesh:
    """Upright capsule (cylinder part ``height``, hemispherical caps of ``radius``)."""
    return _place(_y_up(trimesh.creation.capsule(height=height, radius=radius, count=[16, 16])), at, rgb)


def mesh_glb_bytes(parts: list[trimesh.Trimesh]) -> bytes:
    """The GLB bytes of the parts merged into one vertex-coloured mesh."""
    if not parts:
        raise ValueError("write_glb needs at least one part")
    merged = trimesh.util.concatenate(parts)
    # Round positions so that float noise from transforms cannot change bytes across platforms.
    merged.vertices = np.round(np.asarray(merged.vertices, dtype=np.float64), 6)
    data = trimesh.exchange.gltf.export_glb(trimesh.Scene(merged), include_normals=False)
    return bytes(data)


def write_glb(parts: list[trimesh.Trimesh], path: str | Path) -> Path:
    """Write ``parts`` as one GLB at ``path`` (atomically: temp file then rename); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(mesh_glb_bytes(parts))
    tmp.replace(path)
    return path
