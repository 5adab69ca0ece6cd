"""A small glTF 2.0 writer for tests: build exactly the JSON and bytes a case needs (no trimesh).

trimesh's exporter cannot write most of what the loader must honour (COLOR_0 next to a material,
normalized/quantized accessors, KHR_texture_transform, Draco, sparse accessors, skins), so the test
fixtures are written here from the specification.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import numpy as np
from PIL import Image

FLOAT, UBYTE, USHORT, UINT, BYTE, SHORT = 5126, 5121, 5123, 5125, 5120, 5122
_DTYPES = {FLOAT: np.float32, UBYTE: np.uint8, USHORT: np.uint16, UINT: np.uint32, BYTE: np.int8,
           SHORT: np.int16}
_TYPES = {1: "SCALAR", 2: "VEC2", 3: "VEC3", 4: "VEC4", 16: "MAT4"}


def png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    (Image.fromarray(array, mode) if mode else Image.fromarray(array)).save(buf, format="PNG")
    return buf.getvalue()


def box_arrays(size=1.0):
    """A cube of side ``size``: 24 vertices (4 per face), outward normals, counter-clockwise faces seen
    from outside, glTF UVs (0, 0) = the image's top-left as seen from outside with +Y up (the +Y/-Y
    faces: image top towards -Z/+Z)."""
    h = size / 2.0
    faces_def = [  # (normal, right, up)
        ((0, 0, 1), (1, 0, 0), (0, 1, 0)), ((0, 0, -1), (-1, 0, 0), (0, 1, 0)),
        ((1, 0, 0), (0, 0, -1), (0, 1, 0)), ((-1, 0, 0), (0, 0, 1), (0, 1, 0)),
        ((0, 1, 0), (1, 0, 0), (0, 0, -1)), ((0, -1, 0), (1, 0, 0), (0, 0, 1)),
    ]
    pos, nor, uv, idx = [], [], [], []
    for k, (n, r, u) in enumerate(faces_def):
        n, r, u = (np.array(a, np.float64) for a in (n, r, u))
        for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            pos.append(h * (n + su * r + sv * u))
            nor.append(n)
            uv.append(((su + 1) / 2, (1 - sv) / 2))
        b = 4 * k
        idx += [b, b + 1, b + 2, b, b + 2, b + 3]
    return (np.array(pos, np.float32), np.array(nor, np.float32), np.array(uv, np.float32),
            np.array(idx, np.uint32))


class GltfBuilder:
    """Accumulates a glTF document and its binary buffer; ``write_glb`` / ``write_gltf`` save it."""

    def __init__(self) -> None:
        self.doc: dict = {"asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": []}]}
        self.bin = bytearray()

    def _add(self, key: str, item: dict) -> int:
        self.doc.setdefault(key, []).append(item)
        return len(self.doc[key]) - 1

    def use(self, name: str, required: bool = False) -> None:
        used = self.doc.setdefault("extensionsUsed", [])
        if name not in used:
            used.append(name)
        if required:
            self.doc.setdefault("extensionsRequired", []).append(name)

    def view(self, data: bytes, stride: int | None = None) -> int:
        while len(self.bin) % 4:
            self.bin.append(0)
        spec = {"buffer": 0, "byteOffset": len(self.bin), "byteLength": len(data)}
        if stride:
            spec["byteStride"] = stride
        self.bin += data
        return self._add("bufferViews", spec)

    def accessor(self, array, component=FLOAT, normalized: bool = False, **extra) -> int:
        arr = np.asarray(array)
        arr = arr.reshape(len(arr), -1) if arr.ndim > 1 else arr.reshape(-1, 1)
        data = np.ascontiguousarray(arr.astype(_DTYPES[component]))
        spec = {"bufferView": self.view(data.tobytes()), "componentType": component, "count": len(arr),
                "type": _TYPES[arr.shape[1]], **extra}
        if normalized:
            spec["normalized"] = True
        if arr.shape[1] == 3 and component == FLOAT:
            spec["min"], spec["max"] = arr.min(0).tolist(), arr.max(0).tolist()
        return self._add("accessors", spec)

    def image(self, png: bytes, mime: str = "image/png") -> int:
        return self._add("images", {"bufferView": self.view(png), "mimeType": mime})

    def texture(self, image: int, **sampler) -> int:
        spec = {"source": image}
        if sampler:
            spec["sampler"] = self._add("samplers", sampler)
        return self._add("textures", spec)

    def material(self, **spec) -> int:
        return self._add("materials", spec)

    def mesh(self, *primitives: dict, **extra) -> int:
        return self._add("meshes", {"primitives": list(primitives), **extra})

    def box_primitive(self, material: int | None = None, uv: bool = True, colors=None, **attrs) -> dict:
        pos, nor, tex, idx = box_arrays()
        prim = {"attributes": {"POSITION": self.accessor(pos), "NORMAL": self.accessor(nor), **attrs},
                "indices": self.accessor(idx, UINT)}
        if uv:
            prim["attributes"]["TEXCOORD_0"] = self.accessor(tex)
        if colors is not None:
            prim["attributes"]["COLOR_0"] = colors
        if material is not None:
            prim["material"] = material
        return prim

    def node(self, root: bool = True, **spec) -> int:
        index = self._add("nodes", spec)
        if root:
            self.doc["scenes"][0]["nodes"].append(index)
        return index

    def glb_bytes(self) -> bytes:
        doc = dict(self.doc)
        if self.bin:
            doc["buffers"] = [{"byteLength": len(self.bin)}]
        text = json.dumps(doc).encode()
        text += b" " * (-len(text) % 4)
        binary = bytes(self.bin) + b"\0" * (-len(self.bin) % 4)
        chunks = struct.pack("<II", len(text), 0x4E4F534A) + text
        if binary:
            chunks += struct.pack("<II", len(binary), 0x004E4942) + binary
        return struct.pack("<III", 0x46546C67, 2, 12 + len(chunks)) + chunks

    def write_glb(self, path: Path) -> Path:
        Path(path).write_bytes(self.glb_bytes())
        return Path(path)

    def write_gltf(self, path: Path, bin_name: str = "scene.bin", image_dir: str | None = None) -> Path:
        """A .gltf with an external .bin; with ``image_dir``, every image moves out into that sub-folder."""
        path = Path(path)
        doc = json.loads(json.dumps(self.doc))
        if image_dir is not None:
            (path.parent / image_dir).mkdir(parents=True, exist_ok=True)
            for i, image in enumerate(doc.get("images", [])):
                view = doc["bufferViews"][image.pop("bufferView")]
                name = f"{image_dir}/image{i}.png"
                start = view["byteOffset"]
                (path.parent / name).write_bytes(bytes(self.bin[start:start + view["byteLength"]]))
                image["uri"] = name
                image.pop("mimeType", None)
        doc["buffers"] = [{"byteLength": len(self.bin), "uri": bin_name}]
        (path.parent / bin_name).write_bytes(bytes(self.bin))
        path.write_text(json.dumps(doc))
        return path


def textured_box(tmp: Path, rgba: np.ndarray, name: str = "box.glb", png: bytes | None = None,
                 material_extra: dict | None = None, texture_info_extra: dict | None = None,
                 sampler: dict | None = None) -> Path:
    """A unit box whose base-colour texture is ``rgba`` (any shape PIL accepts) or ``png`` bytes."""
    b = GltfBuilder()
    tex = b.texture(b.image(png if png is not None else png_bytes(rgba)), **(sampler or {}))
    info = {"index": tex, **(texture_info_extra or {})}
    mat = b.material(pbrMetallicRoughness={"baseColorTexture": info}, **(material_extra or {}))
    b.node(mesh=b.mesh(b.box_primitive(mat)))
    return b.write_glb(tmp / name)
