"""Build the pyrender scene of one canonical mesh with protocol v1 materials and lights.

Called by :class:`mme3dr.render.Renderer` with the pyrender module it imported for its backend (this
module imports no OpenGL itself). One scene per asset: the camera and the headlight are moved per
view with ``scene.set_pose``; nothing else is rebuilt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mme3dr.render.cameras import Rig
from pyrender_baseline.mesh import CanonicalMesh, MeshPart

LIGHT_INTENSITY = 3.0  # design.md §3
AMBIENT = 0.3  # design.md §3
PLAIN_WHITE = (1.0, 1.0, 1.0, 1.0)
#: "protocol": the asset's own materials (design.md §3); "plain_white": the authors' script's override.
SHADINGS = ("protocol", "plain_white")


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear (IEC 61966-2-1, the curve pyrender's shader applies to
    textures), so vertex colours from PLY/OBJ are treated like texture texels."""
    c = np.asarray(c, np.float32)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)


def _material(pyrender, part: MeshPart, shading: str):
    """Dielectric, opaque, double-sided PBR material carrying the part's base colour and texture."""
    if shading == "plain_white":
        base, texture = np.array(PLAIN_WHITE, np.float32), None
    else:
        base = np.array(part.base_color, np.float32).copy()
        base[3] = 1.0  # opaque: alpha in the render is coverage
        texture = None
        if part.texture is not None and part.uv is not None:
            rgb = np.ascontiguousarray(part.texture[..., :3])
            texture = pyrender.Texture(
                source=rgb,
                source_channels="RGB",
                sampler=pyrender.Sampler(
                    magFilter=pyrender.constants.GLTF.LINEAR,
                    minFilter=pyrender.constants.GLTF.LINEAR_MIPMAP_LINEAR,
                ),
            )
    return pyrender.MetallicRoughnessMaterial(
        baseColorFactor=base,
        baseColorTexture=texture,
        metallicFactor=0.0,
        roughnessFactor=1.0,
        # Double-sided by geometry, not by the flag (see _two_sided): each copy is culled normally.
        doubleSided=False,
        alphaMode="OPAQUE",
    )


def _two_sided(arrays: list[np.ndarray | None], normals: np.ndarray | None, faces: np.ndarray):
    """Every face twice: as given, and with reversed winding and negated normals.

    design.md §3 renders faces double-sided. pyrender's ``doubleSided`` only disables culling: a back
    face is then lit with its front normal, facing away from the headlight (ambient only, so meshes with
    inconsistent winding come out patchy), and the closed mesh's hidden back half is shaded too.
    Drawing a reversed copy with culling on gives two-sided lighting like Blender's, and on the 100k-face
    benchmark mesh costs 10-30% more CPU than single-sided against ~55% for the flag
    (docs/benchmarks.md).
    """
    n = None
    for a in arrays:
        if a is not None:
            n = len(a)
            break
    doubled = [None if a is None else np.concatenate([a, a]) for a in arrays]
    twin_normals = None if normals is None else np.concatenate([normals, -normals])
    twin_faces = np.concatenate([faces, faces[:, ::-1] + n]).astype(np.uint32)
    return doubled, twin_normals, twin_faces


def _primitive(pyrender, part: MeshPart, shading: str):
    color_0 = None
    if shading == "protocol" and part.vertex_colors is not None:
        rgb = part.vertex_colors[:, :3].astype(np.float32) / 255.0
        # pyrender multiplies the lit colour by COLOR_0 in linear space: glTF COLOR_0 is linear by
        # spec; PLY/OBJ colours are sRGB-encoded, so decode them first.
        rgb = rgb if part.vertex_colors_linear else srgb_to_linear(rgb)
        color_0 = np.concatenate([rgb, np.ones((len(rgb), 1), np.float32)], axis=1)
    use_texture = shading == "protocol" and part.texture is not None and part.uv is not None
    uv = part.uv if use_texture else None
    arrays, normals, faces = _two_sided([part.positions, uv, color_0], part.normals, part.faces)
    positions, uv, color_0 = arrays
    return pyrender.Primitive(
        positions=positions,
        normals=normals,
        texcoord_0=uv,
        color_0=color_0,
        indices=faces,
        material=_material(pyrender, part, shading),
        mode=pyrender.constants.GLTF.TRIANGLES,
    )


def _depth_range(rig: Rig, mesh: CanonicalMesh) -> tuple[float, float]:
    """Near/far planes that enclose the asset from every camera (tight planes keep depth precise)."""
    eyes = rig.c2w[:, :3, 3]
    centre = mesh.bounds.mean(axis=0)
    radius = float(np.linalg.norm(mesh.bounds[1] - mesh.bounds[0])) / 2.0
    dist = np.linalg.norm(eyes - centre, axis=1)
    znear = max(1e-3, float(dist.min() - radius) * 0.5)
    zfar = float(dist.max() + radius) * 2.0 + 1.0
    return znear, zfar


def build_scene(pyrender, mesh: CanonicalMesh, rig: Rig, *, shading: str = "protocol"):
    """(scene, camera_node, light_node) for ``mesh`` seen through ``rig``'s intrinsics."""
    if shading not in SHADINGS:
        raise ValueError(f"unknown shading {shading!r}; choose 'protocol' or 'plain_white'")
    scene = pyrender.Scene(bg_color=[0.0, 0.0, 0.0, 0.0], ambient_light=[AMBIENT] * 3)
    primitives = [_primitive(pyrender, part, shading) for part in mesh.parts]
    scene.add(pyrender.Mesh(primitives=primitives))
    znear, zfar = _depth_range(rig, mesh)
    camera = pyrender.PerspectiveCamera(
        yfov=float(np.radians(rig.fov_y_deg)), aspectRatio=rig.width / rig.height, znear=znear, zfar=zfar
    )
    camera_node = scene.add(camera, pose=rig.c2w[0])
    # A directional light shines along its node's -Z axis: with the camera's pose it is a headlight.
    light = pyrender.DirectionalLight(color=np.ones(3), intensity=LIGHT_INTENSITY)
    light_node = scene.add(light, pose=rig.c2w[0])
    return scene, camera_node, light_node
