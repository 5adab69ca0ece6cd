"""glTF 2.0 reader that keeps what the look depends on (trimesh drops several of these).

Reads ``.glb``/``.gltf`` into :class:`MeshPart` lists: the default scene's node tree with every
transform (matrix or TRS; a mirroring transform flips the winding, glTF 2.0 §3.5.2), skins and morph
targets in their rest pose, ``EXT_mesh_gpu_instancing``, triangle lists/strips/fans, normalized and
quantized attributes dequantized (``KHR_mesh_quantization``), Draco (``KHR_draco_mesh_compression``,
via DracoPy), and the material model of :mod:`materials` (base colour factor and texture with its
texCoord set and ``KHR_texture_transform``, ``COLOR_0``, alpha mode and cutoff, ``doubleSided``,
``KHR_materials_unlit``, ``KHR_materials_pbrSpecularGlossiness``' diffuse, ``EXT_texture_webp``).

What would change a surface's colour or coverage and cannot be honoured raises ``unsupported_feature``
naming it (see ``docs/rendering.md`` for the table). Face counts are checked from the accessors' declared
counts before any buffer is read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mme3dr.assets.geometry import MeshError, MeshFailure, MeshPart, flip_winding_if_mirrored
from mme3dr.assets.gltf_data import GltfFile, read_gltf_json
from mme3dr.assets.gltf_materials import MaterialReader

__all__ = ["SUPPORTED_EXTENSIONS", "read_gltf"]

#: Extensions this reader honours (or that cannot change a surface's colour or coverage).
SUPPORTED_EXTENSIONS = frozenset({
    "KHR_draco_mesh_compression", "KHR_mesh_quantization", "KHR_texture_transform", "KHR_materials_unlit",
    "KHR_materials_pbrSpecularGlossiness", "EXT_texture_webp", "EXT_mesh_gpu_instancing",
    "KHR_materials_emissive_strength", "KHR_lights_punctual", "KHR_xmp_json_ld", "KHR_materials_variants",
    "KHR_materials_clearcoat", "KHR_materials_sheen", "KHR_materials_specular", "KHR_materials_ior",
    "KHR_materials_iridescence", "KHR_materials_anisotropy", "KHR_materials_volume",
    "KHR_materials_transmission", "KHR_materials_diffuse_transmission", "KHR_materials_dispersion",
    "KHR_texture_basisu", "KHR_animation_pointer",
})
_TRIANGLE_MODES = {4, 5, 6}
#: glTF 2.0 §3.7.2.1 topology names; the protocol renders surfaces, so 0-3 are left out with a note.
MODE_NAMES = {0: "POINTS", 1: "LINES", 2: "LINE_LOOP", 3: "LINE_STRIP", 4: "TRIANGLES", 5: "TRIANGLE_STRIP",
              6: "TRIANGLE_FAN"}


def _unsupported(path, what: str) -> MeshError:
    return MeshError(MeshFailure.unsupported_feature, path, f"unsupported_feature: {what}")


def _quat_matrix(q) -> np.ndarray:
    x, y, z, w = (float(v) for v in q)
    n = x * x + y * y + z * z + w * w
    s = 2.0 / n if n > 0 else 0.0
    return np.array([
        [1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w)],
        [s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w)],
        [s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y)],
    ])


def _trs(t=(0, 0, 0), r=(0, 0, 0, 1), s=(1, 1, 1)) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = _quat_matrix(r) * np.asarray(s, np.float64)[None, :]
    m[:3, 3] = t
    return m


def _local(node: dict) -> np.ndarray:
    if "matrix" in node:
        return np.asarray(node["matrix"], np.float64).reshape(4, 4).T  # column-major in the file
    return _trs(node.get("translation", (0, 0, 0)), node.get("rotation", (0, 0, 0, 1)),
                node.get("scale", (1, 1, 1)))


def _triangles(indices: np.ndarray, mode: int) -> np.ndarray:
    """(m, 3) triangles of an index list in glTF topology ``mode`` (4 list, 5 strip, 6 fan; §3.7.2.1)."""
    idx = indices.reshape(-1).astype(np.int64)
    if mode == 4:
        return idx[: len(idx) // 3 * 3].reshape(-1, 3)
    if len(idx) < 3:
        return np.zeros((0, 3), np.int64)
    i = np.arange(len(idx) - 2)
    if mode == 5:  # strip: every other triangle reversed to keep the winding
        even = i % 2 == 0
        second = np.where(even, idx[i + 1], idx[i + 2])
        third = np.where(even, idx[i + 2], idx[i + 1])
        return np.stack([idx[i], second, third], 1)
    return np.stack([np.full(len(i), idx[0]), idx[i + 1], idx[i + 2]], 1)  # fan


_INSTANCE_KEYS = ("TRANSLATION", "ROTATION", "SCALE")  # EXT_mesh_gpu_instancing attributes that place copies


class _Reader:
    def __init__(self, gf: GltfFile, max_faces: int) -> None:
        self.gf, self.path, self.doc, self.max_faces = gf, gf.path, gf.doc, max_faces
        self.materials = MaterialReader(gf)
        self.n_points = 0
        self.left_out: dict[str, int] = {}  # topology name -> primitives not drawn
        self._check_extensions()

    def _check_extensions(self) -> None:
        required = self.doc.get("extensionsRequired", []) or []
        if not isinstance(required, list) or not all(isinstance(n, str) for n in required):
            raise MeshError(MeshFailure.corrupt_file, self.path, "extensionsRequired is not a list of names")
        for name in required:
            if name not in SUPPORTED_EXTENSIONS or name == "KHR_texture_basisu":
                raise _unsupported(self.path, f"{name} (required by the file; not implemented here)")

    def scene_nodes(self) -> list[int]:
        scenes = self.gf._list("scenes")
        if scenes:
            index = self.doc.get("scene", 0)
            return list(self.gf.get("scenes", index, "scene").get("nodes", []))
        children = {c for n in self.gf._list("nodes") if isinstance(n, dict) for c in n.get("children", [])}
        return [i for i in range(len(self.gf._list("nodes"))) if i not in children]

    def walk(self) -> list[tuple[int, np.ndarray]]:
        """(node index, global 4x4) of every node reachable from the scene, parents before children."""
        out, stack, seen = [], [(i, np.eye(4)) for i in reversed(self.scene_nodes())], set()
        while stack:
            index, parent = stack.pop()
            if index in seen:
                raise MeshError(MeshFailure.corrupt_file, self.path, f"node {index} is in the tree twice")
            seen.add(index)
            node = self.gf.get("nodes", index, "node")
            world = parent @ _local(node)
            out.append((index, world))
            stack.extend((c, world) for c in reversed(node.get("children", [])))
        return out

    def instance_transforms(self, node: dict, world: np.ndarray) -> list[np.ndarray]:
        ext = node.get("extensions", {}).get("EXT_mesh_gpu_instancing")
        if not ext:
            return [world]
        attrs = ext.get("attributes", {})
        arrays = {k: self.gf.accessor(v) for k, v in attrs.items() if k in _INSTANCE_KEYS}
        n = max((len(a) for a in arrays.values()), default=0)
        t = arrays.get("TRANSLATION", np.zeros((n, 3)))
        r = arrays.get("ROTATION", np.tile([0.0, 0, 0, 1], (n, 1)))
        s = arrays.get("SCALE", np.ones((n, 3)))
        return [world @ _trs(t[i], r[i], s[i]) for i in range(n)]

    def copies(self, node: dict) -> int:
        """How many times :meth:`read` draws a node's mesh, from declared accessor counts only: 1, or
        for ``EXT_mesh_gpu_instancing`` the largest count of its TRANSLATION/ROTATION/SCALE accessors
        (the same attributes :meth:`instance_transforms` expands; custom ``_NAME`` attributes do not
        count, whatever their order)."""
        ext = node.get("extensions", {}).get("EXT_mesh_gpu_instancing")
        if not ext:
            return 1
        attrs = ext.get("attributes", {})
        attrs = attrs if isinstance(attrs, dict) else {}
        counts = [self.gf.get("accessors", v, "accessor").get("count", 0) for k, v in attrs.items()
                  if k in _INSTANCE_KEYS]
        return max((int(c) for c in counts), default=0)

    def count_faces(self, nodes) -> tuple[int, int]:
        """(triangles, mesh copies) the scene will draw, from declared accessor counts only (no buffer
        is read): every node referencing a mesh is one copy of it, times its instances."""
        total = copies_total = 0
        for index, _ in nodes:
            node = self.gf.get("nodes", index, "node")
            if "mesh" not in node:
                continue
            copies = self.copies(node)
            copies_total += copies
            for prim in self.gf.get("meshes", node["mesh"], "mesh").get("primitives", []):
                mode = _mode(self.path, prim)
                if mode not in _TRIANGLE_MODES:
                    continue
                src = prim.get("indices", prim.get("attributes", {}).get("POSITION"))
                count = 0 if src is None else int(self.gf.get("accessors", src, "accessor").get("count", 0))
                total += copies * (count // 3 if mode == 4 else max(count - 2, 0))
        return total, copies_total

    def read(self) -> list[MeshPart]:
        nodes = self.walk()
        n_faces, n_copies = self.count_faces(nodes)
        if n_faces > self.max_faces:
            raise MeshError(MeshFailure.too_many_faces, self.path,
                            f"{n_faces:,} faces declared by the file's accessors (instances and every "
                            f"node using a mesh counted) exceed the limit of {self.max_faces:,}; "
                            "decimate the mesh or raise max_faces")
        if n_copies > self.max_faces:  # instances of a mesh drawing no triangle would still be expanded
            raise MeshError(MeshFailure.too_many_faces, self.path,
                            f"{n_copies:,} mesh instances declared by the file exceed the limit of "
                            f"{self.max_faces:,} (each is expanded before drawing); raise max_faces")
        world_of = dict(nodes)
        parts: list[MeshPart] = []
        for index, world in nodes:
            node = self.gf.get("nodes", index, "node")
            if "mesh" not in node:
                continue
            mesh = self.gf.get("meshes", node["mesh"], "mesh")
            weights = node.get("weights", mesh.get("weights"))
            skin = self._skin_matrices(node, world_of) if "skin" in node else None
            for transform in self.instance_transforms(node, world):
                for prim in mesh.get("primitives", []):
                    part = self._primitive(prim, transform, weights, skin)
                    if part is not None:
                        parts.append(part)
        return parts

    def _skin_matrices(self, node: dict, world_of: dict) -> np.ndarray:
        """(J, 4, 4) joint matrices global(joint) · inverseBind(joint) (glTF 2.0 §3.7.3)."""
        skin = self.gf.get("skins", node["skin"], "skin")
        joints = skin.get("joints", [])
        if "inverseBindMatrices" in skin:
            ibm = self.gf.accessor(skin["inverseBindMatrices"]).reshape(-1, 4, 4).transpose(0, 2, 1)
        else:
            ibm = np.tile(np.eye(4), (len(joints), 1, 1))
        mats = []
        for j, joint in enumerate(joints):
            if joint not in world_of:
                raise _unsupported(self.path, f"skin joint node {joint} is outside the scene")
            mats.append(world_of[joint] @ ibm[j])
        return np.asarray(mats, np.float64)

    def _primitive(self, prim: dict, world: np.ndarray, weights, skin) -> MeshPart | None:
        mode = _mode(self.path, prim)
        if mode not in _TRIANGLE_MODES:
            self.n_points += mode == 0
            self.left_out[MODE_NAMES[mode]] = self.left_out.get(MODE_NAMES[mode], 0) + 1
            return None
        attrs = dict(prim.get("attributes", {}))
        ext = prim.get("extensions", {})
        draco_ext = ext.get("KHR_draco_mesh_compression")
        draco = self.gf.decode_draco(prim, draco_ext) if draco_ext is not None else {}
        if len(draco.get("indices", ())) > self.max_faces:  # the declared counts did not bound it
            raise MeshError(MeshFailure.too_many_faces, self.path,
                            f"Draco data decodes to {len(draco['indices']):,} faces, more than the limit of "
                            f"{self.max_faces:,}")

        def attr(name):
            if name in draco:
                return draco[name].astype(np.float64) if draco[name].dtype.kind == "f" else draco[name]
            return None if name not in attrs else self.gf.accessor(attrs[name])

        if "POSITION" not in attrs:
            raise MeshError(MeshFailure.corrupt_file, self.path, "a primitive has no POSITION attribute")
        positions = np.asarray(attr("POSITION"), np.float64)[:, :3]
        normals = attr("NORMAL")
        normals = None if normals is None else np.asarray(normals, np.float64)[:, :3]
        if "indices" in draco:
            indices = draco["indices"].reshape(-1)
        elif "indices" in prim:
            indices = self.gf.accessor(prim["indices"]).reshape(-1)
        else:
            indices = np.arange(len(positions))
        faces = _triangles(indices, mode)
        positions, normals = self._morph(prim, positions, normals, weights)
        material = self.materials.material(prim.get("material"), has_colors="COLOR_0" in attrs)
        uv = attr(f"TEXCOORD_{material.tex_coord}") if material.texture is not None else None
        if material.texture is not None and uv is None:
            raise MeshError(MeshFailure.corrupt_file, self.path,
                            f"material {material.name!r} samples TEXCOORD_{material.tex_coord}, which "
                            "the primitive lacks")
        colors = attr("COLOR_0")
        if colors is not None:
            colors = np.asarray(colors, np.float32)
            if colors.shape[1] == 3:
                colors = np.concatenate([colors, np.ones((len(colors), 1), np.float32)], axis=1)
        if skin is not None:
            positions, normals = self._skinned(attr, skin, positions, normals)
            world = np.eye(4)  # §3.7.3.3: a skinned mesh ignores its node's transform
        linear = world[:3, :3]
        with np.errstate(all="ignore"):  # NaN/inf positions are reported by validation, not here
            positions = positions @ linear.T + world[:3, 3]
        if normals is not None:
            with np.errstate(all="ignore"):
                normals = normals @ np.linalg.inv(linear)  # inverse transpose, applied to row vectors
        faces = flip_winding_if_mirrored(faces, linear)
        for name, arr in (("NORMAL", normals), ("TEXCOORD", uv), ("COLOR_0", colors)):
            if arr is not None and len(arr) != len(positions):
                raise MeshError(MeshFailure.corrupt_file, self.path,
                                f"{name} has {len(arr)} entries for {len(positions)} positions")
        return MeshPart(positions=positions, faces=faces, material=material,
                        normals=None if normals is None else normals.astype(np.float32),
                        uv=None if uv is None else np.asarray(uv, np.float32)[:, :2], colors=colors)

    def _morph(self, prim, positions, normals, weights):
        """Rest pose of morph targets: base + Σ weight_i · target_i (glTF 2.0 §3.7.2.2)."""
        targets = prim.get("targets", [])
        if not isinstance(targets, list) or not isinstance(weights or [], list):
            raise MeshError(MeshFailure.corrupt_file, self.path, "morph targets or weights are not lists")
        for w, target in zip(weights or [], targets, strict=False):
            if not w:
                continue
            if "POSITION" in target:
                positions = positions + float(w) * self.gf.accessor(target["POSITION"])[:, :3]
            if normals is not None and "NORMAL" in target:
                normals = normals + float(w) * self.gf.accessor(target["NORMAL"])[:, :3]
        return positions, normals

    def _skinned(self, attr, joints_mats, positions, normals):
        """Linear blend skinning in the bind pose's scene: v' = Σ_k w_k · J[j_k] · v (glTF 2.0 §3.7.3)."""
        blend = np.zeros((len(positions), 4, 4))
        for set_index in range(4):
            joints, weights = attr(f"JOINTS_{set_index}"), attr(f"WEIGHTS_{set_index}")
            if joints is None or weights is None:
                break
            joints = np.asarray(joints, np.int64)
            if joints.max(initial=0) >= len(joints_mats):
                raise MeshError(MeshFailure.corrupt_file, self.path, "JOINTS_n index past the skin's joints")
            blend += np.einsum("vk,vkij->vij", np.asarray(weights, np.float64), joints_mats[joints])
        homo = np.concatenate([positions, np.ones((len(positions), 1))], 1)
        positions = np.einsum("vij,vj->vi", blend, homo)[:, :3]
        if normals is not None:
            with np.errstate(all="ignore"):
                normals = np.einsum("vji,vj->vi", np.linalg.inv(blend[:, :3, :3]), normals)
        return positions, normals


def _mode(path, prim: dict) -> int:
    mode = prim.get("mode", 4)
    if not isinstance(mode, int) or isinstance(mode, bool) or mode not in MODE_NAMES:
        raise MeshError(MeshFailure.corrupt_file, path, f"primitive mode {mode!r} is not a glTF topology "
                                                        "(0-6)")
    return mode


def _left_out_note(left_out: dict[str, int]) -> str:
    what = ", ".join(f"{n} {name}" for name, n in sorted(left_out.items()))
    return f"left out {what} primitive(s): the protocol renders surfaces (triangles) only"


def read_gltf(path: Path, data: bytes, max_faces: int) -> tuple[list[MeshPart], int, list[str]]:
    """(parts, number of point primitives, notes) of a glTF 2.0 file's default scene; the notes name the
    POINTS / LINES / LINE_LOOP / LINE_STRIP primitives left out. Raises MeshError: ``no_triangles``
    (or ``point_cloud_only``) when nothing with area remains, ``corrupt_file`` for JSON whose types
    are not the spec's (a string for a number, an object for a list)."""
    doc, binary = read_gltf_json(path, data)
    try:
        reader = _Reader(GltfFile(path, doc, binary), max_faces)
        parts = reader.read()
    except MeshError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError, RecursionError,
            np.linalg.LinAlgError) as exc:
        raise MeshError(MeshFailure.corrupt_file, path,
                        f"inconsistent glTF ({type(exc).__name__}: {exc})") from exc
    notes = [_left_out_note(reader.left_out)] if reader.left_out else []
    if not parts and set(reader.left_out) - {"POINTS"}:
        raise MeshError(MeshFailure.no_triangles, path, f"nothing with area to render: {notes[0]}")
    return parts, reader.n_points, notes
