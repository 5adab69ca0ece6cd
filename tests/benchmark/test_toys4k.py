"""Toys4K sources: TRELLIS layout, obj zip, mesh folder, blend zip errors; frames and hash checks."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from mme3dr.benchmark.captions import read_captions_csv
from mme3dr.benchmark.manifest import load_manifest
from mme3dr.benchmark.taxonomy import Case
from mme3dr.benchmark.toys4k import Toys4KError, load_trellis_layout, open_source, resolve_references

CUP = Case("t-000", "stylized", "cup", "cup/cup_000/cup_000.blend")
FROG = Case("t-001", "biological", "frog", "frog/frog_001/frog_001.blend")


def make_trellis_layout(root: Path, n_views: int = 3) -> dict[str, str]:
    """A synthetic TRELLIS layout: metadata.csv + renders/<sha>/{NNN.png, transforms.json, mesh.ply}.

    The cup is complete and Z up (tall along +Z); the frog's render folder lacks mesh.ply.
    """
    shas = {}
    rows = ["sha256,file_identifier,captions"]
    for case, caps in ((CUP, ["A tall cup, long caption.", "A tall cup."]), (FROG, ["A frog."])):
        sha = hashlib.sha256(case.file_identifier.encode()).hexdigest()
        shas[case.case_id] = sha
        rows.append(f'{sha},{case.file_identifier},"{json.dumps(caps).replace(chr(34), chr(34) * 2)}"')
        d = root / "renders" / sha
        d.mkdir(parents=True)
        for i in range(n_views):
            Image.fromarray(np.zeros((8, 8, 4), np.uint8)).save(d / f"{i:03d}.png")
        (d / "transforms.json").write_text(json.dumps({"frames": []}))
        if case is CUP:
            trimesh.creation.box(extents=(0.2, 0.3, 1.0)).export(d / "mesh.ply")
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return shas


def test_synthetic_trellis_layout_loads_complete_objects_and_reports_incomplete(tmp_path):
    shas = make_trellis_layout(tmp_path)
    objects, problems = load_trellis_layout(tmp_path)
    assert [o.sha256 for o in objects] == [shas["t-000"]]
    assert objects[0].prompt == "A tall cup." and objects[0].n_views == 3
    assert len(problems) == 1 and "missing mesh.ply" in problems[0]
    refs = resolve_references([CUP, FROG], open_source("trellis", tmp_path))
    assert refs[0].ok and refs[0].up_axis == "z" and refs[0].path.name == "mesh.ply"
    assert refs[0].prompt == "A tall cup." and refs[0].render_dir == tmp_path / "renders" / shas["t-000"]
    assert not refs[1].ok and "missing mesh.ply" in refs[1].error


def test_real_trellis_rose_loads_with_second_caption_and_is_z_up(trellis_rose):
    (rose,), problems = load_trellis_layout(trellis_rose)
    assert problems == []
    assert rose.n_views == 24 and rose.prompt == rose.captions[1]
    assert rose.prompt.startswith("A deep red rose, with smooth curled petals")
    # The frame we declare for TRELLIS ground truth: Blender's Z up. The rose's stem is its long axis.
    extents = trimesh.load(rose.mesh_path).extents
    assert int(np.argmax(extents)) == 2


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_obj_zip_extracts_meshes_and_reports_absent_ones(tmp_path):
    obj = trimesh.creation.box().export(file_type="obj").encode()
    z = _zip(tmp_path / "toys4k_obj_files.zip", {"toys4k_obj_files/cup/cup_000/mesh.obj": obj})
    refs = resolve_references([CUP, FROG], open_source("obj-zip", z, cache_dir=tmp_path / "cache"))
    assert refs[0].ok and refs[0].up_axis == "y" and len(trimesh.load(refs[0].path).faces) == 12
    assert "frog/frog_001/mesh.obj: not in toys4k_obj_files.zip; re-download the zip" in refs[1].error


def test_missing_zip_says_where_to_get_toys4k(tmp_path):
    src = open_source("blend-zip", tmp_path / "toys4k_blend_files.zip")
    expected = r"toys4k_blend_files.zip not found at .*request Toys4K from its authors"
    with pytest.raises(Toys4KError, match=expected):
        resolve_references([CUP], src)


def test_wrong_zip_is_named_as_such(tmp_path):
    not_zip = tmp_path / "toys4k_blend_files.zip"
    not_zip.write_bytes(b"hello")
    with pytest.raises(Toys4KError, match="is not a zip file; expected the official toys4k_blend_files.zip"):
        resolve_references([CUP], open_source("blend-zip", not_zip))
    other = _zip(tmp_path / "other.zip", {"photos/a.jpg": b"x"})
    with pytest.raises(Toys4KError, match=r"holds no '<category>/<name>/\*.blend' files"):
        resolve_references([CUP], open_source("blend-zip", other))


def test_hash_mismatch_is_reported_and_other_objects_still_load(tmp_path):
    blend, frog_blend = b"BLENDER-v280 not really", b"BLENDER-v280 frog"
    z = _zip(tmp_path / "b.zip", {"toys4k_blend_files/cup/cup_000/cup_000.blend": blend,
                                  "toys4k_blend_files/frog/frog_001/frog_001.blend": frog_blend})
    wrong = Case(**{**CUP.to_dict(), "sha256": "0" * 64})
    frog_sha = hashlib.sha256(frog_blend).hexdigest()
    frog = Case(**{**FROG.to_dict(), "sha256": frog_sha})
    # The frog is already converted (warm cache), so this test needs no Blender.
    (tmp_path / "cache" / "glb").mkdir(parents=True)
    trimesh.creation.icosphere().export(tmp_path / "cache" / "glb" / f"{frog_sha}.glb")
    (tmp_path / "cache" / "glb" / f"{frog_sha}.json").write_text(json.dumps({"converter_version": 1}))
    src = open_source("blend-zip", z, cache_dir=tmp_path / "cache", blender="/nonexistent/blender")
    ref, frog_ref = resolve_references([wrong, frog], src)
    assert frog_ref.ok and frog_ref.up_axis == "y" and frog_ref.sha256 == frog_sha
    assert not ref.ok
    assert ref.error.startswith("cup/cup_000/cup_000.blend: sha256 ")
    assert "does not match the metadata's 000000000000…; re-download toys4k_blend_files.zip" in ref.error
    assert ref.sha256 == hashlib.sha256(blend).hexdigest()


def test_mesh_folder_finds_by_object_name_and_checks_sha256sums(tmp_path):
    trimesh.creation.box().export(tmp_path / "cup_000.glb")
    trimesh.creation.icosphere().export(tmp_path / "t-001.obj")
    (tmp_path / "SHA256SUMS").write_text(f"{'f' * 64}  t-001.obj\n")
    refs = resolve_references([CUP, FROG], open_source("folder", tmp_path, up_axis="z"))
    assert refs[0].ok and refs[0].path.name == "cup_000.glb" and refs[0].up_axis == "z"
    assert refs[1].error == "t-001.obj: sha256 does not match SHA256SUMS; re-copy it"


def test_captions_attach_before_resolving(tmp_path):
    make_trellis_layout(tmp_path / "layout")
    table = read_captions_csv(tmp_path / "layout" / "metadata.csv")
    trimesh.creation.box().export(tmp_path / "cup_000.glb")
    (ref,) = resolve_references([CUP], open_source("folder", tmp_path), captions=table)
    assert ref.prompt == "A tall cup." and ref.ok


def test_manifest_cases_resolve_against_a_folder(tmp_path):
    m = load_manifest("mme3dr-v1")
    first = m.cases[0]
    cat, name = first.file_identifier.split("/")[:2]
    (tmp_path / cat / name).mkdir(parents=True)
    trimesh.creation.box().export(tmp_path / cat / name / f"{name}.glb")
    refs = resolve_references(m.cases[:3], open_source("folder", tmp_path))
    assert refs[0].ok and sum(r.ok for r in refs) == 1


def test_unknown_kind_and_bad_up_axis_are_rejected(tmp_path):
    with pytest.raises(Toys4KError, match="unknown Toys4K source kind 'zip'"):
        open_source("zip", tmp_path)
    with pytest.raises(Toys4KError, match="up_axis must be 'y' or 'z'"):
        open_source("folder", tmp_path, up_axis="x")


def test_identifier_escaping_the_cache_is_refused_per_case(tmp_path):
    trimesh.creation.box().export(tmp_path / "cup_000.glb")
    evil = Case("t-009", "stylized", "cup", "../../etc/passwd")
    refs = resolve_references([evil, CUP], open_source("folder", tmp_path))
    assert "not a Toys4K identifier" in refs[0].error and refs[1].ok
