"""Verification tiers: re-scoring reproduces honest metrics and catches inflated ones.

The end-to-end test runs the real pipeline twice (a submitter's run, then the verifier's re-render and
re-score of the submitted assets) on the built-in demo with the tiny random-initialised ``smoke``
suite, because no real weights are available offline. It therefore calls ``verify_bundle`` with
``OverridesForTesting`` (profile ``smoke``, tolerating the eligibility and case-coverage checks that a
3-case demo run fails by design): this says so in the record, and ``leaderboard add`` refuses such a
record.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bundle_factory import make_run, submitter, tamper

from leaderboard.admission import add_bundle
from leaderboard.entry import Verification
from leaderboard.registry import RegistryError
from leaderboard.verify import (
    RESCORE_TOLERANCE,
    OverridesForTesting,
    VerificationError,
    compare_metrics,
    compare_samples,
    stage_assets,
    verify_bundle,
)
from mme3dr.results import SampleRecord

SHA = "c" * 64


def _sample(clip: float, status: str = "ok") -> SampleRecord:
    return SampleRecord(case_id="c1", category="spatial", sample_index=0, seed=1, prompt="p",
                        prompt_sha256=SHA, asset_sha256=SHA, status=status,
                        metrics={"clip": clip} if status == "ok" else {},
                        failure=None if status == "ok" else "corrupt_file")


def test_compare_metrics_passes_within_tolerance_and_flags_inflation() -> None:
    submitted = {"b": {"clip": 25.0, "clip_ci95_low": 24.0, "kd_incep": 0.30, "n": 10},
                 "b/spatial": {"clip": 26.0}}
    honest = {"b": {"clip": 25.2, "clip_ci95_low": 20.0, "kd_incep": 0.31, "n": 10},
              "b/spatial": {"clip": 25.9}}
    comparisons, problems = compare_metrics(submitted, honest, {"clip", "kd_incep"}, RESCORE_TOLERANCE)
    assert problems == [] and set(comparisons) == {"b/clip", "b/kd_incep", "b/spatial/clip"}
    inflated = {"b": {"clip": 22.0, "kd_incep": 0.45}, "b/spatial": {"clip": 26.0}}
    _, problems = compare_metrics(submitted, inflated, {"clip", "kd_incep"}, RESCORE_TOLERANCE)
    assert len(problems) == 2 and problems[0].startswith("b/clip: submitted 25, re-scored 22")
    _, problems = compare_metrics(submitted, {"b": {"clip": 25.0}}, {"clip", "kd_incep"}, RESCORE_TOLERANCE)
    assert any("b/kd_incep" in p and "None" in p for p in problems)  # missing re-score fails closed


def test_compare_samples_flags_status_and_score_changes() -> None:
    tol = RESCORE_TOLERANCE
    assert compare_samples([_sample(20.0)], [_sample(20.3)], tol) == []
    assert "clip submitted 20" in compare_samples([_sample(20.0)], [_sample(17.0)], tol)[0]
    assert "re-scored failed" in compare_samples([_sample(20.0)], [_sample(0, "failed")], tol)[0]


def test_verify_refuses_bad_arguments(good_bundle: Path) -> None:
    with pytest.raises(VerificationError, match="'re-scored' or 'reproduced'"):
        verify_bundle(good_bundle, tier="self-reported", verifier="v")
    with pytest.raises(VerificationError, match="--regenerated RUN_DIR"):
        verify_bundle(good_bundle, tier="reproduced", verifier="v")


def test_reproduced_tier_compares_with_the_verifiers_own_run(good_bundle: Path, run_template: Path) -> None:
    record = verify_bundle(good_bundle, tier="reproduced", verifier="Repro Lab", regenerated=run_template)
    assert record.passed, record.problems
    clip = record.comparisons["mme3dr-v1/clip"]
    assert clip["rescored"] == clip["submitted"]


def test_reproduced_tier_fails_when_the_regenerated_run_disagrees(good_bundle: Path, tmp_path: Path) -> None:
    # A valid, complete regeneration whose assets score about 5 CLIP points lower.
    other = make_run(tmp_path / "other", seed=3, with_renders=False, clip_shift=-5.0)
    record = verify_bundle(good_bundle, tier="reproduced", verifier="Repro Lab", regenerated=other)
    assert not record.passed and any(p.startswith("mme3dr-v1/clip") for p in record.problems)
    assert not any(p.startswith("regenerated run:") for p in record.problems)


def test_reproduced_tier_refuses_an_incomplete_regeneration(good_bundle: Path, tmp_path: Path) -> None:
    other = make_run(tmp_path / "other", seed=4, with_renders=False)
    lines = (other / "samples.jsonl").read_text().splitlines()
    (other / "samples.jsonl").write_text("\n".join(lines[:-1]) + "\n")  # one case dropped
    record = verify_bundle(good_bundle, tier="reproduced", verifier="Repro Lab", regenerated=other)
    assert not record.passed
    assert any(p.startswith("regenerated run: [samples]") for p in record.problems)


@pytest.mark.slow
def test_rescored_reproduces_honest_metrics_and_catches_inflated_ones(tmp_path: Path) -> None:
    from leaderboard.pack import pack_run
    from leaderboard.validate import validate_bundle
    from mme3dr.harness.evaluate import EvalConfig, evaluate

    # The submitter: a real (3-case demo, smoke-suite) evaluation, packed into a bundle.
    run = tmp_path / "run"
    evaluate(EvalConfig(model="primitives", out=run, benchmark="demo", profile="smoke", limit=3,
                        cache_dir=tmp_path / "submitter-cache"))
    bundle = tmp_path / "honest.tar.gz"
    pack_run(run, bundle, submitter(model_name="Primitives"))
    tolerate = frozenset({"eligibility", "cases"})
    testing = OverridesForTesting(profile="smoke", tolerate_checks=tolerate, limit=3)
    verifier_cache = tmp_path / "verifier"  # the verifier's own renders: never the submitter's cache

    record = verify_bundle(bundle, tier="re-scored", verifier="Verifier Lab", cache_dir=verifier_cache,
                           testing=testing)
    assert record.passed, record.problems
    for metric in ("clip", "kd_incep", "kd_dinov2", "fd_incep", "fd_dinov2"):
        assert f"mme3dr-demo/{metric}" in record.comparisons
    assert "testing_overrides" in record.notes

    # An attacker raises every per-asset CLIP by 3 points and halves KD_incep, then fixes every hash and
    # the CLIP aggregates: validation can no longer tell, re-scoring can.
    def inflate(d: Path) -> None:
        lines = []
        for line in (d / "samples.jsonl").read_text().splitlines():
            rec = json.loads(line)
            if rec["metrics"].get("clip") is not None:
                rec["metrics"]["clip"] += 3.0
            lines.append(json.dumps(rec, sort_keys=True, separators=(",", ":")))
        (d / "samples.jsonl").write_text("\n".join(lines) + "\n")
        res = json.loads((d / "results.json").read_text())
        for task, metrics in res["results"].items():
            for key in ("clip", "clip_ci95_low", "clip_ci95_high"):
                if key in metrics:
                    metrics[key] += 3.0
            if task == "mme3dr-demo":
                metrics["kd_incep"] *= 0.5
        (d / "results.json").write_text(json.dumps(res))

    inflated = tamper(bundle, tmp_path / "attack", inflate)
    assert {p.check for p in validate_bundle(inflated).problems} <= {"eligibility", "cases"}
    caught = verify_bundle(inflated, tier="re-scored", verifier="Verifier Lab", cache_dir=verifier_cache,
                           testing=testing)
    assert not caught.passed
    assert any(p.startswith("mme3dr-demo/clip: submitted") for p in caught.problems)
    assert any("clip submitted" in p for p in caught.problems)  # per asset too

    # A record made with testing overrides can never put a row on the leaderboard.
    with pytest.raises(RegistryError, match="testing overrides|never leaderboard-eligible"):
        add_bundle(bundle, tmp_path / "registry", verification=Verification(**record.model_dump()))


def test_staging_keeps_each_samples_side_files(tmp_path: Path) -> None:
    """Two samples of one case whose OBJs both reference ``material.mtl`` (trimesh's default name), with
    other colours: each is staged in its own folder, so neither is re-scored with the other's material."""
    from types import SimpleNamespace

    from mme3dr.models.folder import FolderModel
    from mme3dr.models.protocol import GenerationRequest

    extracted = tmp_path / "bundle"
    assets, samples = [], []
    for i, kd in enumerate(("1 0 0", "0 0 1")):
        sha = f"{i}" * 64
        d = extracted / "assets" / sha
        d.mkdir(parents=True)
        (d / "material.mtl").write_text(f"newmtl m\nKd {kd}\n")
        (d / "model.obj").write_text("mtllib material.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nusemtl m\nf 1 2 3\n")
        assets.append(SimpleNamespace(sha256=sha, path=f"assets/{sha}/model.obj", format="obj"))
        samples.append(SimpleNamespace(case_id="demo-000", sample_index=i, asset_sha256=sha))
    single = extracted / "assets" / "single.glb"
    single.write_bytes(b"glTF")
    assets.append(SimpleNamespace(sha256="f" * 64, path="assets/single.glb", format="glb"))
    samples.append(SimpleNamespace(case_id="demo-001", sample_index=0, asset_sha256="f" * 64))
    staged = stage_assets(extracted, SimpleNamespace(assets=assets), samples, tmp_path / "staged")
    assert (staged / "demo-000" / "0" / "material.mtl").read_text().endswith("Kd 1 0 0\n")
    assert (staged / "demo-000" / "1" / "material.mtl").read_text().endswith("Kd 0 0 1\n")
    assert (staged / "demo-001" / "0.glb").read_bytes() == b"glTF"
    model = FolderModel(staged)
    got = model.generate([GenerationRequest(c, "p", 0, i, tmp_path / "w")
                          for c, i in (("demo-000", 0), ("demo-000", 1), ("demo-001", 0))])
    assert [g.path.relative_to(staged).as_posix() for g in got] == [
        "demo-000/0/model.obj", "demo-000/1/model.obj", "demo-001/0.glb"]
    assert not any(g.meta for g in got)
