"""`--benchmark mme3dr-v1 --limit 10` against a synthetic Toys4K laid out like the real data (Must show 1).

The test builds what a user downloads: ``toys4k_obj_files.zip`` (``<category>/<name>/mesh.obj``) and
TRELLIS's ``Toys4k.csv`` (``sha256, file_identifier, captions`` as a JSON list, longest first), for the
first ten cases of the packaged v1 manifest; one object is left out of the zip on purpose.
"""

from __future__ import annotations

import csv
import hashlib
import json
import zipfile
from pathlib import Path, PurePosixPath

import trimesh
from evaluate_support import FAST, evaluate_cmd, run_cli

from mme3dr.benchmark.manifest import load_manifest
from mme3dr.models.protocol import derive_seed
from mme3dr.results import load_results, read_samples


def build_synthetic_toys4k(root: Path, n: int = 10, leave_out: int = 9) -> tuple[Path, Path, list]:
    cases = load_manifest("mme3dr-v1").cases[:n]
    zip_path = root / "toys4k_obj_files.zip"
    csv_path = root / "Toys4k.csv"
    with zipfile.ZipFile(zip_path, "w") as zf, open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sha256", "file_identifier", "captions"])
        for k, case in enumerate(cases):
            cat, name = PurePosixPath(case.file_identifier).parts[:2]
            caption = f"A {case.toys4k_category} number {k}"
            writer.writerow([hashlib.sha256(name.encode()).hexdigest(), case.file_identifier,
                             json.dumps([f"{caption}, described at length with many words.", f"{caption}.",
                                         case.toys4k_category])])
            if k == leave_out:
                continue
            mesh = trimesh.creation.box(extents=(1.0, 0.5 + 0.1 * k, 0.3)) if k % 2 else \
                trimesh.creation.icosphere(subdivisions=2, radius=0.5)
            zf.writestr(f"toys4k_obj_files/{cat}/{name}/mesh.obj", trimesh.exchange.obj.export_obj(mesh))
    return zip_path, csv_path, list(cases)


def test_mme3dr_v1_limit_10_on_a_synthetic_toys4k(tmp_path: Path):
    zip_path, csv_path, cases = build_synthetic_toys4k(tmp_path)
    out = tmp_path / "run"
    proc = run_cli(evaluate_cmd(out, "--model", "primitives", "--benchmark", "mme3dr-v1", "--limit", "10",
                                "--toys4k", str(zip_path), "--captions", str(csv_path), "--no-report", *FAST))
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = load_results(out / "results.json")
    samples = read_samples(out / "samples.jsonl")
    assert [s.case_id for s in samples] == [c.case_id for c in cases]
    assert res.benchmark.name == "mme3dr-v1" and res.benchmark.n_cases == 249
    assert res.benchmark.manifest_sha256 == load_manifest("mme3dr-v1").sha256
    assert res.n_samples["mme3dr-v1"] == {"original": 249, "effective": 10}
    assert any("--limit 10" in r for r in res.ineligible_reasons)
    assert any("1 reference object(s) missing" in r for r in res.ineligible_reasons)
    for k, s in enumerate(samples):
        assert s.seed == derive_seed("mme3dr-v1", s.case_id, 0)
        assert s.prompt == f"A {cases[k].toys4k_category} number {k}."  # captions[1]
        assert s.prompt_sha256 == hashlib.sha256(s.prompt.encode()).hexdigest()
    assert samples[9].failure == "reference_missing" and "mesh.obj" in samples[9].failure_detail
    assert all(s.status == "ok" for s in samples[:9])
    assert res.results["mme3dr-v1"]["n"] == 9 and res.failures == {"reference_missing": 1}


def test_mme3dr_v1_without_captions_says_what_to_pass(tmp_path: Path):
    zip_path, _, _ = build_synthetic_toys4k(tmp_path, n=2)
    proc = run_cli(evaluate_cmd(tmp_path / "run", "--model", "primitives", "--benchmark", "mme3dr-v1",
                                "--toys4k", str(zip_path), "--captions", str(tmp_path / "nope.csv"), *FAST))
    assert proc.returncode == 2 and "captions file not found" in proc.stderr and "--captions" in proc.stderr
