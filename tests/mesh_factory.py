"""Builders of small synthetic assets for tests (any test module may import these).

Every builder writes a real file with trimesh (or raw bytes for broken files) into a directory the
caller owns (usually pytest's ``tmp_path``) and returns its path.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image


def box(extents=(1.0, 1.0, 1.0), centre=(0.0, 0.0, 0.0)) -> trimesh.Trimesh:
    mesh = trimesh.creation.box(extents=extents)
    mesh.apply_translation(centre)
    return mesh


def write_uncoloured_obj(directory: Path, name: str = "grey.obj", extents=(1.0, 1.0, 1.0)) -> Path:
    """A plain box OBJ with no material: renders 0.8 grey."""
    path = Path(directory) / name
    box(extents).export(path, include_texture=False)
    return path


def write_vertex_coloured_ply(directory: Path, rgba=(255, 0, 0, 255), name: str = "red.ply") -> Path:
    """A box PLY whose every vertex has colour ``rgba`` (uint8)."""
    mesh = box()
    mesh.visual.vertex_colors = np.tile(np.array(rgba, np.uint8), (len(mesh.vertices), 1))
    path = Path(directory) / name
    mesh.export(path)
    return path


def write_textured_glb(directory: Path, rgb=(0, 0, 255), name: str = "textured.glb") -> Path:
    """A unit quad (facing +Z) in a GLB with a solid-colour 8x8 base-colour texture ``rgb``."""
    vertices = np.array([[-0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.5, 0.5, 0.0], [-0.5, 0.5, 0.0]])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    uv = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    image = Image.fromarray(np.full((8, 8, 3), rgb, np.uint8))
    material = trimesh.visual.material.PBRMaterial(baseColorTexture=image, baseColorFactor=[255] * 4)
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    mesh.visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    path = Path(directory) / name
    mesh.export(path)
    return path


def write_marker_glb(directory: Path, name: str = "marker.glb") -> Path:
    """An asymmetric scene: a grey body box at the origin plus a red marker cube at +X and a green one
    at +Y, as separate scene nodes placed by node transforms (so flattening is exercised too)."""
    scene = trimesh.Scene()
    body = box((0.6, 0.6, 0.6))
    body.visual.face_colors = (200, 200, 200, 255)
    scene.add_geometry(body, node_name="body")
    markers = (("plus_x", (255, 0, 0, 255), (0.7, 0, 0)), ("plus_y", (0, 255, 0, 255), (0, 0.7, 0)))
    for node, colour, offset in markers:
        cube = box((0.3, 0.3, 0.3))
        cube.visual.face_colors = colour
        transform = np.eye(4)
        transform[:3, 3] = offset
        scene.add_geometry(cube, node_name=node, transform=transform)
    path = Path(directory) / name
    scene.export(path)
    return path


def write_subdivided_sphere(directory: Path, faces: int = 100_000, name: str = "sphere.ply") -> Path:
    """An icosphere with about ``faces`` faces (20 * 4^k), perturbed so it is not perfectly round."""
    level = max(0, int(round(np.log(faces / 20) / np.log(4))))
    mesh = trimesh.creation.icosphere(subdivisions=level)
    rng = np.random.default_rng(0)
    mesh.vertices *= 1.0 + 0.05 * rng.standard_normal((len(mesh.vertices), 1))
    path = Path(directory) / name
    mesh.export(path)
    return path


def write_broken_assets(directory: Path) -> dict[str, Path]:
    """One file per failure kind, keyed by the :class:`mme3dr.assets.mesh.MeshFailure` value it must raise."""
    d = Path(directory)
    out: dict[str, Path] = {"missing_file": d / "does_not_exist.glb"}
    out["empty_file"] = d / "empty.obj"
    out["empty_file"].write_bytes(b"")
    out["unsupported_format"] = d / "model.fbx"
    out["unsupported_format"].write_bytes(b"Kaydara FBX Binary  \x00")
    out["corrupt_file"] = d / "corrupt.glb"
    good = box().export(file_type="glb")
    out["corrupt_file"].write_bytes(good[: len(good) // 2])  # a truncated GLB
    out["point_cloud_only"] = d / "points.ply"
    trimesh.PointCloud(np.random.default_rng(0).random((50, 3))).export(out["point_cloud_only"])
    out["no_triangles"] = d / "no_faces.off"  # a mesh format declaring 3 vertices and 0 faces
    out["no_triangles"].write_text("OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n")
    out["non_finite_coordinates"] = d / "nan.obj"
    out["non_finite_coordinates"].write_text("v 0 0 0\nv 1 0 0\nv nan 1 0\nf 1 2 3\n")
    out["zero_extent"] = d / "degenerate.obj"
    out["zero_extent"].write_text("v 0.3 0.3 0.3\nv 0.3 0.3 0.3\nv 0.3 0.3 0.3\nf 1 2 3\n")
    out["too_many_faces"] = d / "dense.ply"  # paired with a small max_faces by the caller
    trimesh.creation.icosphere(subdivisions=2).export(out["too_many_faces"])
    out["unsupported_feature"] = d / "emissive.gltf"  # emission: the protocol shading cannot show it
    out["unsupported_feature"].write_text(json.dumps({
        "asset": {"version": "2.0"}, "materials": [{"emissiveFactor": [1.0, 0.5, 0.0]}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "material": 0}]}],
        "nodes": [{"mesh": 0}], "scenes": [{"nodes": [0]}],
        "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3"}],
        "bufferViews": [{"buffer": 0, "byteLength": 36}],
        "buffers": [{"byteLength": 36, "uri": "data:application/octet-stream;base64,"
                     + base64.b64encode(np.eye(3, dtype=np.float32).tobytes()).decode()}]}))
    out["asset_refused"] = d / "outside.obj"  # its MTL lies outside the OBJ's folder
    out["asset_refused"].write_text("mtllib ../elsewhere.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    out["image_too_large"] = huge_texture_obj(d)
    return out


def huge_texture_obj(directory: Path, side: int = 13_000) -> Path:
    """An OBJ whose texture's PNG header declares ``side`` x ``side`` pixels (a 1-row IDAT: ~60 bytes on
    disk; decoding it would need side² x 4 bytes)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\0" * 7)) + chunk(b"IEND", b""))
    d = Path(directory)
    (d / "huge.png").write_bytes(png)
    (d / "huge.mtl").write_text("newmtl m\nmap_Kd huge.png\n")
    path = d / "huge.obj"
    path.write_text("mtllib huge.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nusemtl m\n"
                    "f 1/1 2/2 3/3\n")
    return path


TOO_MANY_FACES_LIMIT = 100  # the dense.ply above has 320 faces


def write_quad_obj(directory: Path, name: str = "quad.obj", size: float = 1.0) -> Path:
    """A square of side ``size`` in the z = 0 plane facing +Z (normals +Z), no material: 0.8 grey."""
    h = size / 2.0
    path = Path(directory) / name
    path.write_text(
        f"v {-h} {-h} 0\nv {h} {-h} 0\nv {h} {h} 0\nv {-h} {h} 0\n"
        "vn 0 0 1\nf 1//1 2//1 3//1\nf 1//1 3//1 4//1\n"
    )
    return path


def write_vertex_coloured_quad_ply(directory: Path, rgba=(255, 0, 0, 255), name: str = "rq.ply") -> Path:
    """The +Z-facing square of :func:`write_quad_obj` with every vertex coloured ``rgba``."""
    vertices = np.array([[-0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.5, 0.5, 0.0], [-0.5, 0.5, 0.0]])
    mesh = trimesh.Trimesh(vertices, [[0, 1, 2], [0, 2, 3]], process=False)
    mesh.visual.vertex_colors = np.tile(np.array(rgba, np.uint8), (4, 1))
    path = Path(directory) / name
    mesh.export(path)
    return path


def obj_with_subfolder_texture(directory: Path, name: str = "demo-000", map_options: str = "") -> Path:
    """One textured triangle: ``<name>.obj`` + ``<name>.mtl`` whose ``map_Kd`` (with ``map_options``,
    e.g. ``"-s 1 1 1"``) names ``tex/red.png``, a 4x4 (200, 30, 30) PNG in a sub-folder."""
    from gltf_factory import png_bytes

    (directory / "tex").mkdir(parents=True, exist_ok=True)
    (directory / "tex" / "red.png").write_bytes(png_bytes(np.full((4, 4, 3), (200, 30, 30), np.uint8)))
    map_kd = " ".join(filter(None, ["map_Kd", map_options, "tex/red.png"]))
    (directory / f"{name}.mtl").write_text(f"newmtl skin\nKd 1 1 1\n{map_kd}\n")
    (directory / f"{name}.obj").write_text(f"mtllib {name}.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\n"
                                           "vt 0 1\nusemtl skin\nf 1/1 2/2 3/3\n")
    return directory / f"{name}.obj"
