"""Loader inputs: OBJ/MTL closures and notes, robust text, early face limits, refused features."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from gltf_factory import UINT, GltfBuilder, box_arrays, png_bytes, textured_box
from render_checks import centre, render

from mme3dr.assets.mesh import MeshError, MeshFailure, load_mesh

QUAD_OBJ = "v -0.5 -0.5 0\nv 0.5 -0.5 0\nv 0.5 0.5 0\nv -0.5 0.5 0\nvt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\n"


def write_obj(tmp_path, mtl: str | None, texture: str | None = None, colour=(200, 30, 30), name="quad.obj",
              extra_mtl: str = ""):
    text = ("mtllib quad.mtl\n" if mtl is not None or name.startswith("missing") else "") + QUAD_OBJ
    text += "usemtl skin\nf 1/1 2/2 3/3\nf 1/1 3/3 4/4\n"
    (tmp_path / name).write_text(text)
    if mtl is not None:
        body = f"newmtl skin\nKd 1 1 1\n{extra_mtl}"
        if texture:
            body += f"map_Kd {texture}\n"
            (tmp_path / texture).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / texture).write_bytes(png_bytes(np.full((4, 4, 3), colour, np.uint8)))
        (tmp_path / "quad.mtl").write_text(body)
    return tmp_path / name


def test_obj_with_uvs_and_no_mtl_is_uncoloured_grey_with_a_note(tmp_path):
    path = write_obj(tmp_path, None, name="missing.obj")
    mesh = load_mesh(path)
    assert mesh.parts[0].material.uncoloured and mesh.parts[0].uv is None
    assert any("missing MTL" in note for note in mesh.notes)
    img = render(path)
    np.testing.assert_allclose(centre(img)[:3], (231, 231, 231), atol=1.0)  # sRGB(0.8) = 231.3
    assert (render(path) == img).all()


def test_obj_texture_in_a_sub_folder_and_a_missing_texture(tmp_path):
    path = write_obj(tmp_path, "", texture="tex/red.png")
    np.testing.assert_allclose(centre(render(path))[:3], (200, 30, 30), atol=1.0)
    (tmp_path / "tex" / "red.png").unlink()
    mesh = load_mesh(path)
    assert mesh.parts[0].material.uncoloured and any("missing texture" in n for n in mesh.notes)


def test_obj_mtl_options_and_dissolve(tmp_path):
    path = write_obj(tmp_path, "", texture="red.png", extra_mtl="d 0.5\n")
    mat = load_mesh(path).parts[0].material
    assert mat.alpha_mode == "BLEND" and mat.base_color_factor[3] == pytest.approx(0.5)
    (tmp_path / "quad.mtl").write_text("newmtl skin\nmap_Kd -s 0.5 1 1 -o 0.25 0 0 -clamp on red.png\n")
    mat = load_mesh(path).parts[0].material
    # (u, v) -> (0.5 u + 0.25, 1 - v): scale and offset in OBJ's frame, then OBJ's v-up flipped to glTF's.
    np.testing.assert_allclose(mat.uv_transform @ [1.0, 1.0, 1.0], [0.75, 0.0, 1.0], atol=1e-6)
    assert mat.texture.wrap_s == 33071
    (tmp_path / "quad.mtl").write_text("newmtl skin\nmap_Kd red.png\nmap_d red.png\n")
    with pytest.raises(MeshError, match="unsupported_feature: OBJ map_d"):
        load_mesh(path)


def test_obj_with_a_non_utf8_comment_loads(tmp_path):
    path = tmp_path / "latin.obj"
    comment = b"# modelo dise\xf1ado en Espa\xf1a \xff\xfe\n"
    path.write_bytes(comment + QUAD_OBJ.encode() + b"f 1 2 3\nf 1 3 4\n")
    assert load_mesh(path).n_faces == 2


def test_glb_declaring_a_10_gb_buffer_fails_naming_the_buffer(tmp_path):
    b = GltfBuilder()
    b.node(mesh=b.mesh(b.box_primitive(None)))
    data = bytearray(b.glb_bytes())
    doc_len = struct.unpack_from("<I", data, 12)[0]
    doc = json.loads(bytes(data[20:20 + doc_len]))
    doc["buffers"][0]["byteLength"] = 10_000_000_000
    text = json.dumps(doc).encode()
    text += b" " * (-len(text) % 4)
    rest = bytes(data[20 + doc_len:])
    body = struct.pack("<II", len(text), 0x4E4F534A) + text + rest
    path = tmp_path / "huge.glb"
    path.write_bytes(struct.pack("<III", 0x46546C67, 2, 12 + len(body)) + body)
    with pytest.raises(MeshError) as info:
        load_mesh(path)
    assert info.value.reason is MeshFailure.corrupt_file
    assert "buffer 0 declares byteLength 10,000,000,000" in info.value.detail


def _declared_huge(tmp_path, suffix: str) -> object:
    """A small file whose header declares 3M faces and whose body is cut short: only a reader that
    checks the declared count before parsing says too_many_faces (a parser would say corrupt_file)."""
    n = 3_000_000
    path = tmp_path / f"huge{suffix}"
    if suffix == ".ply":
        path.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 3\nproperty float x\n"
                         b"property float y\nproperty float z\nelement face %d\n"
                         b"property list uchar int vertex_indices\nend_header\n" % n + b"\0" * 64)
    elif suffix == ".off":
        path.write_text(f"OFF\n3 {n} 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")
    elif suffix == ".stl":
        path.write_bytes(b"\0" * 80 + struct.pack("<I", n) + b"\0" * 500)
    elif suffix == ".obj":
        path.write_bytes(b"v 0 0 0\nv 1 0 0\nv 0 1 0\n" + b"f 1 2 3\n" * n)
    else:
        b = GltfBuilder()
        pos = b.accessor(box_arrays()[0])
        idx = b._add("accessors", {"bufferView": b.view(b"\0" * 12), "componentType": UINT,
                                   "count": 3 * n, "type": "SCALAR"})
        b.node(mesh=b.mesh({"attributes": {"POSITION": pos}, "indices": idx}))
        b.write_glb(path)
    return path


@pytest.mark.parametrize("suffix", [".glb", ".ply", ".off", ".stl", ".obj"])
def test_three_million_faces_rejected_from_the_declared_count(tmp_path, suffix):
    path = _declared_huge(tmp_path, suffix)
    with pytest.raises(MeshError) as info:
        load_mesh(path)
    assert info.value.reason is MeshFailure.too_many_faces, info.value
    assert "3,000,000" in info.value.detail


def _glb_with(tmp_path, material=None, required=(), name="x.glb", **texture_ext):
    b = GltfBuilder()
    for ext in required:
        b.use(ext, required=True)
    mat = b.material(**material) if material is not None else None
    b.node(mesh=b.mesh(b.box_primitive(mat)))
    return b.write_glb(tmp_path / name)


@pytest.mark.parametrize("material, required, words", [
    ({"emissiveFactor": [1, 0, 0]}, (), "emission"),
    ({"extensions": {"KHR_materials_transmission": {"transmissionFactor": 1.0}}}, (),
     "KHR_materials_transmission"),
    (None, ("EXT_meshopt_compression",), "EXT_meshopt_compression"),
    (None, ("KHR_texture_basisu",), "KHR_texture_basisu"),
    (None, ("VENDOR_made_up",), "VENDOR_made_up"),
])
def test_unhonoured_features_fail_with_a_reason_naming_them(tmp_path, material, required, words):
    path = _glb_with(tmp_path, material, required)
    with pytest.raises(MeshError) as info:
        load_mesh(path)
    assert info.value.reason is MeshFailure.unsupported_feature
    assert info.value.detail.startswith("unsupported_feature: ") and words in info.value.detail


def test_ktx2_only_texture_and_ply_texture_file_are_refused(tmp_path):
    b = GltfBuilder()
    ktx = b.view(b"\xabKTX 20\xbb\r\n\x1a\n" + b"\0" * 20)
    img = b._add("images", {"bufferView": ktx, "mimeType": "image/ktx2"})
    tex = b._add("textures", {"extensions": {"KHR_texture_basisu": {"source": img}}})
    mat = b.material(pbrMetallicRoughness={"baseColorTexture": {"index": tex}})
    b.node(mesh=b.mesh(b.box_primitive(mat)))
    with pytest.raises(MeshError, match="unsupported_feature: KHR_texture_basisu"):
        load_mesh(b.write_glb(tmp_path / "ktx.glb"))
    ply = tmp_path / "tex.ply"
    ply.write_text("ply\nformat ascii 1.0\ncomment TextureFile t.png\nelement vertex 3\nproperty float x\n"
                   "property float y\nproperty float z\nelement face 1\n"
                   "property list uchar int vertex_indices\n"
                   "end_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")
    with pytest.raises(MeshError, match="unsupported_feature: PLY texture"):
        load_mesh(ply)


def test_gltf_with_bin_and_textures_sub_folder_loads(tmp_path):
    b = GltfBuilder()
    tex = b.texture(b.image(png_bytes(np.full((4, 4, 3), (10, 200, 10), np.uint8))))
    mat = b.material(pbrMetallicRoughness={"baseColorTexture": {"index": tex}})
    b.node(mesh=b.mesh(b.box_primitive(mat)))
    path = b.write_gltf(tmp_path / "scene.gltf", image_dir="textures")
    np.testing.assert_allclose(centre(render(path))[:3], (10, 200, 10), atol=1.0)
    (tmp_path / "textures" / "image0.png").unlink()
    with pytest.raises(MeshError, match="textures/image0.png"):
        load_mesh(path)


def test_png_renamed_obj_and_empty_obj_fail(tmp_path):
    fake = tmp_path / "fake.obj"
    fake.write_bytes(png_bytes(np.zeros((4, 4, 3), np.uint8)))
    with pytest.raises(MeshError) as info:
        load_mesh(fake)
    assert info.value.reason in (MeshFailure.no_triangles, MeshFailure.corrupt_file)
    (tmp_path / "empty.obj").write_bytes(b"")
    with pytest.raises(MeshError, match="empty_file"):
        load_mesh(tmp_path / "empty.obj")


def test_textured_box_factory_is_a_unit_box(tmp_path):
    mesh = load_mesh(textured_box(tmp_path, np.zeros((2, 2, 3), np.uint8)), normalise=False)
    np.testing.assert_allclose(mesh.bounds, [[-0.5] * 3, [0.5] * 3])
    assert mesh.n_faces == 12


def test_missing_mtl_note_reaches_the_render_metadata(tmp_path):
    from mme3dr.render import render_asset
    from mme3dr.render.cameras import reward6

    path = write_obj(tmp_path, None, name="missing.obj")
    outcome = render_asset(path, reward6().with_size(32), tmp_path / "cache")
    assert outcome.ok, outcome
    meta = json.loads((Path(outcome.render_dir) / "render.json").read_text())
    assert any("missing MTL file 'quad.mtl'" in note for note in meta["notes"])
