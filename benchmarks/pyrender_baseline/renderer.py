"""Canonical multi-view rendering with pyrender (protocol v1 shading), one renderer per process.

pyrender and PyOpenGL are imported lazily, after the backend has been chosen: PyOpenGL picks its
platform (EGL or OSMesa) from ``PYOPENGL_PLATFORM`` at first import and cannot switch afterwards, so
one process renders with one backend. Under EGL, deleting one ``OffscreenRenderer`` invalidates the
display for every other renderer in the process (``EGL_BAD_DISPLAY``), so the renderer is created once
(:func:`get_renderer`) and never deleted.

Shading (design.md §3): a white directional light at the camera (intensity 3.0) plus ambient 0.3;
every face double-sided; the asset's base colour, base-colour texture and vertex colours kept; an
uncoloured asset gets base colour 0.8 grey. Materials are dielectric (metallic 0, roughness 1) so a
metallic glTF does not render black under a single light with no environment map, and opaque (alpha
is coverage). ``shading="plain_white"`` is the authors' eval-script profile: a plain white material
instead of the asset's own.

The batch entry points (``render_asset``, ``render_batch``, ``load_views``) live in
:mod:`mme3dr.render_cache` and :mod:`mme3dr.render_batch` and are re-exported here.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mme3dr.render.cameras import Rig
from pyrender_baseline.mesh import CanonicalMesh
from pyrender_baseline.scene import AMBIENT, LIGHT_INTENSITY, build_scene

BACKENDS = ("egl", "osmesa")
__all__ = ["AMBIENT", "LIGHT_INTENSITY", "RenderResult", "Renderer", "composite_on_white", "get_renderer"]

_RENDERER: Renderer | None = None
_BACKEND: str | None = None
_PROBED: str | None = None


@dataclass
class RenderResult:
    """rgba (V, H, W, 4) uint8, straight (not premultiplied) alpha; depth (V, H, W) float32, distance
    along the view axis in scene units, 0 where nothing was drawn (None if not requested)."""

    rgba: np.ndarray
    depth: np.ndarray | None


# GL_RENDERER strings of Mesa's CPU rasterisers. EGL on these is 4-5x dearer than OSMesa for the
# protocol scene (docs/benchmarks.md: framebuffer + 4x MSAA resolve on the CPU), so `auto` skips them.
_SOFTWARE_GL = ("llvmpipe", "softpipe", "swrast", "lavapipe")


def _probe_egl() -> str | None:
    """The GL_RENDERER string of an EGL context here, or None if pyrender cannot open one. Probed in a
    child process because a failed EGL import would pin this process's PyOpenGL to a broken platform."""
    code = (
        "import numpy as np; np.infty = np.inf\n"
        "import pyrender\n"
        "r = pyrender.OffscreenRenderer(8, 8)\n"
        "s = pyrender.Scene()\n"
        "s.add(pyrender.PerspectiveCamera(yfov=1.0))\n"
        "r.render(s, flags=pyrender.RenderFlags.RGBA)\n"
        "from OpenGL import GL\n"
        "print('GL_RENDERER=' + GL.glGetString(GL.GL_RENDERER).decode())\n"
    )
    env = dict(os.environ, PYOPENGL_PLATFORM="egl")
    try:
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    for line in done.stdout.decode(errors="replace").splitlines():
        if line.startswith("GL_RENDERER="):
            return line.removeprefix("GL_RENDERER=")
    return "unknown"


def _pyopengl_has_osmesa(version: str) -> bool:
    """PyOpenGL gained ``OSMesaCreateContextAttribs`` (which pyrender's OSMesa platform imports) in
    3.1.5; pyrender pins 3.1.0, so OSMesa needs ``pip install PyOpenGL==3.1.10`` after it."""
    parts = [int(p) for p in re.findall(r"\d+", version)[:3]]
    return tuple(parts + [0] * (3 - len(parts))) >= (3, 1, 5)


def _osmesa_available() -> bool:
    """Whether OSMesa can work here: libOSMesa is found (``apt-get install libosmesa6``) and PyOpenGL is
    new enough to drive it. Cheap, opens no context and imports no OpenGL."""
    from importlib import metadata

    try:
        pyopengl = metadata.version("PyOpenGL")
    except metadata.PackageNotFoundError:
        return False
    return _pyopengl_has_osmesa(pyopengl) and ctypes.util.find_library("OSMesa") is not None


def _gpu_device_present() -> bool:
    """Whether a GPU device node exists (NVIDIA's, or a DRM render node): hardware EGL needs one."""
    import glob

    return bool(glob.glob("/dev/nvidia[0-9]*") or glob.glob("/dev/dri/renderD*"))


def choose_auto_backend(egl_renderer: str | None, osmesa_available: bool) -> str:
    """``auto``'s rule: EGL when it runs on real hardware (a GPU); OSMesa when EGL is missing or is
    only Mesa's software rasteriser and OSMesa is installed; otherwise whichever exists."""
    if egl_renderer is None:
        return "osmesa"
    software = any(name in egl_renderer.lower() for name in _SOFTWARE_GL)
    return "osmesa" if software and osmesa_available else "egl"


def resolve_backend(backend: str | None = None) -> str:
    """The backend this process renders with: ``backend`` if given, else the one already chosen in
    this process, else ``$PYOPENGL_PLATFORM``, else :func:`choose_auto_backend` on a probe."""
    global _PROBED
    if backend in (None, "auto"):
        if _BACKEND is not None:
            return _BACKEND
        env = os.environ.get("PYOPENGL_PLATFORM", "").lower()
        if env in BACKENDS:
            return env
        if _PROBED is None:  # once per process: the probe takes seconds
            osmesa = _osmesa_available()
            # Without a GPU device node EGL can only be llvmpipe, so the probe can be skipped.
            egl = _probe_egl() if _gpu_device_present() or not osmesa else "llvmpipe (no GPU device node)"
            _PROBED = choose_auto_backend(egl, osmesa)
        return _PROBED
    backend = backend.lower()
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of auto, {', '.join(BACKENDS)}")
    return backend


def _load_triton_before_mesa() -> None:
    """Load triton's native library first, when it is installed.

    Mesa's llvmpipe (the CPU rasteriser behind OSMesa and EGL) and triton (which ``import torch`` pulls
    in) each carry their own LLVM. Loading triton's after Mesa's segfaults inside triton's module init,
    so a process that rendered and *then* imported torch (render, then score) crashed; loaded in the
    other order both work. Costs one import, once per rendering process, and nothing where triton is
    absent.
    """
    if "triton" in sys.modules or importlib.util.find_spec("triton") is None:
        return
    # A broken triton install must not stop rendering; torch reports it itself when it needs triton.
    with contextlib.suppress(Exception):
        import triton  # noqa: F401


def _import_pyrender(backend: str):
    """Import pyrender with PyOpenGL bound to ``backend``; fail if this process already uses another."""
    current = os.environ.get("PYOPENGL_PLATFORM")
    if "OpenGL" in sys.modules and current != backend:
        raise RuntimeError(
            f"this process already loaded PyOpenGL for {current or 'the default platform'!r}; it cannot "
            f"switch to {backend!r}. Use one backend per process (or render in a fresh process)."
        )
    os.environ["PYOPENGL_PLATFORM"] = backend
    _load_triton_before_mesa()
    if not hasattr(np, "infty"):  # pyrender (unmaintained) still uses np.infty, removed in numpy 2
        np.infty = np.inf
    import pyrender

    return pyrender


class Renderer:
    """One pyrender offscreen context. Build it with :func:`get_renderer`, never directly."""

    def __init__(self, width: int, height: int, backend: str) -> None:
        self.backend = backend
        self._pyrender = _import_pyrender(backend)
        try:
            self._offscreen = self._pyrender.OffscreenRenderer(width, height)
        except Exception as exc:
            other = "osmesa" if backend == "egl" else "egl"
            raise RuntimeError(
                f"could not open a {backend} rendering context ({type(exc).__name__}: {exc}). Install the "
                f"system library (apt-get install libegl1 libgl1 libosmesa6"
                f"{'; and pip install PyOpenGL==3.1.10' if backend == 'osmesa' else ''}) "
                f"or try --backend {other}."
            ) from exc
        if backend == "osmesa":
            _stabilise_program_cache(self._offscreen._renderer)
        self.gl_renderer = self._gl_string()

    def _gl_string(self) -> str:
        from OpenGL import GL

        self._offscreen._platform.make_current()
        try:
            return " / ".join(GL.glGetString(x).decode() for x in (GL.GL_RENDERER, GL.GL_VERSION))
        except Exception:  # informational only
            return "unknown"

    def set_size(self, width: int, height: int) -> None:
        width, height = int(width), int(height)
        self._offscreen.viewport_width = width
        self._offscreen.viewport_height = height
        platform = self._offscreen._platform
        size = (platform.viewport_width, platform.viewport_height)
        if self.backend == "osmesa" and size != (width, height):
            # OSMesa draws into a client buffer of the context's size. pyrender resizes by deleting and
            # re-creating the context inside OffscreenRenderer.render, which our RGBA path bypasses;
            # binding a new buffer of the new size to the same context is enough (OSMesaMakeCurrent
            # accepts any size) and keeps the compiled shaders.
            from OpenGL import arrays

            platform.viewport_width, platform.viewport_height = width, height
            platform._buffer = arrays.GLubyteArray.zeros((height, width, 4))

    def build_scene(self, mesh: CanonicalMesh, rig: Rig, *, shading: str = "protocol"):
        """One pyrender scene for the asset: its primitives, a camera and a headlight (poses set per view)."""
        return build_scene(self._pyrender, mesh, rig, shading=shading)

    def draw(self, scene, depth: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Rasterise the scene from its current camera pose: (H, W, 4) uint8 premultiplied and
        (H, W) float32 depth (None when ``depth`` is False and the backend can skip reading it)."""
        pr = self._pyrender
        if self.backend == "osmesa":
            # pyrender's OSMesa path reads back RGB only; the context's buffer is RGBA, so draw through
            # the inner renderer and read RGBA ourselves (same steps as OffscreenRenderer.render).
            from OpenGL import GL

            off = self._offscreen
            off._platform.make_current()
            off._renderer.viewport_width = off.viewport_width
            off._renderer.viewport_height = off.viewport_height
            off._renderer.render(scene, pr.RenderFlags.RGBA)
            depth_im = off._renderer.read_depth_buf() if depth else None
            GL.glBindFramebuffer(GL.GL_READ_FRAMEBUFFER, 0)
            GL.glReadBuffer(GL.GL_FRONT)
            w, h = off.viewport_width, off.viewport_height
            buf = GL.glReadPixels(0, 0, w, h, GL.GL_RGBA, GL.GL_UNSIGNED_BYTE)
            color = np.frombuffer(buf, np.uint8).reshape(h, w, 4)[::-1]
            return color, depth_im
        return self._offscreen.render(scene, flags=pr.RenderFlags.RGBA)

    def render(
        self, mesh: CanonicalMesh, rig: Rig, *, shading: str = "protocol", depth: bool = True
    ) -> RenderResult:
        """Render every view of ``rig``: one scene, the camera and its headlight moved per view.
        ``depth=False`` skips reading depth back where the backend allows (``result.depth`` is None)."""
        self.set_size(rig.width, rig.height)
        scene, camera_node, light_node = self.build_scene(mesh, rig, shading=shading)
        rgba = np.empty((rig.n_views, rig.height, rig.width, 4), np.uint8)
        depths = np.empty((rig.n_views, rig.height, rig.width), np.float32) if depth else None
        for i, c2w in enumerate(rig.c2w):
            scene.set_pose(camera_node, c2w)
            scene.set_pose(light_node, c2w)
            color, d = self.draw(scene, depth=depth)
            rgba[i] = unpremultiply(color)
            if depths is not None:
                depths[i] = d
        return RenderResult(rgba=rgba, depth=depths)


def _stabilise_program_cache(renderer) -> None:
    """Make pyrender reuse compiled shaders under OSMesa.

    pyrender keys its shader cache by ``OpenGL.contextdata.getContext()``; under OSMesa that returns a
    fresh ctypes pointer object on every call, which never compares equal, so every draw recompiled
    all three shader programs (~25 ms a view here) and leaked the old ones. One renderer per process
    means one context, so the key can drop the context id.
    """
    cache = renderer._program_cache
    original = cache.get_program
    programs: dict = {}

    def get_program(vertex_shader, fragment_shader, geometry_shader=None, defines=None):
        key = (vertex_shader, fragment_shader, geometry_shader, tuple(sorted((defines or {}).items())))
        if key not in programs:
            programs[key] = original(vertex_shader, fragment_shader, geometry_shader, defines)
        return programs[key]

    cache.get_program = get_program


def get_renderer(width: int = 512, height: int = 512, backend: str | None = None) -> Renderer:
    """The process-wide renderer, created on first use and resized as needed (never deleted)."""
    global _RENDERER, _BACKEND
    if _RENDERER is None:
        chosen = resolve_backend(backend)
        _RENDERER = Renderer(width, height, chosen)
        _BACKEND = chosen
    elif backend not in (None, "auto") and backend.lower() != _RENDERER.backend:
        raise RuntimeError(
            f"this process already renders with {_RENDERER.backend!r}; it cannot also use {backend!r} "
            "(one OpenGL platform per process). Render with the other backend in a separate process."
        )
    _RENDERER.set_size(width, height)
    return _RENDERER


def unpremultiply(color: np.ndarray) -> np.ndarray:
    """(..., 4) uint8 premultiplied RGBA (what multisample resolve yields at edges) -> straight alpha.

    rgb_straight = round(rgb * 255 / a) for 0 < a < 255, clipped to 255; a = 0 gives rgb 0.
    """
    # Fast path (every OSMesa view): alpha only 0 or 255. (a - 1) wraps 0 -> 255 and 255 -> 254, so
    # partial alphas 1..254 are exactly the values below 254. Uncovered pixels hold the clear colour 0.
    if not ((color[..., 3] - np.uint8(1)) < 254).any():
        return np.ascontiguousarray(color)
    alpha = color[..., 3:4].astype(np.uint32)
    rgb = color[..., :3].astype(np.uint32)
    straight = np.where(alpha > 0, (rgb * 255 + alpha // 2) // np.maximum(alpha, 1), 0)
    return np.concatenate([np.minimum(straight, 255), alpha], axis=-1).astype(np.uint8)


def composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """(..., H, W, 4) uint8 straight-alpha RGBA -> (..., H, W, 3) uint8 over a white background.

    out = round((rgb * a + 255 * (255 - a)) / 255), in integers so it is exact and platform-free.
    """
    rgba = np.asarray(rgba)
    if rgba.dtype != np.uint8 or rgba.shape[-1] != 4:
        raise ValueError(f"expected (..., H, W, 4) uint8 RGBA, got {rgba.shape} {rgba.dtype}")
    # Alpha 0 or 255 (every OSMesa pixel, all but edge pixels under MSAA) needs no arithmetic: the
    # formula gives rgb at 255 and white at 0. OR-ing 0x00FFFFFF into the little-endian RGBA word of
    # each transparent pixel makes it white; the partial-alpha pixels, if any, then get the formula.
    # ~2.5x faster than the formula everywhere on a 24-view render; same bytes (tested).
    rgba = np.ascontiguousarray(rgba)
    words = rgba.view("<u4")[..., 0]
    alpha = rgba[..., 3]
    whitened = (words | np.where(alpha == 0, np.uint32(0x00FFFFFF), np.uint32(0))).astype("<u4", copy=False)
    out = np.ascontiguousarray(whitened.view(np.uint8).reshape(rgba.shape)[..., :3])
    partial = (alpha - np.uint8(1)) < 254  # 1..254; uint8 wrap-around sends 0 to 255
    if partial.any():
        out[partial] = _composite_formula(rgba[partial])
    return out


def _composite_formula(rgba: np.ndarray) -> np.ndarray:
    """(..., 4) uint8 -> (..., 3): round((rgb * a + 255 * (255 - a)) / 255) in integers."""
    rgb = rgba[..., :3].astype(np.uint16)
    a = rgba[..., 3:4].astype(np.uint16)
    # x = rgb*a + 255*(255-a) + 127 <= 65,152 fits uint16, and for 0 <= x < 65,535 the exact floor(x / 255)
    # is (x + 1 + (x >> 8)) >> 8 (<= 65,407, no overflow): ~2.5x faster here than numpy's uint32 division,
    # same bytes (checked over all 65,536 (value, alpha) pairs in the tests).
    x = rgb * a + 255 * (255 - a) + 127
    return ((x + 1 + (x >> 8)) >> 8).astype(np.uint8)
