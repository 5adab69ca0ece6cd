"""Both OpenGL backends, each in its own process (PyOpenGL binds one platform per process)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from mesh_factory import write_marker_glb
from render_checks import silhouette_agreement

from mme3dr.render.cache import load_views

pytestmark = pytest.mark.slow


def _render(asset, out, backend: str):
    cmd = [sys.executable, "-c", "from mme3dr.cli import main; main()", "render", str(asset),
           "--size", "96", "--backend", backend, "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0 and "could not open" in done.stdout + done.stderr:
        pytest.skip(f"{backend} is not available here")
    assert done.returncode == 0, done.stderr
    return load_views(out / asset.stem)


@pytest.mark.parametrize("backend", ["osmesa", "egl"])
def test_each_backend_is_deterministic_across_processes(tmp_path, backend):
    asset = write_marker_glb(tmp_path)
    _render(asset, tmp_path / "a", backend)
    _render(asset, tmp_path / "b", backend)
    a, b = tmp_path / "a" / "marker", tmp_path / "b" / "marker"
    for i in range(24):
        assert (a / f"{i:03d}.png").read_bytes() == (b / f"{i:03d}.png").read_bytes()


def test_backends_agree_on_silhouettes_and_colours(tmp_path):
    asset = write_marker_glb(tmp_path)
    osmesa = _render(asset, tmp_path / "o", "osmesa")
    egl = _render(asset, tmp_path / "e", "egl")
    for o, e in zip(osmesa, egl, strict=True):
        agreement, _ = silhouette_agreement(o[..., 3] > 127, e[..., 3] > 127)
        assert agreement >= 0.99
        inside = (o[..., 3] == 255) & (e[..., 3] == 255)
        # MSAA only changes edge pixels: interior colours match closely.
        assert np.median(np.abs(o[inside, :3].astype(int) - e[inside, :3].astype(int))) <= 2
