"""The folder adapter resolves exactly one file per case and refuses symlinks that leave its folder."""

from __future__ import annotations

import os

from mesh_factory import obj_with_subfolder_texture

from mme3dr.assets.closure import asset_closure, closure_sha256
from mme3dr.harness.generation import generate_batch
from mme3dr.models.folder import FolderModel
from mme3dr.models.protocol import GenerationRequest


def _req(tmp_path, case_id, i=0):
    return GenerationRequest(case_id, "a prompt", 0, i, tmp_path / "work")


def test_flat_folder_of_objs_gives_each_case_its_own_file(tmp_path):
    root = tmp_path / "gen"
    a = obj_with_subfolder_texture(root, "demo-000")
    b = obj_with_subfolder_texture(root, "demo-001")
    got = FolderModel(root).generate([_req(tmp_path, "demo-000"), _req(tmp_path, "demo-001")])
    assert [g.path for g in got] == [a, b] and not any(g.meta for g in got)
    assert closure_sha256(asset_closure(a)) != closure_sha256(asset_closure(b))


def test_folder_adapter_refuses_ambiguity_and_symlinks_leaving_it(tmp_path):
    root = tmp_path / "gen"
    root.mkdir()
    (root / "c1.glb").write_bytes(b"x")
    (root / "c1.obj").write_text("v 0 0 0\n")
    outside = tmp_path / "elsewhere.glb"
    outside.write_bytes(b"y")
    os.symlink(outside, root / "c2.glb")
    got = FolderModel(root).generate([_req(tmp_path, "c1"), _req(tmp_path, "c2")])
    assert "ambiguous" in got[0].meta["refused"] and "c1.obj" in got[0].meta["refused"]
    assert "symlink" in got[1].meta["refused"] and str(outside) in got[1].meta["refused"]


def test_refused_assets_are_recorded_with_their_reason(tmp_path):
    root = tmp_path / "gen"
    root.mkdir()
    outside = tmp_path / "elsewhere.glb"
    outside.write_bytes(b"y")
    os.symlink(outside, root / "c2.glb")
    (outcome,) = generate_batch(FolderModel(root), [_req(tmp_path, "c2")], None)
    assert outcome.failure == "asset_refused" and "outside" in outcome.detail


def test_a_folder_per_sample_keeps_side_files_of_the_same_name_apart(tmp_path):
    root = tmp_path / "gen"
    a = obj_with_subfolder_texture(root / "c1" / "0", "model")
    b = obj_with_subfolder_texture(root / "c1" / "1", "model")
    (b.parent / "model.mtl").write_text("newmtl skin\nKd 0 0 1\n")  # same name, other material
    got = FolderModel(root).generate([_req(tmp_path, "c1", 0), _req(tmp_path, "c1", 1)])
    assert [g.path for g in got] == [a, b] and not any(g.meta for g in got)
    assert closure_sha256(asset_closure(a)) != closure_sha256(asset_closure(b))
    (a.parent / "extra.ply").write_text("ply\n")  # two meshes in one sample folder: which one?
    (refused,) = FolderModel(root).generate([_req(tmp_path, "c1", 0)])
    assert "ambiguous" in refused.meta["refused"] and "c1/0/extra.ply" in refused.meta["refused"]
