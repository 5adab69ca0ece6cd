"""mme3dr: the MME-3DR benchmark for reasoning-intensive text-to-3D generation.

The top-level import stays light (no torch, no OpenGL); heavy pieces load when first used.
"""

from __future__ import annotations

__version__ = "0.1.0"

#: Evaluation protocol version; changing any number of it (rig, shading, metric definition)
#: changes every score, so it means a new version (design.md §3).
PROTOCOL_VERSION = "mme3dr-protocol-v1"

_LAZY = {
    "load_manifest": ("mme3dr.benchmark.manifest", "load_manifest"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'mme3dr' has no attribute {name!r}")


__all__ = ["PROTOCOL_VERSION", "__version__", "load_manifest"]
