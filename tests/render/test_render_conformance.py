"""Conformance with the real TRELLIS sample (design.md §3, issue 2 "Must show 1").

``mme3dr render mesh.ply --transforms transforms.json`` must reproduce the silhouettes of the 24
Blender (Cycles) ground-truth views. Axis conventions this relies on (docs/rendering.md): the
TRELLIS mesh.ply and its transforms.json share Blender's Z-up world frame, the matrices are
camera-to-world with OpenGL camera axes (look down -Z, +Y up) like the renderer's, and image row 0 is the
top in both. So no axis conversion is applied in --transforms mode: mesh and cameras stay in their
own frame. Paired synthetic test: tests/test_render.py::test_silhouette_matches_independent_projection.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from render_checks import silhouette_agreement
from typer.testing import CliRunner

from mme3dr.cli import app

pytestmark = pytest.mark.shared


def test_rose_silhouettes_match_trellis_ground_truth(trellis_rose, tmp_path):
    sample = next((trellis_rose / "renders").glob("*/transforms.json")).parent
    result = CliRunner().invoke(
        app,
        ["render", str(sample / "mesh.ply"), "--transforms", str(sample / "transforms.json"),
         "--out", str(tmp_path)],
    )
    assert result.exit_code == 0, result.output
    ours_dir = tmp_path / "mesh"
    report = []
    for i in range(24):
        gt = np.asarray(Image.open(sample / f"{i:03d}.png"))[..., 3] > 127
        ours = np.asarray(Image.open(ours_dir / f"{i:03d}.png"))[..., 3] > 127
        agreement, iou = silhouette_agreement(ours, gt, tolerance_px=1)
        report.append((i, agreement, iou))
    print("\nview  agreement(1px)  IoU")
    for i, agreement, iou in report:
        print(f"{i:4d}  {agreement:.4f}  {iou:.4f}")
    worst = min(report, key=lambda r: r[1])
    assert worst[1] >= 0.98, f"view {worst[0]}: agreement {worst[1]:.4f} < 0.98"
    assert min(r[2] for r in report) > 0.8  # plain IoU is limited by the 2-3 px stem, but not far off
