"""One test per supported glTF feature of the material/geometry table in docs/rendering.md."""

from __future__ import annotations

import io

import numpy as np
import pytest
from gltf_factory import FLOAT, SHORT, UBYTE, UINT, USHORT, GltfBuilder, box_arrays, png_bytes, textured_box
from PIL import Image
from render_checks import RENDER_SIZE, centre, front_rig, render

from mme3dr.assets.mesh import load_mesh

RED_BLUE = np.zeros((8, 8, 3), np.uint8)
RED_BLUE[:, :4] = (255, 0, 0)
RED_BLUE[:, 4:] = (0, 0, 255)
NEAREST = {"magFilter": 9728, "minFilter": 9728}


def _box(b: GltfBuilder, material=None, **attrs):
    b.node(mesh=b.mesh(b.box_primitive(material, **attrs)))


def test_base_colour_factor_times_texture(tmp_path):
    path = textured_box(tmp_path, np.full((4, 4, 3), 255, np.uint8),
                        texture_info_extra={})
    b = GltfBuilder()
    tex = b.texture(b.image(png_bytes(np.full((4, 4, 3), 255, np.uint8))))
    _box(b, b.material(pbrMetallicRoughness={"baseColorTexture": {"index": tex},
                                             "baseColorFactor": [0.5, 0.25, 1.0, 1.0]}))
    img = render(b.write_glb(tmp_path / "f.glb"))
    np.testing.assert_allclose(centre(img)[:3], (188, 137, 255), atol=1.0)  # sRGB(0.5)=188, sRGB(.25)=137
    assert centre(render(path))[0] == 255


def test_second_texture_coordinate_set(tmp_path):
    b = GltfBuilder()
    tex = b.texture(b.image(png_bytes(RED_BLUE)), **NEAREST)
    mat = b.material(pbrMetallicRoughness={"baseColorTexture": {"index": tex, "texCoord": 1}})
    uv1 = np.tile([0.9, 0.5], (24, 1)).astype(np.float32)  # every vertex samples the blue half
    _box(b, mat, TEXCOORD_1=b.accessor(uv1))
    assert centre(render(b.write_glb(tmp_path / "uv1.glb")))[2] > 250


def test_texture_transform_offset_rotation_and_texcoord_override(tmp_path):
    ext = {"KHR_texture_transform": {"offset": [0.5, 0], "scale": [0.5, 1]}}
    img = render(textured_box(tmp_path, RED_BLUE, texture_info_extra={"extensions": ext}, sampler=NEAREST))
    assert centre(img, dx=-12)[2] > 250 and centre(img, dx=12)[2] > 250  # only the blue half
    rot = {"KHR_texture_transform": {"rotation": float(np.pi), "offset": [1, 1]}}  # u -> 1 - u
    img = render(textured_box(tmp_path, RED_BLUE, "r.glb", texture_info_extra={"extensions": rot},
                              sampler=NEAREST))
    assert centre(img, dx=-12)[2] > 250 and centre(img, dx=12)[0] > 250


@pytest.mark.parametrize("wrap, left, right", [(10497, "red", "red"), (33648, "red", "blue"),
                                                (33071, "red", "blue")])
def test_sampler_wrap_modes(tmp_path, wrap, left, right):
    # UVs scaled by 2: u in [0, 2]. Repeat: the red half shows at u 0-0.5 and again at 1-1.5; mirrored:
    # 1-2 is the texture reversed; clamp: everything past 1 is the last (blue) column.
    ext = {"KHR_texture_transform": {"scale": [2, 1]}}
    img = render(textured_box(tmp_path, RED_BLUE, texture_info_extra={"extensions": ext},
                              sampler={**NEAREST, "wrapS": wrap, "wrapT": wrap}))
    colour = {"red": 0, "blue": 2}
    # Face x in [-0.5, 0.5] -> u in [0, 2]; sample at u = 0.2 (x = -0.4) and u = 1.2 (x = 0.1).
    assert centre(img, dx=-26, r=1)[colour[left]] > 250
    assert centre(img, dx=4, r=1)[colour[right]] > 250


def test_unlit_shows_the_base_colour_from_any_angle(tmp_path):
    b = GltfBuilder()
    b.use("KHR_materials_unlit")
    _box(b, b.material(pbrMetallicRoughness={"baseColorFactor": [0.2, 0.6, 0.2, 1]},
                       extensions={"KHR_materials_unlit": {}}))
    img = render(b.write_glb(tmp_path / "u.glb"), front_rig((1.5, 1.0, 1.2)))
    covered = img[..., 3] == 255
    assert np.abs(img[covered, :3].astype(int) - (124, 203, 124)).max() <= 1


def test_quantized_positions_and_normalized_uvs(tmp_path):
    pos, nor, uv, idx = box_arrays()
    b = GltfBuilder()
    b.use("KHR_mesh_quantization", required=True)
    tex = b.texture(b.image(png_bytes(RED_BLUE)), **NEAREST)
    mat = b.material(pbrMetallicRoughness={"baseColorTexture": {"index": tex}})
    prim = {"attributes": {"POSITION": b.accessor(np.round(pos * 2), SHORT),  # int16, not normalized
                           "NORMAL": b.accessor(np.round(nor * 127), 5120, normalized=True),
                           "TEXCOORD_0": b.accessor(np.round(uv * 65535), USHORT, normalized=True)},
            "indices": b.accessor(idx, USHORT), "material": mat}
    b.node(mesh=b.mesh(prim), scale=[0.5, 0.5, 0.5])  # the dequantization scale lives in the node
    path = b.write_glb(tmp_path / "q.glb")
    mesh = load_mesh(path, normalise=False)
    np.testing.assert_allclose(mesh.bounds, [[-0.5] * 3, [0.5] * 3], atol=1e-6)
    img = render(path)
    assert centre(img, dx=-12)[0] > 250 and centre(img, dx=12)[2] > 250


def test_sparse_accessor_overrides_values(tmp_path):
    b = GltfBuilder()
    n = len(box_arrays()[0])
    colours = b.accessor(np.tile([0.0, 0.0, 1.0], (n, 1)), FLOAT)
    acc = b.doc["accessors"][colours]
    red = np.tile([1.0, 0, 0], (4, 1)).astype(np.float32).tobytes()
    acc["sparse"] = {"count": 4, "indices": {"bufferView": b.view(np.arange(4, dtype=np.uint8).tobytes()),
                                             "componentType": UBYTE},
                     "values": {"bufferView": b.view(red)}}
    _box(b, None, uv=False, colors=colours)
    img = render(b.write_glb(tmp_path / "s.glb"))
    assert centre(img)[0] > 250 and centre(img)[2] < 5  # the +Z face (vertices 0-3) turned red


@pytest.mark.parametrize("mode", [5, 6])
def test_triangle_strips_and_fans(tmp_path, mode):
    quad = np.array([[-0.5, -0.5, 0], [0.5, -0.5, 0], [-0.5, 0.5, 0], [0.5, 0.5, 0]], np.float32)
    order = [0, 1, 2, 3] if mode == 5 else [0, 1, 3, 2]
    b = GltfBuilder()
    mat = b.material(pbrMetallicRoughness={"baseColorFactor": [1, 1, 1, 1]})  # single-sided
    b.node(mesh=b.mesh({"attributes": {"POSITION": b.accessor(quad)}, "indices": b.accessor(order, UINT),
                        "mode": mode, "material": mat}))
    path = b.write_glb(tmp_path / "strip.glb")
    assert load_mesh(path).n_faces == 2
    img = render(path)
    assert (img[..., 3] == 255).mean() > 0.4  # both triangles front-facing (counter-clockwise) and drawn


def test_single_sided_material_culls_back_faces(tmp_path):
    quad = np.array([[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, 0.5, 0], [-0.5, 0.5, 0]], np.float32)
    for double, expected in ((False, 0.0), (True, 0.4)):
        b = GltfBuilder()
        mat = b.material(doubleSided=double)
        b.node(mesh=b.mesh({"attributes": {"POSITION": b.accessor(quad)},
                            "indices": b.accessor([0, 1, 2, 0, 2, 3], UINT), "material": mat}))
        back = render(b.write_glb(tmp_path / f"d{double}.glb"), front_rig((0.0, 0.0, -2.0)))
        assert ((back[..., 3] == 255).mean() > 0.4) == bool(expected)
        if double:  # two-sided lighting: the back is lit like a front face (sRGB(1.0) = 255)
            assert centre(back)[0] == 255


def test_morph_target_weights_move_the_geometry(tmp_path):
    pos, nor, _, idx = box_arrays()
    b = GltfBuilder()
    target = b.accessor(np.tile([0.5, 0.0, 0.0], (len(pos), 1)))
    prim = {"attributes": {"POSITION": b.accessor(pos)}, "indices": b.accessor(idx, UINT),
            "targets": [{"POSITION": target}]}
    b.node(mesh=b.mesh(prim, weights=[1.0]))
    mesh = load_mesh(b.write_glb(tmp_path / "m.glb"), normalise=False)
    np.testing.assert_allclose(mesh.bounds, [[0.0, -0.5, -0.5], [1.0, 0.5, 0.5]], atol=1e-6)


def test_gpu_instancing_and_skin_rest_pose(tmp_path):
    pos, _, _, idx = box_arrays()
    b = GltfBuilder()
    b.use("EXT_mesh_gpu_instancing")
    mesh = b.mesh({"attributes": {"POSITION": b.accessor(pos)}, "indices": b.accessor(idx, UINT)})
    shifts = b.accessor(np.array([[0, 0, 0], [3, 0, 0]], np.float32))
    b.node(mesh=mesh, extensions={"EXT_mesh_gpu_instancing": {"attributes": {"TRANSLATION": shifts}}})
    loaded = load_mesh(b.write_glb(tmp_path / "i.glb"), normalise=False)
    assert loaded.n_faces == 24 and loaded.bounds[1][0] == pytest.approx(3.5)
    s = GltfBuilder()
    joint = s.node(root=True, translation=[0.0, 2.0, 0.0])
    ibm = s.accessor(np.eye(4, dtype=np.float32).T.reshape(1, 16))
    s.doc["skins"] = [{"joints": [joint], "inverseBindMatrices": ibm}]
    prim = {"attributes": {"POSITION": s.accessor(pos), "JOINTS_0": s.accessor(np.zeros((24, 4)), UBYTE),
                           "WEIGHTS_0": s.accessor(np.tile([1.0, 0, 0, 0], (24, 1)))},
            "indices": s.accessor(idx, UINT)}
    s.node(mesh=s.mesh(prim), skin=0, translation=[9.0, 0.0, 0.0])  # ignored for a skinned mesh
    skinned = load_mesh(s.write_glb(tmp_path / "skin.glb"), normalise=False)
    np.testing.assert_allclose(skinned.bounds, [[-0.5, 1.5, -0.5], [0.5, 2.5, 0.5]], atol=1e-6)


def test_spec_gloss_diffuse_and_webp_texture(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.full((4, 4, 3), (30, 90, 220), np.uint8)).save(buf, format="WEBP", lossless=True)
    b = GltfBuilder()
    b.use("EXT_texture_webp")
    b.use("KHR_materials_pbrSpecularGlossiness")
    image = b.image(buf.getvalue(), "image/webp")
    tex = b._add("textures", {"extensions": {"EXT_texture_webp": {"source": image}}})
    spec_gloss = {"KHR_materials_pbrSpecularGlossiness": {"diffuseTexture": {"index": tex}}}
    _box(b, b.material(extensions=spec_gloss))
    np.testing.assert_allclose(centre(render(b.write_glb(tmp_path / "w.glb")))[:3], (30, 90, 220), atol=1.0)


def test_gltf_colour_0_vec3_ushort_normalized(tmp_path):
    b = GltfBuilder()
    cols = b.accessor(np.tile([0, 65535, 0], (24, 1)), USHORT, normalized=True)
    _box(b, None, uv=False, colors=cols)
    np.testing.assert_allclose(centre(render(b.write_glb(tmp_path / "c.glb")))[:3], (0, 255, 0), atol=1.0)
    assert RENDER_SIZE == 64
