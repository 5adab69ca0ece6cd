"""Where a result came from: package versions, the code's git commit, the renderer backend.

Light module (standard library only; versions are read from installed metadata, nothing is imported).
"""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["environment_info", "git_hash", "package_versions", "renderer_info"]

#: Distributions whose versions can change a score (recorded in every result).
TRACKED_PACKAGES = ("mme3dr", "numpy", "scipy", "torch", "torchvision", "open_clip_torch", "transformers",
                    "torch-fidelity", "trimesh", "moderngl", "glcontext", "DracoPy", "pillow", "pydantic")
RENDER_PACKAGES = ("moderngl", "glcontext", "trimesh", "DracoPy", "numpy", "pillow")


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def environment_info() -> dict[str, Any]:
    """lm-eval's ``environment`` idea, trimmed to what can change a number."""
    return {
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": platform.system().lower(),
        "machine": platform.machine(),
        "packages": package_versions(),
    }


def git_hash() -> str | None:
    """The commit of the mme3dr source tree, when it is a git checkout (``None`` for a wheel install)."""
    root = Path(__file__).resolve().parents[2]  # mme3dr/harness/provenance.py -> repo root
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def renderer_info(backend: str | None, rig: Any, shading: str) -> dict[str, Any]:
    """``results.renderer``: the backend actually used, library versions and the rig."""
    try:
        from mme3dr.render.renderer import resolve_backend

        resolved = resolve_backend(backend)
    except Exception:  # noqa: BLE001 - no usable backend: record what was asked, the render stage says why
        resolved = backend or "unavailable"
    return {
        "backend": resolved,
        "versions": package_versions(RENDER_PACKAGES),
        "rig": rig.name,
        "rig_hash": rig.hash,
        "width": rig.width,
        "height": rig.height,
        "n_views": rig.n_views,
        "shading": shading,
    }
