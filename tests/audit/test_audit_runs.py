"""The frame audit on real demo runs (Must show 3): turned ground truth is flagged with the right turn;
the same assets unturned, and `primitives`, are not; the audit never changes a score."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from demo_runs import run_cli

from mme3dr.audit import audit_run, record_frame_audit
from mme3dr.results import strip_volatile


def _audit_json(run: Path) -> dict:
    proc = run_cli(["audit", str(run), "--json"])
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_turned_ground_truth_is_flagged_with_the_right_rotation(turned_ground_truth_run: Path):
    doc = _audit_json(turned_ground_truth_run)
    assert doc["flagged"] is True and doc["rotation"] == "+90° about X"
    assert doc["share"] > 0.5 and doc["n"] == 15
    # evaluate ran it after scoring: results.json, the console and the report all say so
    recorded = json.loads((turned_ground_truth_run / "results.json").read_text())["frame_audit"]
    assert recorded["flagged"] and recorded["rotation"] == "+90° about X"
    assert "declare up_axis=z" in recorded["message"]
    log = (turned_ground_truth_run.parent / "ground-truth-turned.log").read_text()
    assert "warning: generated assets look turned +90° about X" in log
    report = (turned_ground_truth_run / "report" / "index.html").read_text()
    assert "Frame audit: generated assets look turned +90° about X" in report


def test_unturned_ground_truth_and_primitives_are_not_flagged(ground_truth_run: Path, primitives_run: Path):
    for run, name in ((ground_truth_run, "ground-truth"), (primitives_run, "primitives")):
        doc = _audit_json(run)
        assert doc["flagged"] is False and doc["rotation"] is None and doc["n"] == 15, (run, doc)
        assert json.loads((run / "results.json").read_text())["frame_audit"]["flagged"] is False
        assert "warning: generated assets look turned" not in (run.parent / f"{name}.log").read_text()


def test_the_audit_never_changes_a_score(turned_ground_truth_run: Path, tmp_path: Path):
    copy = tmp_path / "run"
    shutil.copytree(turned_ground_truth_run, copy, ignore=shutil.ignore_patterns(".lock"))
    before = json.loads((copy / "results.json").read_text())
    with pytest.warns(UserWarning, match=r"look turned \+90° about X"):
        after = record_frame_audit(copy, {k: v for k, v in before.items() if k != "frame_audit"})
    assert strip_volatile(after) == strip_volatile(before)
    assert json.loads((copy / "results.json").read_text()) == after
    assert (copy / "samples.jsonl").read_bytes() == (turned_ground_truth_run / "samples.jsonl").read_bytes()


def test_a_folder_that_is_not_a_run_is_one_clear_error(tmp_path: Path):
    proc = run_cli(["audit", str(tmp_path)])
    assert proc.returncode == 2 and "no such results file" in proc.stderr


def test_audit_run_counts_samples_whose_files_are_gone(primitives_run: Path, tmp_path: Path):
    copy = tmp_path / "run"
    shutil.copytree(primitives_run, copy, ignore=shutil.ignore_patterns(".lock", "assets"))
    result = audit_run(copy)
    assert result.n == 0 and not result.flagged
    assert result.skipped == {"asset missing from the store": 15}


def test_evaluate_audits_an_evenly_spaced_subset_and_resumes_from_its_cache(turned_ground_truth_run: Path,
                                                                             tmp_path: Path, monkeypatch):
    """``max_samples`` checks that many samples, first and last included, and still finds the turn; the
    per-sample IoUs land in the run's cache, so a second audit draws nothing and decides the same; a
    corrupt cache is recomputed, never trusted."""
    from mme3dr.audit import frame
    from mme3dr.results import load_results, read_samples

    copy = tmp_path / "run"
    shutil.copytree(turned_ground_truth_run, copy, ignore=shutil.ignore_patterns(".lock", frame.AUDIT_CACHE))
    results = load_results(copy / "results.json")
    samples = read_samples(copy / results.samples_file)
    dirs = frame._render_dirs(copy)
    drawn = []
    real = frame._generated_silhouettes
    monkeypatch.setattr(frame, "_generated_silhouettes", lambda *a: drawn.append(a[1]) or real(*a))
    first = frame.audit_samples(copy, samples, results.renderer.rig, dirs, max_samples=5)
    assert (first.n, first.of, first.flagged, first.rotation) == (5, 15, True, "+90° about X")
    assert len(drawn) == 5 and frame._evenly_spaced(list(range(15)), 5) == [0, 4, 7, 10, 14]
    cached = json.loads((copy / frame.AUDIT_CACHE).read_text())
    assert cached["version"] == frame.AUDIT_VERSION and len(cached["ious"]) == 5
    drawn.clear()
    again = frame.audit_samples(copy, samples, results.renderer.rig, dirs, max_samples=5)
    assert drawn == [] and again.to_dict() | {"seconds": 0} == first.to_dict() | {"seconds": 0}
    (copy / frame.AUDIT_CACHE).write_text('{"version": 1, "ious": {"x": "not a list"')
    every = frame.audit_samples(copy, samples, results.renderer.rig, dirs)
    assert len(drawn) == 15 and (every.n, every.of, every.flagged) == (15, 15, True)
