"""glTF 2.0 containers and accessors: GLB/JSON parsing, buffers, typed accessor reads, Draco.

Light module (numpy; DracoPy imported only for a Draco-compressed primitive). Every inconsistency
between what the JSON declares and what the bytes hold (a buffer larger than the file, an accessor
reaching past its view) is a ``corrupt_file`` that names the object and both sizes, checked *before*
any allocation of the declared size (glTF 2.0 §5 "Properties Reference"; GLB layout §4.4).
"""

from __future__ import annotations

import base64
import struct
import urllib.parse
from pathlib import Path

import numpy as np

from mme3dr.assets.geometry import MeshError, MeshFailure
from mme3dr.assets.references import ClosureError, gltf_container, gltf_document, resolve

__all__ = ["GltfFile", "read_gltf_json"]

COMPONENT_DTYPES = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32,
                    5126: np.float32}
#: Elements an accessor without a bufferView may declare (it is allocated as zeros before sparse values
#: are substituted, glTF 2.0 §3.6.2.2): 2**26 (256 MB of VEC4 floats), far above any mesh under max_faces.
MAX_ZERO_ACCESSOR_COUNT = 1 << 26
N_COMPONENTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}


def _corrupt(path, detail: str) -> MeshError:
    return MeshError(MeshFailure.corrupt_file, path, detail)


def read_gltf_json(path: Path, data: bytes) -> tuple[dict, bytes | None]:
    """(JSON document, GLB BIN chunk or None) of a ``.glb``/``.gltf`` file's bytes, parsed by
    :mod:`references` (the parser the asset's closure uses)."""
    if data[:4] == b"glTF" and len(data) >= 12:
        version = struct.unpack_from("<I", data, 4)[0]
        if version == 1:
            raise MeshError(MeshFailure.unsupported_feature, path,
                            "unsupported_feature: GLB version 1 (glTF 1.0; only glTF 2.0 is read)")
        if version != 2:
            raise _corrupt(path, f"GLB header version {version} is not 2 (not a GLB file?)")
    try:
        text, binary = gltf_container(data)
        doc = gltf_document(text)
    except ValueError as exc:
        raise _corrupt(path, str(exc)) from exc
    asset = doc.get("asset", {})
    if not isinstance(asset, dict):
        raise _corrupt(path, f"glTF 'asset' is {type(asset).__name__}, not an object")
    version = str(asset.get("version", "2.0"))
    if not version.startswith("2"):
        raise MeshError(MeshFailure.unsupported_feature, path,
                        f"unsupported_feature: glTF {version} (only glTF 2.0 is read; convert the file)")
    return doc, binary


class GltfFile:
    """One parsed glTF asset: its JSON and lazily loaded buffers, with checked accessor reads."""

    def __init__(self, path: Path, doc: dict, binary: bytes | None) -> None:
        self.path, self.doc, self.binary = path, doc, binary
        self._buffers: dict[int, bytes] = {}

    def _list(self, key: str) -> list:
        value = self.doc.get(key, [])
        return value if isinstance(value, list) else []

    def get(self, key: str, index, what: str | None = None) -> dict:
        items = self._list(key)
        if not isinstance(index, int) or not 0 <= index < len(items) or not isinstance(items[index], dict):
            raise _corrupt(self.path, f"{what or key} index {index!r} does not exist ({len(items)} {key})")
        return items[index]

    def resolve_uri(self, uri: str) -> Path:
        """A relative URI as a path in the file's folder (percent-decoded, RFC 3986), resolved by
        :func:`references.resolve`: one leaving the folder is ``asset_refused``."""
        try:
            return resolve(self.path, urllib.parse.unquote(uri))[1]
        except ClosureError as exc:
            raise MeshError(MeshFailure.asset_refused, self.path, str(exc)) from exc

    def uri_bytes(self, uri: str, what: str) -> bytes:
        """Bytes behind a ``data:`` URI or a relative file URI (missing file -> ``corrupt_file``)."""
        if not isinstance(uri, str):
            raise _corrupt(self.path, f"{what}: uri is {type(uri).__name__}, not a string")
        if uri.startswith("data:"):
            head, _, payload = uri.partition(",")
            try:
                if head.endswith(";base64"):
                    return base64.b64decode(payload)
                return urllib.parse.unquote_to_bytes(payload)
            except ValueError as exc:
                raise _corrupt(self.path, f"{what}: bad data URI ({exc})") from exc
        target = self.resolve_uri(uri)
        if not target.is_file():
            raise _corrupt(self.path, f"{what}: {uri!r} is not beside the file ({target} missing); keep the "
                                      ".gltf with its .bin and images")
        return target.read_bytes()

    def buffer(self, index: int) -> bytes:
        if index in self._buffers:
            return self._buffers[index]
        spec = self.get("buffers", index, "buffer")
        declared = spec.get("byteLength")
        if not _is_int(declared) or declared < 0:
            raise _corrupt(self.path, f"buffer {index} has no valid byteLength ({declared!r})")
        if "uri" in spec:
            data = self.uri_bytes(spec["uri"], f"buffer {index}")
            source = f"its file {spec['uri']!r}" if not spec["uri"].startswith("data:") else "its data URI"
        else:
            data = self.binary if (index == 0 and self.binary is not None) else b""
            source = "the GLB's BIN chunk"
        if declared > len(data):
            raise _corrupt(self.path, f"buffer {index} declares byteLength {declared:,} bytes but {source} "
                                      f"holds {len(data):,}; the file is truncated or its header is wrong")
        self._buffers[index] = data
        return data

    def view_bytes(self, index: int) -> tuple[memoryview, int | None]:
        """(bytes of buffer view ``index``, its byteStride or None)."""
        view = self.get("bufferViews", index, "bufferView")
        if "extensions" in view and "EXT_meshopt_compression" in view["extensions"]:
            raise MeshError(MeshFailure.unsupported_feature, self.path,
                            "unsupported_feature: EXT_meshopt_compression (decompress with gltfpack -noq)")
        data = self.buffer(view.get("buffer", -1))
        start, length = view.get("byteOffset", 0), view.get("byteLength")
        if not _is_int(start) or not _is_int(length) or start < 0 or length < 0 or start + length > len(data):
            raise _corrupt(self.path, f"bufferView {index} (offset {start:,}, length {length!r}) reaches "
                                      "past "
                                      f"its {len(data):,}-byte buffer")
        return memoryview(data)[start:start + length], view.get("byteStride")

    def accessor(self, index: int, *, dequantize: bool = True) -> np.ndarray:
        """Accessor ``index`` as (count, n) array: float32 when ``normalized`` (dequantized, glTF 2.0
        §3.11: int8 max(c/127, -1), uint8 c/255, int16 max(c/32767, -1), uint16 c/65535) or when the
        components are floats, else its integer dtype. Sparse substitution applied (§3.6.2.3)."""
        acc = self.get("accessors", index, "accessor")
        dtype = COMPONENT_DTYPES.get(acc.get("componentType"))
        n = N_COMPONENTS.get(acc.get("type"))
        count = acc.get("count")
        if dtype is None or n is None or not _is_int(count) or count < 0:
            raise _corrupt(self.path, f"accessor {index} has an invalid componentType/type/count")
        if "bufferView" in acc:
            out = self._strided(index, acc, dtype, n, count)
        elif count > MAX_ZERO_ACCESSOR_COUNT:
            raise _corrupt(self.path, f"accessor {index} declares {count:,} elements and no bufferView (more "
                                      f"than {MAX_ZERO_ACCESSOR_COUNT:,}); nothing that large is a mesh")
        else:
            out = np.zeros((count, n), dtype)  # §3.6.2.2: no bufferView means zeros (sparse may fill)
        if "sparse" in acc:
            out = self._sparse(index, acc["sparse"], out, dtype, n)
        if dequantize and acc.get("normalized") and dtype is not np.float32:
            out = _dequantize(out)
        return out

    def _strided(self, index: int, acc: dict, dtype, n: int, count: int) -> np.ndarray:
        raw, stride = self.view_bytes(acc["bufferView"])
        item = np.dtype(dtype).itemsize * n
        if stride is not None and (not _is_int(stride) or stride < item):
            # glTF 2.0 §3.6.2.4: the stride is at least one element (and 4..252); a smaller or negative
            # one would read overlapping or reversed elements: a scrambled mesh, never the intended one.
            raise _corrupt(self.path, f"accessor {index}: bufferView {acc['bufferView']} has byteStride "
                                      f"{stride!r}, smaller than one {acc.get('type')} element "
                                      f"({item} bytes)")
        stride = int(stride or item)
        offset = acc.get("byteOffset", 0)
        if not _is_int(offset) or offset < 0:
            raise _corrupt(self.path, f"accessor {index} has an invalid byteOffset {offset!r}")
        need = offset + (stride * (count - 1) + item if count else 0)
        if need > len(raw):
            raise _corrupt(self.path, f"accessor {index} needs {need:,} bytes of bufferView "
                                      f"{acc['bufferView']}, which holds {len(raw):,}")
        if count == 0:
            return np.zeros((0, n), dtype)
        arr = np.ndarray((count, n), dtype=np.dtype(dtype).newbyteorder("<"), buffer=raw, offset=offset,
                         strides=(stride, np.dtype(dtype).itemsize))
        return np.array(arr, dtype=dtype)  # a native-order copy: the file's bytes stay untouched

    def _sparse(self, index: int, sparse: dict, out: np.ndarray, dtype, n: int) -> np.ndarray:
        k = sparse.get("count", 0)
        idx_spec, val_spec = sparse.get("indices", {}), sparse.get("values", {})
        idx_dtype = COMPONENT_DTYPES.get(idx_spec.get("componentType"))
        if idx_dtype is None or idx_dtype not in (np.uint8, np.uint16, np.uint32) or not _is_int(k) or k < 0:
            raise _corrupt(self.path, f"accessor {index}: invalid sparse block (count {k!r}, indices "
                                      f"componentType {idx_spec.get('componentType')!r})")
        for spec, dt, m, what in ((idx_spec, idx_dtype, 1, "indices"), (val_spec, dtype, n, "values")):
            raw, _ = self.view_bytes(spec.get("bufferView", -1))
            offset = spec.get("byteOffset", 0)
            if not _is_int(offset) or offset < 0 or offset + k * np.dtype(dt).itemsize * m > len(raw):
                raise _corrupt(self.path, f"accessor {index}: sparse {what} reach past their bufferView")
        raw_i, _ = self.view_bytes(idx_spec["bufferView"])
        raw_v, _ = self.view_bytes(val_spec["bufferView"])
        little_i, little_v = np.dtype(idx_dtype).newbyteorder("<"), np.dtype(dtype).newbyteorder("<")
        ids = np.frombuffer(raw_i, little_i, k, int(idx_spec.get("byteOffset", 0)))
        vals = np.frombuffer(raw_v, little_v, k * n, int(val_spec.get("byteOffset", 0)))
        if k and ids.max() >= len(out):
            raise _corrupt(self.path, f"accessor {index}: sparse index {int(ids.max())} >= count {len(out)}")
        out = out.copy()
        out[ids.astype(np.int64)] = vals.reshape(k, n)
        return out

    def decode_draco(self, prim: dict, ext: dict) -> dict[str, np.ndarray]:
        """KHR_draco_mesh_compression: attribute name -> (count, n) array, plus ``"indices"`` (m, 3)."""
        try:
            import DracoPy
        except ImportError as exc:  # a declared dependency of the assets extra; say which
            raise MeshError(MeshFailure.unsupported_feature, self.path,
                            "unsupported_feature: KHR_draco_mesh_compression needs DracoPy "
                            f"(pip install DracoPy; {exc})") from exc
        raw, _ = self.view_bytes(ext.get("bufferView", -1))
        try:
            mesh = DracoPy.decode(bytes(raw))
        except Exception as exc:
            raise _corrupt(self.path, f"Draco data could not be decoded ({type(exc).__name__}: {exc})") \
                from exc
        out: dict[str, np.ndarray] = {}
        if mesh.faces is not None and len(mesh.faces):
            out["indices"] = np.asarray(mesh.faces, np.int64).reshape(-1, 3)
        for name, uid in ext.get("attributes", {}).items():
            attr = mesh.get_attribute_by_unique_id(int(uid))
            if attr is None:
                raise _corrupt(self.path, f"Draco attribute {name} (id {uid}) is not in the compressed data")
            data = np.asarray(attr["data"])
            data = data.reshape(len(data), -1)
            acc = self.get("accessors", prim.get("attributes", {}).get(name, -1), f"{name} accessor")
            if data.dtype.kind in "iu" and (acc.get("normalized") or name.startswith("COLOR")):
                data = _dequantize(data)
            out[name] = data
        return out


def _is_int(value) -> bool:
    """A JSON integer (``True``/``False`` are not, though Python counts them as ints)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _dequantize(a: np.ndarray) -> np.ndarray:
    """glTF 2.0 §3.11 normalized integer -> float32 (int: max(c / max, -1); uint: c / max)."""
    info = np.iinfo(a.dtype)
    f = a.astype(np.float32) / np.float32(info.max)
    return np.maximum(f, -1.0) if info.min < 0 else f
