"""Issue 26, kind 2 (loader side): every hostile asset ends in one typed failure naming what is wrong,
never an untyped exception (which would be a ``render_error``), a scrambled mesh, or gigabytes of memory."""

from __future__ import annotations

import base64
import copy
import json
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from gltf_factory import FLOAT, UINT, GltfBuilder, box_arrays, png_bytes
from mesh_factory import huge_texture_obj

from mme3dr.assets.closure import asset_closure
from mme3dr.assets.mesh import MeshError, MeshFailure, load_mesh
from mme3dr.assets.store import AssetStore


def _fails(path: Path, reason: MeshFailure, match: str = "") -> MeshError:
    with pytest.raises(MeshError) as info:
        load_mesh(path)
    assert info.value.reason is reason, info.value
    assert match in info.value.detail
    return info.value


def _box_doc() -> dict:
    """A box glTF (embedded buffer as a data URI): its JSON document, to be broken by each test."""
    b = GltfBuilder()
    b.node(mesh=b.mesh(b.box_primitive(b.material(pbrMetallicRoughness={"baseColorFactor": [1, 0, 0, 1]}))))
    doc = json.loads(json.dumps(b.doc))
    payload = base64.b64encode(bytes(b.bin)).decode()
    doc["buffers"] = [{"byteLength": len(b.bin), "uri": "data:application/octet-stream;base64," + payload}]
    return doc


def _write(tmp_path: Path, doc: dict, name: str = "x.gltf") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def test_the_box_document_loads(tmp_path):
    assert load_mesh(_write(tmp_path, _box_doc())).n_faces == 12


def test_200000_nested_arrays_in_extras_are_corrupt_not_a_recursion_error(tmp_path):
    path = tmp_path / "deep.gltf"
    text = json.dumps(_box_doc())
    path.write_text(text[:-1] + ', "extras": ' + "[" * 200_000 + "]" * 200_000 + "}")
    assert [n for n, _ in asset_closure(path)] == ["deep.gltf"]  # the closure does not raise
    AssetStore(tmp_path / "store").put(path)  # nor does storing it
    _fails(path, MeshFailure.corrupt_file, "nested too deeply")


@pytest.mark.parametrize("stride", [-12, 0, 4, 11, "12", 12.5, True])
def test_a_byte_stride_smaller_than_the_element_or_not_an_integer_is_corrupt(tmp_path, stride):
    doc = _box_doc()
    pos = doc["meshes"][0]["primitives"][0]["attributes"]["POSITION"]
    doc["bufferViews"][doc["accessors"][pos]["bufferView"]]["byteStride"] = stride
    _fails(_write(tmp_path, doc), MeshFailure.corrupt_file)


def test_a_byte_stride_as_large_as_the_element_loads(tmp_path):
    doc = _box_doc()
    pos = doc["meshes"][0]["primitives"][0]["attributes"]["POSITION"]
    doc["bufferViews"][doc["accessors"][pos]["bufferView"]]["byteStride"] = 12
    assert load_mesh(_write(tmp_path, doc)).n_faces == 12


def _set(path: tuple, value):
    def mutate(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return mutate


# A string where a number belongs, an object where a list belongs, and the like (glTF 2.0 schema types).
MALFORMED = {
    "count as string": _set(("accessors", 0, "count"), "24"),
    "count as float": _set(("accessors", 0, "count"), 24.0),
    "componentType as string": _set(("accessors", 0, "componentType"), "5126"),
    "type as number": _set(("accessors", 0, "type"), 3),
    "accessor byteOffset as string": _set(("accessors", 0, "byteOffset"), "0"),
    "view byteOffset as string": _set(("bufferViews", 0, "byteOffset"), "0"),
    "view byteLength as float": _set(("bufferViews", 0, "byteLength"), 288.0),
    "buffer byteLength as string": _set(("buffers", 0, "byteLength"), "10"),
    "buffer uri as number": _set(("buffers", 0, "uri"), 7),
    "nodes as object": _set(("nodes",), {"0": {"mesh": 0}}),
    "scenes[0].nodes as number": _set(("scenes", 0, "nodes"), 0),
    "scene as string": _set(("scene",), "0"),
    "primitives as object": _set(("meshes", 0, "primitives"), {"a": 1}),
    "attributes as list": _set(("meshes", 0, "primitives", 0, "attributes"), [0, 1]),
    "POSITION as string": _set(("meshes", 0, "primitives", 0, "attributes", "POSITION"), "0"),
    "indices as list": _set(("meshes", 0, "primitives", 0, "indices"), [3]),
    "mode as string": _set(("meshes", 0, "primitives", 0, "mode"), "4"),
    "mode 7": _set(("meshes", 0, "primitives", 0, "mode"), 7),
    "node extensions as string": _set(("nodes", 0, "extensions"), "EXT_mesh_gpu_instancing"),
    "node matrix as string": _set(("nodes", 0, "matrix"), "identity"),
    "node matrix of 3 numbers": _set(("nodes", 0, "matrix"), [1, 0, 0]),
    "node translation as object": _set(("nodes", 0, "translation"), {"x": 1}),
    "node children as number": _set(("nodes", 0, "children"), 3),
    "node mesh as string": _set(("nodes", 0, "mesh"), "0"),
    "asset as string": _set(("asset",), "2.0"),
    "extensionsRequired as string": _set(("extensionsRequired",), "KHR_materials_unlit"),
    "material as string": _set(("meshes", 0, "primitives", 0, "material"), "0"),
    "baseColorFactor as string": _set(("materials", 0, "pbrMetallicRoughness", "baseColorFactor"), "red"),
    "pbrMetallicRoughness as list": _set(("materials", 0, "pbrMetallicRoughness"), [1, 0, 0, 1]),
    "alphaCutoff as string": _set(("materials", 0, "alphaCutoff"), "half"),
    "emissiveFactor as number": _set(("materials", 0, "emissiveFactor"), 1),
    "sparse as list": _set(("accessors", 0, "sparse"), [1]),
    "targets as object": _set(("meshes", 0, "primitives", 0, "targets"), {"POSITION": 0}),
    "weights as string": _set(("meshes", 0, "weights"), "1"),
}


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_malformed_json_types_are_corrupt_file_not_render_error(tmp_path, case):
    doc = _box_doc()
    MALFORMED[case](doc)
    with pytest.raises(MeshError) as info:
        load_mesh(_write(tmp_path, doc))
    assert info.value.reason is MeshFailure.corrupt_file, info.value


def test_huge_declared_counts_are_refused_before_any_allocation(tmp_path):
    for count in (2**62, 10**9):
        doc = _box_doc()
        doc["accessors"][0]["count"] = count  # with its bufferView: needs more bytes than it holds
        _fails(_write(tmp_path, doc), MeshFailure.corrupt_file)
        doc = _box_doc()
        doc["accessors"][0].pop("bufferView")  # zeros of that count: refused, not allocated
        doc["accessors"][0]["count"] = count
        _fails(_write(tmp_path, doc), MeshFailure.corrupt_file)


def test_accessor_offset_past_its_view_is_corrupt(tmp_path):
    doc = _box_doc()
    doc["accessors"][0]["byteOffset"] = 2**40
    _fails(_write(tmp_path, doc), MeshFailure.corrupt_file, "needs")
    doc["accessors"][0]["byteOffset"] = -4
    _fails(_write(tmp_path, doc), MeshFailure.corrupt_file, "byteOffset")


def _sparse_box(tmp_path: Path, index: int, count: int = 1, component=UINT) -> Path:
    b = GltfBuilder()
    prim = b.box_primitive()
    pos = prim["attributes"]["POSITION"]
    ids = b.view(np.array([index], {UINT: np.uint32, FLOAT: np.float32}[component]).tobytes())
    vals = b.view(np.array([[9.0, 9.0, 9.0]], np.float32).tobytes())
    b.doc["accessors"][pos]["sparse"] = {"count": count,
                                         "indices": {"bufferView": ids, "componentType": component},
                                         "values": {"bufferView": vals}}
    b.node(mesh=b.mesh(prim))
    return b.write_glb(tmp_path / "sparse.glb")


def test_sparse_accessors_out_of_range_are_corrupt(tmp_path):
    assert load_mesh(_sparse_box(tmp_path, 3)).n_faces == 12  # in range: fine
    _fails(_sparse_box(tmp_path, 24), MeshFailure.corrupt_file, "sparse index 24")
    _fails(_sparse_box(tmp_path, 3, count=2), MeshFailure.corrupt_file, "reach past")
    _fails(_sparse_box(tmp_path, 3, count=-1), MeshFailure.corrupt_file, "sparse")
    _fails(_sparse_box(tmp_path, 3, component=FLOAT), MeshFailure.corrupt_file, "sparse")


def test_nan_and_inf_positions_are_non_finite(tmp_path):
    for bad in (np.nan, np.inf, -np.inf):
        b = GltfBuilder()
        pos, nor, uv, idx = box_arrays()
        pos[5, 1] = bad
        b.node(mesh=b.mesh({"attributes": {"POSITION": b.accessor(pos)}, "indices": b.accessor(idx, UINT)}))
        _fails(b.write_glb(tmp_path / "nan.glb"), MeshFailure.non_finite_coordinates)


def test_degenerate_index_buffers_have_nothing_with_area(tmp_path):
    pos, _, _, idx = box_arrays()
    for indices, reason in ((np.zeros(36, np.uint32), MeshFailure.zero_extent),  # one vertex: no size
                            (np.array([0, 1, 1] * 12, np.uint32), MeshFailure.no_triangles)):
        b = GltfBuilder()
        prim = {"attributes": {"POSITION": b.accessor(pos)}, "indices": b.accessor(indices, UINT)}
        b.node(mesh=b.mesh(prim))
        _fails(b.write_glb(tmp_path / "degenerate.glb"), reason)
    collinear = tmp_path / "line.obj"
    collinear.write_text("v 0 0 0\nv 1 1 1\nv 2 2 2\nf 1 2 3\n")
    _fails(collinear, MeshFailure.no_triangles, "degenerate")


def _modes_model(tmp_path: Path, modes) -> Path:
    """Like the Khronos MeshPrimitiveModes sample: one primitive per topology mode, side by side."""
    b = GltfBuilder()
    prims = []
    for i, mode in enumerate(modes):
        square = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32) + [2.0 * i, 0, 0]
        idx = {0: [0, 1, 2, 3], 1: [0, 1, 1, 2, 2, 3, 3, 0], 2: [0, 1, 2, 3], 3: [0, 1, 2, 3, 0],
               4: [0, 1, 2, 0, 2, 3], 5: [0, 1, 3, 2], 6: [0, 1, 2, 3]}[mode]
        prims.append({"attributes": {"POSITION": b.accessor(square)},
                      "indices": b.accessor(np.array(idx), UINT), "mode": mode})
    b.node(mesh=b.mesh(*prims))
    return b.write_glb(tmp_path / "modes.glb")


def test_points_and_lines_are_left_out_with_a_note(tmp_path):
    mesh = load_mesh(_modes_model(tmp_path, range(7)))
    assert len(mesh.parts) == 3 and mesh.n_faces == 6  # TRIANGLES, TRIANGLE_STRIP, TRIANGLE_FAN
    assert mesh.notes == ["left out 1 LINES, 1 LINE_LOOP, 1 LINE_STRIP, 1 POINTS primitive(s): the protocol "
                          "renders surfaces (triangles) only"]


def test_nothing_with_area_left_is_refused(tmp_path):
    _fails(_modes_model(tmp_path, [1, 2, 3]), MeshFailure.no_triangles, "LINE_LOOP")
    _fails(_modes_model(tmp_path, [0, 1]), MeshFailure.no_triangles, "POINTS")
    _fails(_modes_model(tmp_path, [0]), MeshFailure.point_cloud_only)


def _huge_png(side: int) -> bytes:
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 7)) + chunk(b"IEND", b""))


def test_an_image_declaring_13000_squared_pixels_is_refused_before_decoding(tmp_path):
    t0 = time.perf_counter()
    _fails(huge_texture_obj(tmp_path), MeshFailure.image_too_large, "13,000 x 13,000")
    b = GltfBuilder()
    tex = b.texture(b.image(_huge_png(13_000)))
    mat = b.material(pbrMetallicRoughness={"baseColorTexture": {"index": tex}})
    b.node(mesh=b.mesh(b.box_primitive(mat)))
    _fails(b.write_glb(tmp_path / "huge.glb"), MeshFailure.image_too_large, "13,000 x 13,000")
    assert time.perf_counter() - t0 < 5  # nothing of the 676 MB was decoded


def test_an_image_at_the_cap_is_not_refused_by_its_size(tmp_path):
    from mme3dr.assets.materials import MAX_IMAGE_PIXELS, ImageTooLarge, decode_image

    with pytest.raises(ImageTooLarge):
        decode_image(_huge_png(8193), "x")
    assert decode_image(png_bytes(np.zeros((8, 8, 3), np.uint8)), "x").shape == (8, 8, 4)
    assert MAX_IMAGE_PIXELS == 8192 * 8192


def test_a_bad_data_uri_and_a_lying_glb_are_corrupt(tmp_path):
    doc = _box_doc()
    doc["buffers"][0]["uri"] = "data:application/octet-stream;base64,@@@not base64"
    _fails(_write(tmp_path, doc), MeshFailure.corrupt_file)
    b = GltfBuilder()
    b.node(mesh=b.mesh(b.box_primitive()))
    data = bytearray(b.glb_bytes())
    struct.pack_into("<I", data, 12, 2**31)  # the JSON chunk claims 2 GB
    (tmp_path / "lying.glb").write_bytes(bytes(data))
    _fails(tmp_path / "lying.glb", MeshFailure.corrupt_file, "past the end")


def test_a_ply_header_lying_about_its_counts_is_refused(tmp_path):
    body = struct.pack("<3f", 0, 0, 0) * 3 + struct.pack("<B3i", 3, 0, 1, 2)
    cases = ((3, 10**12, MeshFailure.too_many_faces), (10**12, 1, MeshFailure.corrupt_file),
             (300, 1, MeshFailure.corrupt_file))
    for vertices, faces, reason in cases:
        header = (f"ply\nformat binary_little_endian 1.0\nelement vertex {vertices}\nproperty float x\n"
                  f"property float y\nproperty float z\nelement face {faces}\n"
                  "property list uchar int vertex_indices\nend_header\n").encode()
        path = tmp_path / "lying.ply"
        path.write_bytes(header + body)
        err = _fails(path, reason)
        assert err.detail


def test_a_deep_copy_of_the_malformed_table_leaves_the_box_intact():
    # The mutations above act on fresh documents: guard against a shared, already-broken fixture.
    doc = _box_doc()
    before = copy.deepcopy(doc)
    MALFORMED["count as string"](copy.deepcopy(doc))
    assert doc == before


def test_draco_data_decoding_to_more_faces_than_declared_is_bounded(tmp_path):
    """A Draco payload whose accessors declare one triangle but which decodes to 320: the declared count
    passes the face limit, the decoded faces are checked against it too."""
    DracoPy = pytest.importorskip("DracoPy")
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=2)  # 320 faces
    b = GltfBuilder()
    view = b.view(DracoPy.encode(np.asarray(sphere.vertices), np.asarray(sphere.faces), preserve_order=True))
    pos_acc = b._add("accessors", {"componentType": FLOAT, "count": 3, "type": "VEC3"})
    idx_acc = b._add("accessors", {"componentType": UINT, "count": 3, "type": "SCALAR"})  # "one triangle"
    prim = {"attributes": {"POSITION": pos_acc}, "indices": idx_acc,
            "extensions": {"KHR_draco_mesh_compression": {"bufferView": view, "attributes": {"POSITION": 0}}}}
    b.use("KHR_draco_mesh_compression", required=True)
    b.node(mesh=b.mesh(prim))
    path = b.write_glb(tmp_path / "bomb.glb")
    with pytest.raises(MeshError) as info:
        load_mesh(path, max_faces=100)
    assert info.value.reason is MeshFailure.too_many_faces
    assert "Draco data decodes to 320" in info.value.detail


def _obj_with_texture(d: Path, rgb: np.ndarray, name: str) -> Path:
    (d / f"{name}.png").write_bytes(png_bytes(rgb))
    (d / f"{name}.mtl").write_text(f"newmtl m\nmap_Kd {name}.png\n")
    (d / f"{name}.obj").write_text(f"mtllib {name}.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\n"
                                   "usemtl m\nf 1/1 2/2 3/3\n")
    return d / f"{name}.obj"


def test_a_texture_side_longer_than_every_renderer_samples_is_refused(tmp_path):
    # 16385 x 1 is far under the pixel cap, but over GL_MAX_TEXTURE_SIZE (16384 on llvmpipe), where the
    # driver samples it as black: refused by name on every machine instead.
    from mme3dr.assets.materials import MAX_IMAGE_SIDE

    assert MAX_IMAGE_SIDE == 16384
    grey = np.full((1, 16385, 3), 128, np.uint8)
    _fails(_obj_with_texture(tmp_path, grey, "wide"), MeshFailure.image_too_large, "16,385 x 1")
    _fails(_obj_with_texture(tmp_path, grey.transpose(1, 0, 2), "tall"), MeshFailure.image_too_large,
           "1 x 16,385")
    mesh = load_mesh(_obj_with_texture(tmp_path, grey[:, :16384], "edge"))
    assert mesh.parts[0].material.texture.rgba.shape == (1, 16384, 4)


def _instanced_box(tmp_path: Path, copies: int, *, mode: int = 4, custom_first: bool = True) -> Path:
    """A box (12 triangles) drawn ``copies`` times by EXT_mesh_gpu_instancing, its TRANSLATION an
    accessor without a buffer view (zeros: a few bytes on disk), after a 1-element custom attribute."""
    pos, _, _, idx = box_arrays()
    b = GltfBuilder()
    b.use("EXT_mesh_gpu_instancing")
    prim = {"attributes": {"POSITION": b.accessor(pos)}, "mode": mode}
    if mode == 4:
        prim["indices"] = b.accessor(idx, UINT)
    mesh = b.mesh(prim)
    custom = b.accessor(np.zeros((1, 1), np.float32))
    shifts = b._add("accessors", {"componentType": FLOAT, "type": "VEC3", "count": copies})
    attrs = {"_ID": custom, "TRANSLATION": shifts} if custom_first else {"TRANSLATION": shifts, "_ID": custom}
    b.node(mesh=mesh, extensions={"EXT_mesh_gpu_instancing": {"attributes": attrs}})
    return b.write_glb(tmp_path / f"inst{copies}_{mode}.glb")


@pytest.mark.parametrize("custom_first", [True, False])
def test_instances_count_towards_the_face_limit_before_anything_is_expanded(tmp_path, custom_first):
    path = _instanced_box(tmp_path, 150_000, custom_first=custom_first)
    assert path.stat().st_size < 2_000
    t0 = time.perf_counter()
    with pytest.raises(MeshError) as info:
        load_mesh(path, max_faces=1_000_000)
    assert info.value.reason is MeshFailure.too_many_faces and "1,800,000 faces" in info.value.detail
    assert time.perf_counter() - t0 < 3  # refused from the declared counts, not after expanding


def test_instances_of_a_mesh_without_triangles_are_still_counted(tmp_path):
    with pytest.raises(MeshError) as info:
        load_mesh(_instanced_box(tmp_path, 3_000_000, mode=0))  # POINTS: no face, 3 M copies
    assert info.value.reason is MeshFailure.too_many_faces and "instances" in info.value.detail


def test_many_nodes_sharing_one_mesh_count_once_each(tmp_path):
    b = GltfBuilder()
    mesh = b.mesh(b.box_primitive())
    for i in range(100):
        b.node(mesh=mesh, translation=[float(i), 0.0, 0.0])
    with pytest.raises(MeshError) as info:
        load_mesh(b.write_glb(tmp_path / "shared.glb"), max_faces=1_199)
    assert info.value.reason is MeshFailure.too_many_faces and "1,200 faces" in info.value.detail
    assert load_mesh(tmp_path / "shared.glb", max_faces=1_200).n_faces == 1_200
