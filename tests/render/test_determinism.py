"""The same assets rendered in two processes give identical PNG bytes (a 101-px-wide texture among them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gltf_factory import textured_box

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _render(assets, out: Path) -> None:
    cmd = [sys.executable, "-c", "from mme3dr.cli import main; main()", "render", *map(str, assets),
           "--size", "96", "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_processes_give_identical_png_bytes(tmp_path):
    import sys as _sys

    _sys.path.insert(0, str(REPO / "tests"))
    from mesh_factory import write_marker_glb

    rgba = np.zeros((37, 101, 4), np.uint8)
    rgba[..., 0] = np.arange(101, dtype=np.uint8)[None, :] * 2
    rgba[..., 1] = 30
    rgba[..., 2] = np.arange(37, dtype=np.uint8)[:, None] * 6
    rgba[..., 3] = 255
    assets = [textured_box(tmp_path, rgba, "odd101.glb"), write_marker_glb(tmp_path)]
    _render(assets, tmp_path / "a")
    _render(assets, tmp_path / "b")
    for stem in ("odd101", "marker"):
        names = sorted(p.name for p in (tmp_path / "a" / stem).glob("*.png"))
        assert len(names) == 24
        for name in names:
            assert (tmp_path / "a" / stem / name).read_bytes() == (tmp_path / "b" / stem / name).read_bytes()
