"""The folder adapter: a missing case says the folder has no file for it; a folder matching no case
lists the files found and the names expected."""

from __future__ import annotations

from pathlib import Path

from mme3dr.models.folder import FolderModel, no_match_message
from mme3dr.models.protocol import GenerationRequest


def test_a_missing_case_says_the_folder_has_no_file_for_it(tmp_path: Path) -> None:
    (tmp_path / "demo-000.glb").write_bytes(b"glTF")
    model = FolderModel(tmp_path)
    found, missing = model.generate([GenerationRequest("demo-000", "p", 1, 0, tmp_path / "w0"),
                                     GenerationRequest("demo-001", "p", 2, 0, tmp_path / "w1")])
    assert found.path == tmp_path / "demo-000.glb" and found.meta == {}
    assert missing.meta["missing"].startswith(f"the folder {tmp_path} has no file for case demo-001 sample 0")
    expected = "demo-001_0.<ext>, demo-001/0.<ext>, demo-001/0/<name>.<ext>, demo-001.<ext>"
    assert expected in missing.meta["missing"]


def test_no_match_lists_the_files_found_and_the_names_expected(tmp_path: Path) -> None:
    for name in ("chair.glb", "rose.obj"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "timings.json").write_text("{}")
    keys = [("demo-000", 0), ("demo-001", 0)]
    msg = no_match_message(tmp_path, keys)
    assert msg is not None and "\n" not in msg
    assert "it holds chair.glb, rose.obj;" in msg and "timings.json" not in msg
    assert ("expected names like demo-000_0.<ext>, demo-000/0.<ext>, demo-000/0/<name>.<ext>, "
            "demo-000.<ext>") in msg
    (tmp_path / "demo-001.ply").write_bytes(b"x")
    assert no_match_message(tmp_path, keys) is None  # one match is enough: the rest are per-case failures


def test_the_harness_records_the_folders_own_reason(tmp_path: Path) -> None:
    from mme3dr.harness.generation import classify_return

    request = GenerationRequest("demo-001", "p", 2, 0, tmp_path / "w1")
    (outcome,) = classify_return([request], items=FolderModel(tmp_path).generate([request]), share=0.0)
    assert outcome.failure == "missing_output"
    assert outcome.detail.startswith(f"the folder {tmp_path} has no file for case demo-001 sample 0")
    assert "which does not exist" not in outcome.detail
