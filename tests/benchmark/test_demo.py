"""The built-in demo benchmark: 15 cases, 3 per category, deterministic reference objects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import trimesh

from mme3dr.benchmark import demo
from mme3dr.benchmark.taxonomy import CATEGORY_IDS


def test_demo_has_three_cases_per_category_with_prompts():
    m = demo.demo_manifest()
    assert m.name == "mme3dr-demo" and len(m) == 15
    assert m.counts() == dict.fromkeys(CATEGORY_IDS, 3)
    assert all(c.prompt for c in m.cases)
    assert m.sha256 == demo.demo_manifest().sha256


def test_references_are_valid_meshes_and_byte_identical_across_processes(tmp_path: Path):
    paths = demo.write_references(tmp_path / "a")
    assert len(paths) == 15
    for p in paths.values():
        mesh = trimesh.load(p, force="mesh")
        assert len(mesh.faces) >= 8 and mesh.visual.vertex_colors is not None
    code = f"from mme3dr.benchmark import demo; demo.write_references({str(tmp_path / 'b')!r})"
    subprocess.run([sys.executable, "-c", code], check=True)
    for p in paths.values():
        assert p.read_bytes() == (tmp_path / "b" / p.name).read_bytes()
