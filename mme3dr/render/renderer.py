"""Canonical multi-view rendering with moderngl and the protocol shader, one context per process.

One headless EGL context per process (:func:`get_renderer`): Mesa's llvmpipe on a CPU machine, the
vendor driver where there is a GPU (``moderngl.create_context(standalone=True, backend="egl")``). The
shader is :mod:`shader` (one pass, two-sided lighting through ``gl_FrontFacing``, MASK by discard,
BLEND drawn last with "over" blending). Anti-aliasing: none (``samples=0``): a pixel is covered when
its centre is inside a triangle, so silhouettes are exact, alpha is 0 or 255 except where BLEND
surfaces are, and a view costs about half of what 4x MSAA costs on llvmpipe (docs/rendering.md).

The batch entry points (``render_asset``, ``render_batch``, ``load_views``) live in the cache and pool
modules.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from dataclasses import dataclass

import numpy as np

from mme3dr.render import shader
from mme3dr.render.cameras import Rig
from mme3dr.render.compositing import composite_on_white, unpremultiply

__all__ = ["BACKENDS", "RenderResult", "Renderer", "composite_on_white", "get_renderer", "resolve_backend",
           "unpremultiply"]

BACKENDS = ("egl",)
SHADINGS = ("protocol", "plain_white")
_RENDERER: Renderer | None = None
_GL_NEAREST, _GL_LINEAR = 9728, 9729
_GL_CLAMP, _GL_MIRROR, _GL_REPEAT = 33071, 33648, 10497
_SRGB8_ALPHA8 = 0x8C43


@dataclass
class RenderResult:
    """rgba (V, H, W, 4) uint8, straight (not premultiplied) alpha; depth (V, H, W) float32, distance
    along the view axis in scene units, 0 where nothing was drawn (None if not requested)."""

    rgba: np.ndarray
    depth: np.ndarray | None


def resolve_backend(backend: str | None = None) -> str:
    """The backend name: ``egl`` (the only one; ``auto``/None mean it)."""
    if backend in (None, "auto", "egl"):
        return "egl"
    raise ValueError(f"unknown backend {backend!r}; mme3dr renders with headless EGL (choose auto or egl)")


def _load_triton_before_mesa() -> None:
    """Load triton's native library first, when it is installed: Mesa's llvmpipe and triton (pulled in by
    ``import torch``) each carry an LLVM, and loading triton's after Mesa's segfaults in triton's module
    init (render, then score). Loaded in this order both work."""
    if "triton" in sys.modules or importlib.util.find_spec("triton") is None:
        return
    with contextlib.suppress(Exception):
        import triton  # noqa: F401


def projection(fov_y_deg: float, aspect: float, znear: float, zfar: float) -> np.ndarray:
    """OpenGL perspective matrix (gluPerspective) with the Y row negated, so that the framebuffer's
    first row in memory is the image's top row (PNG order) and no flip is needed on read-back."""
    f = 1.0 / np.tan(np.radians(fov_y_deg) / 2.0)
    p = np.zeros((4, 4))
    p[0, 0], p[1, 1] = f / aspect, -f
    p[2, 2], p[2, 3] = (zfar + znear) / (znear - zfar), 2.0 * zfar * znear / (znear - zfar)
    p[3, 2] = -1.0
    return p


def depth_range(c2w: np.ndarray, bounds: np.ndarray) -> tuple[float, float]:
    """Near/far planes that enclose the asset's bounding sphere from every camera."""
    centre = bounds.mean(axis=0)
    radius = float(np.linalg.norm(bounds[1] - bounds[0])) / 2.0
    dist = np.linalg.norm(c2w[:, :3, 3] - centre, axis=1)
    return max(1e-3, float(dist.min() - radius) * 0.5), float(dist.max() + radius) * 2.0 + 1.0


class Renderer:
    """The process's EGL context, framebuffer and compiled protocol program. Use :func:`get_renderer`."""

    backend = "egl"

    def __init__(self, width: int, height: int, samples: int = 0) -> None:
        _load_triton_before_mesa()
        import moderngl

        self._mgl = moderngl
        try:
            self.ctx = moderngl.create_context(standalone=True, backend="egl")
        except Exception as exc:
            raise RuntimeError(
                f"could not open a headless EGL OpenGL 3.3 context ({type(exc).__name__}: {exc}). Install "
                "the system libraries (Debian/Ubuntu: apt-get install libegl1 libgl1 libgl1-mesa-dri; "
                "libegl1 brings libegl-mesa0) and `pip install moderngl glcontext`."
            ) from exc
        self.gl_renderer = f"{self.ctx.info['GL_RENDERER']} / {self.ctx.info['GL_VERSION']}"
        self._programs: dict[tuple, object] = {}
        self.samples = int(samples)
        self.size: tuple[int, int] | None = None
        self.set_size(width, height)

    def set_size(self, width: int, height: int) -> None:
        size = (int(width), int(height))
        if size == self.size:
            return
        for name in ("fbo", "resolved"):
            if getattr(self, name, None) is not None:
                getattr(self, name).release()
        ctx = self.ctx
        self.fbo = ctx.framebuffer(color_attachments=[ctx.renderbuffer(size, 4, samples=self.samples)],
                                   depth_attachment=ctx.depth_renderbuffer(size, samples=self.samples))
        self.resolved = None
        if self.samples:
            self.resolved = ctx.framebuffer(color_attachments=[ctx.renderbuffer(size, 4)],
                                            depth_attachment=ctx.depth_renderbuffer(size))
        self.size = size

    def program(self, normal: bool, texture: bool, color: bool, unlit: bool):
        """The compiled protocol shader variant for these inputs (compiled once per process)."""
        key = (normal, texture, color, unlit)
        if key not in self._programs:
            flags = dict(normal=normal, texture=texture, color=color, unlit=unlit)
            prog = self.ctx.program(vertex_shader=shader.source("vertex", **flags),
                                    fragment_shader=shader.source("fragment", **flags))
            for name, value in (("u_ambient", shader.AMBIENT), ("u_light", shader.LIGHT)):
                if name in prog:  # unlit variants have no lighting uniforms
                    prog[name].value = value
            self._programs[key] = prog
        return self._programs[key]

    def upload(self, mesh, shading: str = "protocol") -> list:
        """GPU objects of every part, (vao, material, texture | None, program, buffers), the BLEND parts
        last; free them with :func:`release`."""
        from mme3dr.assets.materials import Material

        if shading not in SHADINGS:
            raise ValueError(f"unknown shading {shading!r}; choose 'protocol' or 'plain_white'")
        ctx, drawn = self.ctx, []
        for part in mesh.parts:
            mat = part.material
            if shading == "plain_white":
                mat = Material(double_sided=mat.double_sided)
            textured = shading == "protocol" and mat.texture is not None and part.uv is not None
            coloured = shading == "protocol" and part.colors is not None
            has_normal = part.normals is not None and not mat.unlit
            prog = self.program(has_normal, textured, coloured, bool(mat.unlit))
            buffers = [(ctx.buffer(np.ascontiguousarray(part.positions, np.float32)), "3f", "in_position")]
            if has_normal:
                normals = ctx.buffer(np.ascontiguousarray(part.normals, np.float32))
                buffers.append((normals, "3f", "in_normal"))
            if textured:
                buffers.append((ctx.buffer(np.ascontiguousarray(part.uv, np.float32)), "2f", "in_uv"))
            if coloured:
                buffers.append((ctx.buffer(np.ascontiguousarray(part.colors, np.float32)), "4f", "in_color"))
            index = ctx.buffer(np.ascontiguousarray(part.faces, np.uint32))
            vao = ctx.vertex_array(prog, buffers, index_buffer=index, index_element_size=4)
            texture = self._texture(mat.texture) if textured else None
            drawn.append((vao, mat, texture, prog, [b for b, _, _ in buffers] + [index]))
        # BLEND parts after every opaque/mask part (glTF 2.0 §3.9.4 implementation note), in file order.
        blend = [d for d in drawn if d[1].alpha_mode == "BLEND"]
        return [d for d in drawn if d[1].alpha_mode != "BLEND"] + blend

    def _texture(self, tex):
        """An sRGB8_ALPHA8 texture (sampling returns linear values, filtered after decoding, as glTF
        2.0 §3.8.4 requires) from (h, w, 4) uint8 rows; row 0 = UV v = 0 (glTF's top-left origin)."""
        mgl = self._mgl
        rgba = np.ascontiguousarray(tex.rgba, np.uint8)
        h, w = rgba.shape[:2]
        limit = self.ctx.info["GL_MAX_TEXTURE_SIZE"]
        if max(w, h) > limit:  # the loader caps sides at MAX_IMAGE_SIDE; a driver below that says so
            raise ValueError(f"texture {tex.source or '(embedded)'} is {w} x {h} pixels, more than this "
                             f"OpenGL driver's GL_MAX_TEXTURE_SIZE {limit} (it would be sampled as black)")
        # Rows of 4-byte texels are always 4-byte aligned; alignment=1 also covers any future format.
        gl_tex = self.ctx.texture((w, h), 4, rgba.tobytes(), alignment=1, internal_format=_SRGB8_ALPHA8)
        mipmapped = tex.min_filter in (9984, 9985, 9986, 9987)
        if mipmapped:
            gl_tex.build_mipmaps()
        mag = mgl.NEAREST if tex.mag_filter == _GL_NEAREST else mgl.LINEAR
        minf = {9728: mgl.NEAREST, 9729: mgl.LINEAR, 9984: mgl.NEAREST_MIPMAP_NEAREST,
                9985: mgl.LINEAR_MIPMAP_NEAREST, 9986: mgl.NEAREST_MIPMAP_LINEAR,
                9987: mgl.LINEAR_MIPMAP_LINEAR}.get(tex.min_filter, mgl.LINEAR_MIPMAP_LINEAR)
        gl_tex.filter = (minf, mag)
        gl_tex.repeat_x = tex.wrap_s != _GL_CLAMP
        gl_tex.repeat_y = tex.wrap_t != _GL_CLAMP
        if _GL_MIRROR in (tex.wrap_s, tex.wrap_t):
            _set_mirrored_repeat(gl_tex, tex.wrap_s == _GL_MIRROR, tex.wrap_t == _GL_MIRROR)
        return gl_tex

    @staticmethod
    def _set_material(prog, mat, texture) -> None:
        prog["u_factor"].value = tuple(float(v) for v in mat.base_color_factor)
        prog["u_alpha_mode"].value = shader.ALPHA_MODE_CODES[mat.alpha_mode]
        prog["u_alpha_cutoff"].value = float(mat.alpha_cutoff)
        if texture is not None:
            prog["u_uv_transform"].write(np.ascontiguousarray(mat.uv_transform.T, np.float32).tobytes())
            texture.use(0)
            prog["u_texture"].value = 0

    def draw_view(self, drawn, clip_from_world: np.ndarray, eye_from_world: np.ndarray, out: np.ndarray,
                  depth: np.ndarray | None = None, znear: float = 0.1, zfar: float = 10.0) -> None:
        """Draw prepared parts from one camera into ``out`` (H, W, 4) uint8 (premultiplied at BLEND)."""
        mgl, ctx = self._mgl, self.ctx
        self.fbo.use()
        ctx.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        ctx.enable(mgl.DEPTH_TEST)
        # The projection flips Y (image row 0 first), which mirrors screen-space winding: CW is front.
        ctx.front_face = "cw"
        clip = np.ascontiguousarray(clip_from_world.T, np.float32).tobytes()
        eye = np.ascontiguousarray(eye_from_world.T, np.float32).tobytes()
        for vao, mat, texture, prog, _ in drawn:
            prog["u_clip_from_world"].write(clip)
            if "u_eye_from_world" in prog:  # unlit variants do not use it
                prog["u_eye_from_world"].write(eye)
            if mat.double_sided:
                ctx.disable(mgl.CULL_FACE)
            else:
                ctx.enable(mgl.CULL_FACE)
                ctx.cull_face = "back"
            if mat.alpha_mode == "BLEND":
                ctx.enable(mgl.BLEND)
                ctx.blend_func = (mgl.SRC_ALPHA, mgl.ONE_MINUS_SRC_ALPHA, mgl.ONE, mgl.ONE_MINUS_SRC_ALPHA)
                ctx.depth_mask = False
            else:
                ctx.disable(mgl.BLEND)
                ctx.depth_mask = True
            self._set_material(prog, mat, texture)
            if mat.alpha_mode == "BLEND" and mat.double_sided:
                # Back faces first, then front faces: a closed transparent surface composites its far
                # side under its near side whatever the triangle order in the file.
                ctx.enable(mgl.CULL_FACE)
                ctx.cull_face = "front"
                vao.render(mgl.TRIANGLES)
                ctx.cull_face = "back"
            vao.render(mgl.TRIANGLES)
        ctx.depth_mask = True
        ctx.disable(mgl.BLEND)
        src = self.fbo
        if self.resolved is not None:
            ctx.copy_framebuffer(self.resolved, self.fbo)
            src = self.resolved
        src.read_into(out, components=4, alignment=1)
        if depth is not None:
            raw = src.read(components=1, attachment=-1, dtype="f4", alignment=1)
            d = np.frombuffer(raw, np.float32).reshape(out.shape[:2])
            ndc = 2.0 * d - 1.0
            lin = 2.0 * zfar * znear / ((zfar + znear) - ndc * (zfar - znear))
            depth[...] = np.where(d < 1.0, lin, 0.0)

    def render(self, mesh, rig: Rig, *, shading: str = "protocol", depth: bool = True) -> RenderResult:
        """Render every view of ``rig``; parts are uploaded once and released afterwards."""
        self.set_size(rig.width, rig.height)
        drawn = self.upload(mesh, shading)
        znear, zfar = depth_range(rig.c2w, mesh.bounds)
        proj = projection(rig.fov_y_deg, rig.width / rig.height, znear, zfar)
        rgba = np.empty((rig.n_views, rig.height, rig.width, 4), np.uint8)
        depths = np.empty((rig.n_views, rig.height, rig.width), np.float32) if depth else None
        try:
            for i, c2w in enumerate(rig.c2w):
                view = np.linalg.inv(c2w)
                self.draw_view(drawn, proj @ view, view, rgba[i], None if depths is None else depths[i],
                               znear, zfar)
        finally:
            release(drawn)
        if any(d[1].alpha_mode == "BLEND" for d in drawn):
            rgba = unpremultiply(rgba)
        return RenderResult(rgba=rgba, depth=depths)


def _set_mirrored_repeat(gl_tex, s: bool, t: bool) -> None:
    """GL_MIRRORED_REPEAT, which moderngl's Texture does not expose: set through libGL on the bound
    texture (GLVND dispatches to the current EGL context)."""
    import ctypes

    gl = ctypes.CDLL("libGL.so.1")
    gl_tex.use(0)
    for on, pname in ((s, 0x2802), (t, 0x2803)):  # GL_TEXTURE_WRAP_S, GL_TEXTURE_WRAP_T
        if on:
            gl.glTexParameteri(0x0DE1, pname, _GL_MIRROR)  # GL_TEXTURE_2D


def release(drawn) -> None:
    """Free the GPU objects :meth:`Renderer.upload` made."""
    for vao, _, texture, _, buffers in drawn:
        vao.release()
        if texture is not None:
            texture.release()
        for b in buffers:
            b.release()


def get_renderer(width: int = 512, height: int = 512, backend: str | None = None) -> Renderer:
    """The process-wide renderer (one EGL context per process), created on first use, resized as needed."""
    global _RENDERER
    resolve_backend(backend)
    if _RENDERER is None:
        _RENDERER = Renderer(width, height)
    _RENDERER.set_size(width, height)
    return _RENDERER
