"""mme3dr.assets.mesh: loading, scene flattening, canonical frame, typed failure reasons."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import trimesh
from mesh_factory import (
    TOO_MANY_FACES_LIMIT,
    box,
    write_broken_assets,
    write_marker_glb,
    write_textured_glb,
    write_uncoloured_obj,
    write_vertex_coloured_ply,
)

from mme3dr.assets.mesh import UNCOLOURED_BASE_COLOR, MeshError, MeshFailure, file_sha256, load_mesh


@pytest.mark.parametrize("kind", [k.value for k in MeshFailure])
def test_each_failure_kind_is_reported_with_its_reason(tmp_path, kind):
    broken = write_broken_assets(tmp_path)
    with pytest.raises(MeshError) as info:
        load_mesh(broken[kind], max_faces=TOO_MANY_FACES_LIMIT)
    assert info.value.reason is MeshFailure(kind)
    assert info.value.path == str(broken[kind])
    assert info.value.detail


def test_truncated_binary_ply_is_corrupt_not_a_crash(tmp_path):
    data = trimesh.creation.icosphere(subdivisions=2).export(file_type="ply")
    path = tmp_path / "cut.ply"
    path.write_bytes(data[: len(data) - 700])
    with pytest.raises(MeshError) as info:
        load_mesh(path)
    assert info.value.reason in (MeshFailure.corrupt_file, MeshFailure.no_triangles)


def test_normalisation_centres_and_scales_longest_side_to_one(tmp_path):
    path = tmp_path / "offset.stl"
    box(extents=(4.0, 2.0, 1.0), centre=(10.0, -3.0, 7.0)).export(path)
    mesh = load_mesh(path)
    np.testing.assert_allclose(mesh.bounds, [[-0.5, -0.25, -0.125], [0.5, 0.25, 0.125]], atol=1e-6)
    pos = np.concatenate([p.positions for p in mesh.parts])
    np.testing.assert_allclose(pos.min(0), [-0.5, -0.25, -0.125], atol=1e-6)
    assert pos.dtype == np.float32 and mesh.n_faces == 12


def test_normalise_false_keeps_the_source_frame(tmp_path):
    path = tmp_path / "offset.off"
    box(extents=(4.0, 2.0, 1.0), centre=(10.0, -3.0, 7.0)).export(path)
    mesh = load_mesh(path, normalise=False)
    np.testing.assert_allclose(mesh.bounds, [[8.0, -4.0, 6.5], [12.0, -2.0, 7.5]], atol=1e-5)


def test_z_up_source_is_rotated_into_y_up(tmp_path):
    # A tall box along +Z (Blender "up"), with its top half marked by an extra box at +Z.
    path = tmp_path / "zup.obj"
    trimesh.util.concatenate([box((0.2, 0.2, 1.0)), box((0.1, 0.1, 0.1), centre=(0, 0, 0.6))]).export(path)
    mesh = load_mesh(path, up_axis="z")
    extent = mesh.bounds[1] - mesh.bounds[0]
    assert np.argmax(extent) == 1  # tallest along Y now
    pos = np.concatenate([p.positions for p in mesh.parts])
    # (x, y, z) -> (x, z, -y): the marker that was at +Z is now at +Y, i.e. at the top.
    assert pos[:, 1].max() == pytest.approx(0.5, abs=1e-6)
    assert np.isclose(pos[:, 1], 0.5).sum() >= 4


def test_scene_nodes_are_flattened_with_their_transforms(tmp_path):
    mesh = load_mesh(write_marker_glb(tmp_path), normalise=False)
    assert len(mesh.parts) == 3 and mesh.n_faces == 36
    red = next(p for p in mesh.parts if tuple(p.colors[0][:3]) == (1.0, 0.0, 0.0))
    green = next(p for p in mesh.parts if tuple(p.colors[0][:3]) == (0.0, 1.0, 0.0))
    np.testing.assert_allclose(red.positions.mean(0), [0.7, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(green.positions.mean(0), [0.0, 0.7, 0.0], atol=1e-6)


def test_colour_sources_are_kept(tmp_path):
    grey = load_mesh(write_uncoloured_obj(tmp_path)).parts[0]
    assert grey.material.texture is None and grey.colors is None and grey.material.uncoloured
    np.testing.assert_allclose(grey.material.base_color_factor, UNCOLOURED_BASE_COLOR)
    red = load_mesh(write_vertex_coloured_ply(tmp_path)).parts[0]
    # PLY colours are sRGB-encoded: decoded to linear (255 -> 1.0); the base colour is white, not grey.
    assert (red.colors[:, :3] == (1.0, 0.0, 0.0)).all() and not red.material.uncoloured
    np.testing.assert_allclose(red.material.base_color_factor, 1.0)
    tex = load_mesh(write_textured_glb(tmp_path, rgb=(0, 0, 255))).parts[0]
    rgba = tex.material.texture.rgba
    assert rgba.shape == (8, 8, 4) and (rgba[..., :3] == (0, 0, 255)).all() and (rgba[..., 3] == 255).all()
    assert tex.uv.shape == (4, 2) and tex.uv.dtype == np.float32


def test_normals_are_unit_length_and_finite(tmp_path):
    from gltf_factory import GltfBuilder, box_arrays

    pos, nor, _, idx = box_arrays()
    nor = nor * 3.0
    nor[0] = 0.0  # a zero normal (degenerate in the file) must still shade finitely
    b = GltfBuilder()
    b.node(mesh=b.mesh({"attributes": {"POSITION": b.accessor(pos), "NORMAL": b.accessor(nor)},
                        "indices": b.accessor(idx, 5125)}))
    n = load_mesh(b.write_glb(tmp_path / "n.glb")).parts[0].normals
    assert n.shape == (24, 3) and np.isfinite(n).all()
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-5)
    # A file without normals keeps none: the renderer shades its triangles flat (glTF 2.0 §3.7.2.1).
    assert load_mesh(write_vertex_coloured_ply(tmp_path)).parts[0].normals is None


def test_file_sha256_matches_hashlib(tmp_path):
    path = write_uncoloured_obj(tmp_path)
    assert file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert load_mesh(path).source_sha256 == file_sha256(path)


def test_mesh_module_stays_light():
    import subprocess
    import sys

    code = (
        "import sys, mme3dr.assets.mesh, mme3dr.render.cameras; "
        "assert 'OpenGL' not in sys.modules and 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.shared
def test_real_rose_loads_z_up(trellis_rose):
    ply = next((trellis_rose / "renders").glob("*/mesh.ply"))
    mesh = load_mesh(ply, up_axis="z")
    assert mesh.n_faces == 11652
    extent = mesh.bounds[1] - mesh.bounds[0]
    assert np.argmax(extent) == 1 and extent.max() == pytest.approx(1.0)


def test_rotated_scene_node_moves_points_and_normals(tmp_path):
    from gltf_factory import GltfBuilder

    quad = np.array([[-0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.5, 0.5, 0.0], [-0.5, 0.5, 0.0]], np.float32)
    b = GltfBuilder()
    prim = {"attributes": {"POSITION": b.accessor(quad), "NORMAL": b.accessor(np.tile([0, 0, 1.0], (4, 1)))},
            "indices": b.accessor([0, 1, 2, 0, 2, 3], 5125)}
    # +90 deg about +Y (quaternion (0, sin 45, 0, cos 45)) maps +Z to +X, then a shift by +2 along X.
    b.node(mesh=b.mesh(prim), rotation=[0.0, float(np.sin(np.pi / 4)), 0.0, float(np.cos(np.pi / 4))],
           translation=[2.0, 0.0, 0.0])
    part = load_mesh(b.write_gltf(tmp_path / "rot.gltf"), normalise=False).parts[0]
    np.testing.assert_allclose(part.positions[:, 0], 2.0, atol=1e-6)
    np.testing.assert_allclose(part.normals, np.tile([1.0, 0.0, 0.0], (4, 1)), atol=1e-6)
