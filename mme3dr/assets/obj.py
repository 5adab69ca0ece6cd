"""Wavefront OBJ + MTL -> :class:`MeshPart` lists with the protocol material model.

Geometry (positions, polygons triangulated, ``vt``, ``vn``, per-vertex colours ``v x y z r g b``) is
parsed by trimesh, which is handed the MTL text and nothing else (it reads no file); ``mtllib`` and
``map_Kd`` statements are parsed and resolved by :mod:`references`, the parser of the asset's closure,
so every file read is inside the OBJ's folder (a reference leaving it is ``asset_refused``) and texture
names are relative to the MTL file that gives them; materials by this module, so that what the file
says is kept exactly:

- base colour = ``Kd`` (taken as linear, as Blender's importer does) x ``map_Kd`` (sRGB) x vertex
  colour (sRGB-encoded, decoded); ``d`` (or ``Tr`` = 1 - d) below 1 makes the surface BLEND with that
  alpha; ``map_Kd`` options ``-o`` / ``-s`` become the UV transform and ``-clamp on`` clamps;
- OBJ's UV origin is the image's bottom-left (v up), glTF's the top-left: v' = 1 - v is part of the
  UV transform;
- a missing MTL file, an undefined material or a missing texture image leaves those faces uncoloured
  (the protocol's grey) and adds a note to the render's metadata, never trimesh's placeholder texture;
- ``map_d`` (a dissolve texture) is refused as ``unsupported_feature``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mme3dr.assets.geometry import MeshError, MeshFailure, MeshPart
from mme3dr.assets.materials import (
    CLAMP_TO_EDGE,
    ImageTooLarge,
    Material,
    Texture,
    decode_image,
    srgb_to_linear,
)
from mme3dr.assets.references import ClosureError, mtl_materials, obj_mtllibs, parse_map, resolve
from mme3dr.assets.text_formats import decode_text, parse_with_trimesh, scene_geometries, trimesh_normals

__all__ = ["read_obj"]

_FLIP_V = np.array([[1, 0, 0], [0, -1, 1], [0, 0, 1]], np.float32)  # (u, v) -> (u, 1 - v)


def _resolve(obj_path: Path, name: str, referrer: str = "") -> Path:
    """The file a reference names, inside the OBJ's folder (:func:`references.resolve`), else
    ``asset_refused``."""
    try:
        return resolve(obj_path, name, referrer)[1]
    except ClosureError as exc:
        raise MeshError(MeshFailure.asset_refused, obj_path, str(exc)) from exc


class _MtlLibrary:
    """The MTL files an OBJ names, parsed, with notes for everything missing."""

    def __init__(self, path: Path, text: str) -> None:
        self.path, self.notes = path, []
        self.materials: dict[str, dict] = {}
        self.mtl_of: dict[str, str] = {}  # material -> the MTL file defining it (textures are beside it)
        self.served: dict[str, bytes] = {}
        raw_names = [line.strip()[6:].strip() for line in text.splitlines()
                     if line.split(None, 1)[:1] == ["mtllib"]]
        for name in obj_mtllibs(text):
            target = _resolve(path, name)
            if not target.is_file():
                self.notes.append(f"missing MTL file {name!r}: its faces are rendered uncoloured")
                continue
            mtl_text = decode_text(target.read_bytes())
            # trimesh asks for the name as written (quotes and all): serve both spellings, nothing else.
            for key in [name, *(r for r in raw_names if obj_mtllibs(f"mtllib {r}") == [name])]:
                self.served[key] = mtl_text.encode("utf-8")
            for material, spec in mtl_materials(mtl_text).items():
                self.materials[material], self.mtl_of[material] = spec, name
        self._built: dict[str, Material] = {}

    def material(self, name: str | None) -> Material:
        if name not in self.materials:
            if name and self.materials:
                self.notes.append(f"material {name!r} is not defined in the MTL: rendered uncoloured")
            return Material.grey()
        if name not in self._built:
            self._built[name] = self._build(name, self.materials[name])
        return self._built[name]

    def _build(self, name: str, spec: dict) -> Material:
        if "map_d" in spec:
            raise MeshError(MeshFailure.unsupported_feature, self.path,
                            f"unsupported_feature: OBJ map_d (dissolve texture) in material {name!r}")
        kd = [float(v) for v in spec.get("kd", "1 1 1").split()[:3]] if "kd" in spec else [1.0, 1.0, 1.0]
        alpha = 1.0
        if "d" in spec:
            alpha = float(spec["d"].split()[-1])
        elif "tr" in spec:
            alpha = 1.0 - float(spec["tr"].split()[-1])
        mat = Material(base_color_factor=np.array([*kd, alpha], np.float32), name=name,
                       alpha_mode="BLEND" if alpha < 1.0 else "OPAQUE")
        if "map_kd" in spec:
            file_name, options = parse_map(spec["map_kd"])
            target = _resolve(self.path, file_name, referrer=self.mtl_of.get(name, "")) if file_name else None
            if target is None or not target.is_file():
                self.notes.append(f"missing texture {file_name!r} of material {name!r}: rendered uncoloured")
                return Material.grey()
            try:
                rgba = decode_image(target.read_bytes(), file_name)
            except ImageTooLarge as exc:
                raise MeshError(MeshFailure.image_too_large, self.path, str(exc)) from exc
            except ValueError as exc:
                raise MeshError(MeshFailure.corrupt_file, self.path, str(exc)) from exc
            clamp = options.get("-clamp", ["off"]) == ["on"]
            wrap = CLAMP_TO_EDGE if clamp else 10497
            mat.texture = Texture(rgba=rgba, source=file_name, wrap_s=wrap, wrap_t=wrap)
            o = [float(v) for v in options.get("-o", [])] + [0.0, 0.0]
            s = [float(v) for v in options.get("-s", [])] + [1.0, 1.0]
            scale_offset = np.array([[s[0], 0, o[0]], [0, s[1], o[1]], [0, 0, 1]], np.float32)
            mat.uv_transform = (_FLIP_V @ scale_offset).astype(np.float32)
        return mat


def read_obj(path: Path, data: bytes) -> tuple[list[MeshPart], int, list[str]]:
    """(parts, point clouds, notes) of an OBJ file with its MTL files and textures."""
    from trimesh.resolvers import ZipResolver

    text = decode_text(data)
    library = _MtlLibrary(path, text)
    scene = parse_with_trimesh(path, text.encode("utf-8"), "obj", resolver=ZipResolver(dict(library.served)))
    geometries, n_points = scene_geometries(scene)
    parts = []
    for geom, transform in geometries:
        visual_material = getattr(geom.visual, "material", None)
        name = getattr(visual_material, "name", None) if library.materials else None
        material = library.material(name)
        uv = getattr(geom.visual, "uv", None) if material.texture is not None else None
        if material.texture is not None and (uv is None or len(uv) != len(geom.vertices)):
            library.notes.append(f"material {material.name!r} has a texture but its faces have no `vt`: "
                                 "rendered with the texture left out")
            material = Material(base_color_factor=material.base_color_factor, alpha_mode=material.alpha_mode,
                                name=material.name)
            uv = None
        colors = geom.vertex_attributes.get("color")
        if colors is not None and len(colors) == len(geom.vertices):
            rgb = np.asarray(colors, np.float64)[:, :3]
            rgb = rgb / 255.0 if rgb.max(initial=0.0) > 1.0 else rgb
            colors = np.concatenate([srgb_to_linear(rgb), np.ones((len(rgb), 1), np.float32)], axis=1)
            if material.uncoloured:
                material = Material(name=material.name)  # the file gives colour: white x vertex colour
        else:
            colors = None
        positions = np.asarray(geom.vertices, np.float64) @ transform[:3, :3].T + transform[:3, 3]
        parts.append(MeshPart(positions=positions, faces=np.asarray(geom.faces, np.int64).reshape(-1, 3),
                              material=material, normals=trimesh_normals(geom),
                              uv=None if uv is None else np.asarray(uv, np.float32)[:, :2],
                              colors=None if colors is None else colors.astype(np.float32)))
    return parts, n_points, list(dict.fromkeys(library.notes))
