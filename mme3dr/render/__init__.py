"""Rendering: camera rigs (``eval24``, ``reward6``), the process-wide renderer with the protocol
shading, the content-addressed render cache, and the pool of render worker processes.

Light to import: the OpenGL stack loads when the first renderer is created (:func:`get_renderer`).
"""

from __future__ import annotations

from mme3dr.render.cache import RENDER_PROTOCOL, RenderOutcome, cache_key, load_views, render_asset
from mme3dr.render.cameras import RIGS, Rig, eval24, get_rig, reward6, rig_from_transforms, video6
from mme3dr.render.pool import RenderPool, render_batch, reuse_freed_memory
from mme3dr.render.renderer import (
    BACKENDS,
    SHADINGS,
    Renderer,
    RenderResult,
    composite_on_white,
    get_renderer,
    resolve_backend,
    unpremultiply,
)

__all__ = [
    "BACKENDS",
    "RENDER_PROTOCOL",
    "RIGS",
    "SHADINGS",
    "RenderOutcome",
    "RenderPool",
    "RenderResult",
    "Renderer",
    "Rig",
    "cache_key",
    "composite_on_white",
    "eval24",
    "get_renderer",
    "get_rig",
    "load_views",
    "render_asset",
    "render_batch",
    "reward6",
    "video6",
    "resolve_backend",
    "reuse_freed_memory",
    "rig_from_transforms",
    "unpremultiply",
]
