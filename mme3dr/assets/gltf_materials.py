"""glTF 2.0 materials, textures and images -> :class:`Material` (glTF 2.0 §3.8-3.9, KHR extensions).

Honoured: ``pbrMetallicRoughness.baseColorFactor`` / ``baseColorTexture`` (its ``texCoord`` and
``KHR_texture_transform``), samplers (filters, wrap modes), ``alphaMode`` / ``alphaCutoff``,
``doubleSided``, ``KHR_materials_unlit``, the diffuse of ``KHR_materials_pbrSpecularGlossiness``,
``EXT_texture_webp`` and ``KHR_texture_basisu`` when the texture has a PNG/JPEG fallback.
Refused (``unsupported_feature``): emission (``emissiveFactor`` > 0 or an emissive texture),
``KHR_materials_transmission`` / ``KHR_materials_diffuse_transmission`` with a non-zero factor (they
change coverage), a KTX2-only texture. Ignored by design (the protocol shades every surface as a
diffuse dielectric under one headlight): metallic, roughness, normal/occlusion maps, clearcoat, sheen,
specular, IOR, iridescence, anisotropy, volume (without transmission), variants (the default material
is drawn).
"""

from __future__ import annotations

import numpy as np

from mme3dr.assets.geometry import MeshError, MeshFailure
from mme3dr.assets.gltf_data import GltfFile
from mme3dr.assets.materials import ImageTooLarge, Material, Texture, decode_image, uv_transform_matrix

__all__ = ["MaterialReader"]


def _unsupported(path, what: str) -> MeshError:
    return MeshError(MeshFailure.unsupported_feature, path, f"unsupported_feature: {what}")


class MaterialReader:
    """Builds (and caches) the :class:`Material` of each glTF material index of one file."""

    def __init__(self, gf: GltfFile) -> None:
        self.gf, self.path = gf, gf.path
        self._materials: dict = {}
        self._images: dict[int, np.ndarray] = {}

    def material(self, index, *, has_colors: bool) -> Material:
        """The material of a primitive; ``index`` None is glTF's default material (§3.9.6), drawn
        protocol grey unless the primitive has ``COLOR_0`` (then white x COLOR_0, as the spec says)."""
        key = (index, has_colors if index is None else None)
        if key not in self._materials:
            self._materials[key] = self._build(index, has_colors)
        return self._materials[key]

    def _build(self, index, has_colors: bool) -> Material:
        if index is None:
            mat = Material(double_sided=False) if has_colors else Material.grey()
            mat.double_sided = False  # the spec's default material is single-sided
            return mat
        spec = self.gf.get("materials", index, "material")
        name = spec.get("name") or f"material {index}"
        ext = spec.get("extensions", {}) or {}
        pbr = spec.get("pbrMetallicRoughness", {}) or {}
        factor = pbr.get("baseColorFactor", [1.0, 1.0, 1.0, 1.0])
        tex_info = pbr.get("baseColorTexture")
        if "KHR_materials_pbrSpecularGlossiness" in ext:  # archived, still common in Sketchfab exports
            sg = ext["KHR_materials_pbrSpecularGlossiness"]
            factor = sg.get("diffuseFactor", [1.0, 1.0, 1.0, 1.0])
            tex_info = sg.get("diffuseTexture")
        self._refuse_unhonoured(spec, ext, name)
        mat = Material(
            base_color_factor=np.asarray(factor, np.float32),
            alpha_mode=str(spec.get("alphaMode", "OPAQUE")),
            alpha_cutoff=float(spec.get("alphaCutoff", 0.5)),
            double_sided=bool(spec.get("doubleSided", False)),
            unlit="KHR_materials_unlit" in ext,
            name=name,
        ) if spec.get("alphaMode", "OPAQUE") in ("OPAQUE", "MASK", "BLEND") else None
        if mat is None:
            raise MeshError(MeshFailure.corrupt_file, self.path,
                            f"{name}: alphaMode {spec.get('alphaMode')!r}")
        if tex_info is not None:
            self._attach_texture(mat, tex_info, name)
        return mat

    def _refuse_unhonoured(self, spec: dict, ext: dict, name: str) -> None:
        emissive = spec.get("emissiveFactor", [0.0, 0.0, 0.0])
        if any(float(v) > 0 for v in emissive):
            raise _unsupported(self.path, f"emission ({name}: emissiveFactor {list(emissive)}; the protocol "
                                          "shading has no emissive term)")
        for key, field in (("KHR_materials_transmission", "transmissionFactor"),
                           ("KHR_materials_diffuse_transmission", "diffuseTransmissionFactor")):
            if key in ext and (float(ext[key].get(field, 0.0)) > 0 or f"{field[:-6]}Texture" in ext[key]):
                raise _unsupported(self.path, f"{key} ({name}: see-through surfaces are not rendered)")

    def _attach_texture(self, mat: Material, info: dict, name: str) -> None:
        tex = self.gf.get("textures", info.get("index"), "texture")
        mat.tex_coord = int(info.get("texCoord", 0))
        transform = (info.get("extensions", {}) or {}).get("KHR_texture_transform")
        if transform is not None:
            mat.uv_transform = uv_transform_matrix(transform.get("offset", (0.0, 0.0)),
                                                   float(transform.get("rotation", 0.0)),
                                                   transform.get("scale", (1.0, 1.0)))
            mat.tex_coord = int(transform.get("texCoord", mat.tex_coord))
        source = self._texture_source(tex, name)
        sampler = self.gf.get("samplers", tex["sampler"], "sampler") if "sampler" in tex else {}
        mat.texture = Texture(
            rgba=self._image(source),
            mag_filter=int(sampler.get("magFilter", 9729)),
            min_filter=int(sampler.get("minFilter", 9987)),
            wrap_s=int(sampler.get("wrapS", 10497)),
            wrap_t=int(sampler.get("wrapT", 10497)),
            source=f"image {source}",
        )

    def _texture_source(self, tex: dict, name: str) -> int:
        ext = tex.get("extensions", {}) or {}
        for key in ("EXT_texture_webp", "EXT_texture_avif"):
            if key in ext and "source" in ext[key]:
                return int(ext[key]["source"])
        if "source" in tex:
            return int(tex["source"])
        if "KHR_texture_basisu" in ext:
            raise _unsupported(self.path,
                               f"KHR_texture_basisu ({name}: KTX2 texture with no PNG/JPEG fallback)")
        raise MeshError(MeshFailure.corrupt_file, self.path, f"{name}: texture has no image source")

    def _image(self, index: int) -> np.ndarray:
        if index not in self._images:
            spec = self.gf.get("images", index, "image")
            if "uri" in spec:
                data, where = self.gf.uri_bytes(spec["uri"], f"image {index}"), spec["uri"][:80]
            elif "bufferView" in spec:
                data, where = bytes(self.gf.view_bytes(spec["bufferView"])[0]), f"image {index} (embedded)"
            else:
                raise MeshError(MeshFailure.corrupt_file, self.path,
                                f"image {index} has neither uri nor bufferView")
            if spec.get("mimeType") == "image/ktx2" or data[:12] == b"\xabKTX 20\xbb\r\n\x1a\n":
                raise _unsupported(self.path,
                                   f"KTX2 image {index} (KHR_texture_basisu); re-export with PNG/JPEG")
            try:
                self._images[index] = decode_image(data, where)
            except ImageTooLarge as exc:
                raise MeshError(MeshFailure.image_too_large, self.path, str(exc)) from exc
            except ValueError as exc:
                raise MeshError(MeshFailure.corrupt_file, self.path, str(exc)) from exc
        return self._images[index]
