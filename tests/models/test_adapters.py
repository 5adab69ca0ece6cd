"""The built-in adapters: primitives (deterministic baseline), folder, oracle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

from mme3dr.models.folder import FolderModel
from mme3dr.models.oracle import OracleModel
from mme3dr.models.primitives import PrimitivesModel, build_parts, parse_prompt
from mme3dr.models.protocol import GenerationRequest


def _req(tmp: Path, case="c1", prompt="a cube", i=0) -> GenerationRequest:
    d = tmp / f"{case}_{i}"
    d.mkdir(parents=True, exist_ok=True)
    return GenerationRequest(case, prompt, 7, i, d)


def test_parse_prompt_reads_nouns_colours_and_counts():
    objects, parts = parse_prompt("Three red balls next to a green chair with five legs.")
    assert objects[0] == ("ball", "sphere", 3, (200, 30, 30))
    assert objects[1][:3] == ("chair", "chair", 1) and objects[1][3] == (40, 160, 60)
    assert parts == {"leg": 5}


def test_counts_change_the_geometry():
    assert len(build_parts("two cups")) == 2 and len(build_parts("five cups")) == 5
    assert len(build_parts("a table with three legs")) == 4  # top + 3 legs


def test_primitives_writes_identical_coloured_glb_for_the_same_prompt(tmp_path: Path):
    model = PrimitivesModel()
    a = model.generate([_req(tmp_path / "a", prompt="a blue toy car")])[0]
    b = model.generate([_req(tmp_path / "b", prompt="a blue toy car")])[0]
    assert a.path.read_bytes() == b.path.read_bytes()
    mesh = trimesh.load(a.path, force="mesh")
    colours = np.asarray(mesh.visual.vertex_colors)
    assert len(mesh.faces) > 0 and (colours[:, :3] == (40, 80, 200)).all(axis=1).any()


def test_folder_finds_assets_by_case_id_and_reports_missing_ones(tmp_path: Path):
    root = tmp_path / "assets"
    root.mkdir()
    (root / "c1.obj").write_text("v 0 0 0\n")
    (root / "c2_1.glb").write_bytes(b"x")
    model = FolderModel(root)
    got = model.generate([_req(tmp_path, "c1"), _req(tmp_path, "c2", i=1), _req(tmp_path, "c3")])
    assert got[0].path == root / "c1.obj" and got[1].path == root / "c2_1.glb"
    assert not got[2].path.exists()


def test_oracle_returns_the_bound_references(tmp_path: Path):
    ref = tmp_path / "ref.glb"
    ref.write_bytes(b"gt")
    model = OracleModel()
    model.bind_references({"c1": (ref, "z")})
    asset = model.generate([_req(tmp_path, "c1")])[0]
    assert asset.path == ref and asset.up_axis == "z"


def test_a_part_colour_is_not_the_object_colour():
    (car,), parts = parse_prompt("A blue toy car with four black wheels.")
    assert car[3] == (40, 80, 200) and parts == {"wheel": 4}
    (car,), _ = parse_prompt("a toy car with four black wheels")
    assert car[3] == (204, 204, 204)  # uncoloured: the protocol's 0.8 grey
