"""Issue 12's failing inputs, each built here, rendered and checked for colour, coverage or silhouette."""

from __future__ import annotations

import numpy as np
import pytest
from gltf_factory import FLOAT, UBYTE, GltfBuilder, box_arrays, png_bytes, textured_box
from render_checks import centre, front_rig, render


@pytest.mark.parametrize("channels", ["RGB", "RGBA"])
def test_odd_width_texture_renders_its_colour_the_same_every_time(tmp_path, channels):
    texel = (200, 30, 30, 255)[: len(channels)]
    path = textured_box(tmp_path, np.full((37, 101, len(channels)), texel, np.uint8))
    renders = [render(path) for _ in range(3)]
    # Face-on, the protocol shading shows the base colour exactly (AMBIENT + LIGHT = 1).
    np.testing.assert_allclose(centre(renders[0])[:3], (200, 30, 30), atol=1.0)
    covered = renders[0][..., 3] == 255
    assert np.abs(renders[0][covered, :3].astype(int) - (200, 30, 30)).max(axis=1).mean() < 30
    assert all((r == renders[0]).all() for r in renders[1:])


def test_vertex_colour_multiplies_a_white_material(tmp_path):
    b = GltfBuilder()
    n = len(box_arrays()[0])
    red = b.accessor(np.tile([255, 0, 0, 255], (n, 1)), UBYTE, normalized=True)
    mat = b.material(pbrMetallicRoughness={"baseColorFactor": [1, 1, 1, 1]})
    b.node(mesh=b.mesh(b.box_primitive(mat, uv=False, colors=red)))
    with_material = render(b.write_glb(tmp_path / "a.glb"))
    np.testing.assert_allclose(centre(with_material)[:3], (255, 0, 0), atol=1.0)
    b2 = GltfBuilder()
    red2 = b2.accessor(np.tile([255, 0, 0, 255], (n, 1)), UBYTE, normalized=True)
    b2.node(mesh=b2.mesh(b2.box_primitive(None, uv=False, colors=red2)))
    np.testing.assert_allclose(centre(render(b2.write_glb(tmp_path / "b.glb")))[:3], (255, 0, 0), atol=1.0)


def test_negative_scale_node_is_lit_like_the_baked_mirror(tmp_path):
    eye = (1.2, 0.8, 1.6)  # an oblique view: the lighting depends on the normals
    b = GltfBuilder()
    mat = b.material(pbrMetallicRoughness={"baseColorFactor": [0.6, 0.6, 0.6, 1]})
    pos, nor, _, idx = box_arrays()
    pos = pos * np.array([1.0, 0.5, 0.3], np.float32) + np.array([0.2, 0, 0], np.float32)  # asymmetric
    prim = {"attributes": {"POSITION": b.accessor(pos), "NORMAL": b.accessor(nor)},
            "indices": b.accessor(idx, 5125), "material": mat}
    b.node(mesh=b.mesh(prim), scale=[-1, 1, 1])
    mirrored = render(b.write_glb(tmp_path / "mirror.glb"), front_rig(eye), normalise=False)
    baked = GltfBuilder()
    mat = baked.material(pbrMetallicRoughness={"baseColorFactor": [0.6, 0.6, 0.6, 1]})
    flip = np.array([-1, 1, 1], np.float32)
    prim = {"attributes": {"POSITION": baked.accessor(pos * flip), "NORMAL": baked.accessor(nor * flip)},
            "indices": baked.accessor(idx.reshape(-1, 3)[:, ::-1].reshape(-1), 5125), "material": mat}
    baked.node(mesh=baked.mesh(prim))
    reference = render(baked.write_glb(tmp_path / "baked.glb"), front_rig(eye), normalise=False)
    assert (reference[..., 3] == 255).mean() > 0.1
    assert np.abs(mirrored.astype(int) - reference.astype(int)).max() <= 1
    lit = reference[reference[..., 3] == 255, 0]
    assert lit.max() > 150  # not ambient only


def _half_transparent_texture():
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., :3] = (40, 200, 40)
    rgba[:, :8, 3] = 255  # left half opaque, right half alpha 0
    return rgba


def test_mask_discards_the_transparent_half(tmp_path):
    path = textured_box(tmp_path, _half_transparent_texture(), material_extra={"alphaMode": "MASK",
                                                                               "alphaCutoff": 0.5})
    img = render(path)
    assert centre(img, dx=-12)[3] == 255 and centre(img, dx=12)[3] == 0
    opaque = textured_box(tmp_path, _half_transparent_texture(), name="opaque.glb")
    assert centre(render(opaque), dx=12)[3] == 255  # OPAQUE ignores the texture's alpha (spec)


def test_blend_shows_what_is_behind_and_keeps_partial_alpha(tmp_path):
    rgba = _half_transparent_texture()
    rgba[:, :8, 3] = 128  # left half of the texture alpha 0.5, right half 0
    single = render(textured_box(tmp_path, rgba, "one.glb", material_extra={"alphaMode": "BLEND"}))
    assert abs(centre(single, dx=-12)[3] - 128) <= 1 and centre(single, dx=12)[3] == 0
    np.testing.assert_allclose(centre(single, dx=-12)[:3], (40, 200, 40), atol=3)  # straight colour
    # Double-sided: the back face (drawn first) shows through; its texture is mirrored left-right as
    # seen from the front, so each side of the image sees one half-transparent layer.
    both = render(textured_box(tmp_path, rgba, "two.glb",
                               material_extra={"alphaMode": "BLEND", "doubleSided": True}))
    assert abs(centre(both, dx=-12)[3] - 128) <= 1 and abs(centre(both, dx=12)[3] - 128) <= 1
    rgba[..., 3] = 128
    full = render(textured_box(tmp_path, rgba, "full.glb",
                               material_extra={"alphaMode": "BLEND", "doubleSided": True}))
    assert abs(centre(full)[3] - 0.75 * 255) <= 2  # 1 - (1 - 0.5)^2 of two layers
    np.testing.assert_allclose(centre(full)[:3], (40, 200, 40), atol=3)


def test_16_bit_texture_is_mid_grey_like_its_8_bit_twin(tmp_path):
    sixteen = textured_box(tmp_path, None, "g16.glb", png=png_bytes(np.full((8, 8), 32896, np.uint16)))
    eight = textured_box(tmp_path, np.full((8, 8), 128, np.uint8), "g8.glb")
    np.testing.assert_allclose(centre(render(sixteen))[:3], (128, 128, 128), atol=1.0)
    assert (render(sixteen) == render(eight)).all()


def test_texture_transform_scale_shows_only_the_left_half(tmp_path):
    rgba = np.zeros((8, 8, 3), np.uint8)
    rgba[:, :4] = (255, 0, 0)
    rgba[:, 4:] = (0, 0, 255)
    plain = render(textured_box(tmp_path, rgba, "plain.glb",
                                sampler={"magFilter": 9728, "minFilter": 9728}))
    assert centre(plain, dx=-12)[0] > 250 and centre(plain, dx=12)[2] > 250
    transform = {"extensions": {"KHR_texture_transform": {"scale": [0.5, 1]}}}
    scaled = render(textured_box(tmp_path, rgba, "scaled.glb", sampler={"magFilter": 9728, "minFilter": 9728},
                                 texture_info_extra=transform))
    face = scaled[8:-8, 8:-8]
    assert (face[..., 3] == 255).all() and (face[..., 2] < 5).all() and (face[..., 0] > 250).all()


def test_draco_glb_renders_like_the_uncompressed_one(tmp_path):
    DracoPy = pytest.importorskip("DracoPy")
    pos, _, _, idx = box_arrays()
    b = GltfBuilder()
    buf = DracoPy.encode(pos.astype(np.float64), idx.reshape(-1, 3), quantization_bits=16,
                         preserve_order=True)
    view = b.view(buf)
    mat = b.material(pbrMetallicRoughness={"baseColorFactor": [0.2, 0.4, 0.9, 1]})
    pos_acc = b._add("accessors", {"componentType": FLOAT, "count": len(pos), "type": "VEC3",
                                   "min": pos.min(0).tolist(), "max": pos.max(0).tolist()})
    idx_acc = b._add("accessors", {"componentType": 5125, "count": len(idx), "type": "SCALAR"})
    prim = {"attributes": {"POSITION": pos_acc}, "indices": idx_acc, "material": mat,
            "extensions": {"KHR_draco_mesh_compression": {"bufferView": view, "attributes": {"POSITION": 0}}}}
    b.use("KHR_draco_mesh_compression", required=True)
    b.node(mesh=b.mesh(prim))
    draco = render(b.write_glb(tmp_path / "draco.glb"), front_rig((1.0, 1.2, 1.5)))
    plain = GltfBuilder()
    mat = plain.material(pbrMetallicRoughness={"baseColorFactor": [0.2, 0.4, 0.9, 1]})
    plain.node(mesh=plain.mesh({"attributes": {"POSITION": plain.accessor(pos)},
                                "indices": plain.accessor(idx, 5125), "material": mat}))
    reference = render(plain.write_glb(tmp_path / "plain.glb"), front_rig((1.0, 1.2, 1.5)))
    assert (reference[..., 3] == 255).mean() > 0.2
    assert np.abs(draco.astype(int) - reference.astype(int)).max() <= 1


def test_vertex_colours_are_as_bright_as_the_same_colour_given_as_factor(tmp_path):
    colour = (190, 60, 120)
    b = GltfBuilder()
    mat = b.material(pbrMetallicRoughness={"baseColorFactor": [*(np.array(colour) / 255.0), 1.0]})
    b.node(mesh=b.mesh(b.box_primitive(mat, uv=False)))
    factor = centre(render(b.write_glb(tmp_path / "factor.glb")))
    b = GltfBuilder()
    n = len(box_arrays()[0])
    cols = b.accessor(np.tile([*(np.array(colour) / 255.0), 1.0], (n, 1)), FLOAT)
    b.node(mesh=b.mesh(b.box_primitive(None, uv=False, colors=cols)))
    vertex = centre(render(b.write_glb(tmp_path / "vertex.glb")))
    np.testing.assert_allclose(vertex, factor, atol=1.0)
    import trimesh

    ply = trimesh.creation.box()
    ply.visual.vertex_colors = np.tile([*colour, 255], (len(ply.vertices), 1)).astype(np.uint8)
    ply.export(tmp_path / "v.ply")
    # PLY colours are sRGB-encoded (decoded to linear first), so face-on they show as written.
    np.testing.assert_allclose(centre(render(tmp_path / "v.ply"))[:3], colour, atol=1.0)
