"""Verification tiers beyond validation: ``re-scored`` and ``reproduced``.

- ``re-scored``: the verifier re-renders and re-scores the *submitted assets* with the pinned protocol,
  by running the real pipeline (``mme3dr.harness.evaluate`` with the ``folder`` adapter over the bundle's
  assets, the profile the results claim, the eval24 rig) on the verifier's machine, then compares every
  reported metric (overall, per category, per asset) with the submission within ``RESCORE_TOLERANCE``.
  This catches inflated metrics that validation cannot: KD and FD need the features.
- ``reproduced``: the verifier regenerated the assets with the model's adapter (``mme3dr evaluate``
  with the same model, benchmark and profile) and passes that run folder; its metrics must agree with
  the submission within ``REPRODUCE_TOLERANCE`` (looser: sampling is not bit-exact across machines).

Only this module's ``re-scored`` path imports the renderer and the feature extractors, lazily inside
the function; importing ``leaderboard.verify`` stays light.
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from leaderboard.entry import Verification
from leaderboard.validate import validate_bundle


class VerificationError(ValueError):
    """Verification could not run (bad arguments, missing reference data); the message says what to do."""


@dataclass(frozen=True)
class Tolerance:
    """A reported value passes when ``|rescored - submitted| <= abs + rel * |submitted|``."""

    abs: float
    rel: float = 0.0

    def bound(self, submitted: float) -> float:
        return self.abs + self.rel * abs(submitted)


#: Stated re-scoring tolerances (docs/leaderboard.md). Same renderer family and weights: differences
#: come only from float summation order and rasteriser/driver rounding, well below these.
RESCORE_TOLERANCE: dict[str, Tolerance] = {
    "clip": Tolerance(0.5), "reference_clip": Tolerance(0.5),  # CLIP points (0-100 scale)
    "kd_incep": Tolerance(0.01, 0.05), "kd_dinov2": Tolerance(0.05, 0.05),  # KD x100
    "fd_incep": Tolerance(0.5, 0.02), "fd_dinov2": Tolerance(0.5, 0.02),
}
#: Regenerating samples anew moves the metrics more than re-scoring the same files.
REPRODUCE_TOLERANCE: dict[str, Tolerance] = {
    "clip": Tolerance(1.0), "reference_clip": Tolerance(0.5),
    "kd_incep": Tolerance(0.05, 0.2), "kd_dinov2": Tolerance(0.5, 0.2),
    "fd_incep": Tolerance(2.0, 0.1), "fd_dinov2": Tolerance(2.0, 0.1),
}
_DEFAULT = Tolerance(1e-6, 0.02)


@dataclass(frozen=True)
class OverridesForTesting:
    """FOR TESTS ONLY: re-score under another profile and tolerate some validation checks.

    No real weights can run in CI, so the tests re-score a small synthetic submission with the
    ``smoke`` suite. A record made with overrides says so in ``notes`` and ``leaderboard add``
    refuses it.
    """

    profile: str
    tolerate_checks: frozenset[str] = frozenset({"eligibility"})
    limit: int | None = None


def compare_metrics(submitted: dict, rescored: dict, metrics: set[str],
                    tolerances: dict[str, Tolerance]) -> tuple[dict, list[str]]:
    """Compare two ``results.results`` mappings on every reported metric (``metrics``: the names in the
    submission's ``higher_is_better``), for every task (overall and per category).

    Returns ``(comparisons, problems)``: ``comparisons[task/metric] = {submitted, rescored, tolerance}``.
    A metric missing or non-finite on either side is a problem (fail closed).
    """
    comparisons, problems = {}, []
    for task in sorted(submitted):
        for name, value in sorted(submitted[task].items()):
            if name not in metrics:
                continue  # CI bounds, std, counts, aliases
            tol = tolerances.get(name, _DEFAULT)
            got = rescored.get(task, {}).get(name)
            key = f"{task}/{name}"
            if not isinstance(value, (int, float)) or not isinstance(got, (int, float)) or \
                    not (math.isfinite(value) and math.isfinite(got)):
                problems.append(f"{key}: submitted {value!r}, re-scored {got!r}")
                continue
            comparisons[key] = {"submitted": float(value), "rescored": float(got),
                                "tolerance": tol.bound(value)}
            if abs(got - value) > tol.bound(value):
                problems.append(f"{key}: submitted {value:.6g}, re-scored {got:.6g} "
                                f"(tolerance ±{tol.bound(value):.3g})")
    return comparisons, problems


def compare_samples(submitted: list, rescored: list, tolerances: dict[str, Tolerance]) -> list[str]:
    """Per (case, sample): same asset, same ok/failed status, per-asset metrics within tolerance."""
    mine = {(s.case_id, s.sample_index): s for s in rescored}
    problems = []
    for s in submitted:
        r = mine.get((s.case_id, s.sample_index))
        where = f"case {s.case_id} sample {s.sample_index}"
        if r is None:
            problems.append(f"{where}: not re-scored")
        elif (s.status == "ok") != (r.status == "ok"):
            problems.append(f"{where}: submitted {s.status}, re-scored {r.status} ({r.failure or 'ok'})")
        elif s.asset_sha256 and r.asset_sha256 and s.asset_sha256 != r.asset_sha256:
            problems.append(f"{where}: re-scored a different asset")
        else:
            for name, value in s.metrics.items():
                got = r.metrics.get(name)
                tol = tolerances.get(name, _DEFAULT)
                if value is not None and (got is None or abs(got - value) > tol.bound(value)):
                    problems.append(f"{where}: {name} submitted {value:.6g}, re-scored {got}")
    return problems


def stage_assets(extracted: Path, manifest, samples: list, dest: Path) -> Path:
    """Lay the bundle's assets out for the ``folder`` adapter: ``<case_id>/<sample_index>.<ext>`` for a
    single-file asset, and ``<case_id>/<sample_index>/`` holding the asset's whole folder (its file under
    its own name, with the OBJ materials, glTF buffers and images it references, sub-folders included)
    for an asset with side files, so two samples of one case never overwrite each other's side files."""
    by_sha = {a.sha256: a for a in manifest.assets}
    for s in samples:
        a = by_sha.get(s.asset_sha256) if s.asset_sha256 else None
        if a is None or a.path is None:
            continue
        main = extracted / a.path
        case_dir = dest / s.case_id
        case_dir.mkdir(parents=True, exist_ok=True)
        if main.parent.name == a.sha256:  # a folder with the files it references (sub-folders too)
            shutil.copytree(main.parent, case_dir / str(s.sample_index), dirs_exist_ok=True)
        else:
            shutil.copyfile(main, case_dir / f"{s.sample_index}.{a.format}")
    return dest


def rescore(report, *, profile: str, reference: Path | None, captions: Path | None, cache_dir: Path,
            weights_dir: Path | None, device: str, limit: int | None = None, progress=None):
    """Run the pinned pipeline over the submitted assets; return the verifier's ``(results, samples)``."""
    from mme3dr.benchmark.demo import DEMO_NAME
    from mme3dr.harness.evaluate import EvalConfig, evaluate
    from mme3dr.harness.inputs import BenchmarkInputError
    from mme3dr.results import load_results, read_samples

    res = report.results
    if not report.manifest.assets_included:
        raise VerificationError("this bundle was made with --no-assets: re-scoring needs the assets; "
                                "ask the submitter for a bundle with assets, or verify at tier 'reproduced'")
    bench = "demo" if res.benchmark.name == DEMO_NAME else res.benchmark.name
    work = Path(cache_dir)
    staged = stage_assets(report.extracted, report.manifest, report.samples, work / "staged-assets")
    out = work / "rescored-run"
    cfg = EvalConfig(model=f"folder:{staged}", out=out, benchmark=bench, profile=profile, toys4k=reference,
                     captions=captions, limit=limit, cache_dir=work / "cache", weights_dir=weights_dir,
                     device=device, overwrite=True, report=False,
                     samples_per_prompt=max((s.sample_index for s in report.samples), default=0) + 1)
    try:
        evaluate(cfg, progress)
    except BenchmarkInputError as exc:
        raise VerificationError(f"cannot load the reference objects for {bench}: {exc}") from None
    return load_results(out / "results.json"), read_samples(out / "samples.jsonl")


def _check_regenerated(run_dir: Path, report, tmp: Path, tolerated: frozenset[str]):
    """Validate the verifier's own run like a submission (complete, eligible, right seeds and
    manifest), by packing it without assets; return its results and the problems found."""
    from leaderboard.pack import pack_run

    if not (run_dir / "results.json").is_file():
        raise VerificationError(f"{run_dir} has no results.json: pass a finished `mme3dr evaluate` folder")
    own = tmp / "regenerated.tar.gz"
    pack_run(run_dir, own, report.manifest.submitter, include_assets=False, n_thumbnails=0)
    own_report = validate_bundle(own)
    problems = [f"regenerated run: {p}" for p in own_report.problems if p.check not in tolerated]
    if own_report.results is None:
        raise VerificationError("the regenerated run does not validate:\n  - " + "\n  - ".join(problems))
    return own_report.results, problems


def verify_bundle(bundle: Path, *, tier: str, verifier: str, reference: Path | None = None,
                  captions: Path | None = None, regenerated: Path | None = None,
                  cache_dir: Path | None = None, weights_dir: Path | None = None, device: str = "cpu",
                  date: str | None = None, testing: OverridesForTesting | None = None,
                  progress=None) -> Verification:
    """Validate ``bundle``, then verify it at ``tier``; returns the record (``passed`` says the verdict).

    ``progress(stage, done, total)`` is called by the re-scoring pipeline (``mme3dr.harness.evaluate``).
    """
    if tier not in ("re-scored", "reproduced"):
        raise VerificationError(f"--tier must be 're-scored' or 'reproduced', not {tier!r} "
                                "('self-reported' needs no verification: `leaderboard add` alone)")
    if tier == "reproduced" and regenerated is None:
        raise VerificationError("--tier reproduced needs --regenerated RUN_DIR: your own `mme3dr evaluate` "
                                "run of the same model, benchmark and profile")
    with tempfile.TemporaryDirectory(prefix="mme3dr-verify-") as tmp:
        report = validate_bundle(bundle, workdir=Path(tmp) / "bundle")
        tolerated = testing.tolerate_checks if testing else frozenset()
        blocking = [p for p in report.problems if p.check not in tolerated]
        record = Verification(tier=tier, bundle_sha256=report.bundle_sha256, passed=False, verifier=verifier,
                              date=date or dt.datetime.now(dt.timezone.utc).date().isoformat())
        if report.results is None or blocking:
            record.problems = ["the bundle does not validate:"] + [str(p) for p in report.problems]
            return record
        res = report.results
        if testing is not None:
            record.notes["testing_overrides"] = (f"profile={testing.profile}, tolerated checks="
                                                 f"{sorted(testing.tolerate_checks)}, limit={testing.limit}: "
                                                 "a test of the verifier, not a leaderboard verification")
        if tier == "re-scored":
            tolerances = RESCORE_TOLERANCE
            work = Path(cache_dir or Path(tmp) / "work")
            mine, mine_samples = rescore(report, profile=testing.profile if testing else res.profile,
                                         reference=reference, captions=captions, cache_dir=work,
                                         weights_dir=weights_dir, device=device,
                                         limit=testing.limit if testing else None, progress=progress)
            sample_problems = compare_samples(report.samples, mine_samples, tolerances)
            record.notes["method"] = (f"re-rendered and re-scored the submitted assets with mme3dr "
                                      f"{mine.mme3dr_version}, profile {mine.profile}, "
                                      f"rig {mine.renderer.rig}")
        else:
            tolerances = REPRODUCE_TOLERANCE
            mine, sample_problems = _check_regenerated(Path(regenerated), report, Path(tmp), tolerated)
            for field in ("profile", "protocol_version", "rig_hash"):
                if getattr(mine, field) != getattr(res, field):
                    sample_problems.append(f"regenerated run has {field} {getattr(mine, field)!r}, "
                                           f"the submission {getattr(res, field)!r}")
            if mine.benchmark.manifest_sha256 != res.benchmark.manifest_sha256:
                sample_problems.append("regenerated run used another manifest")
            record.notes["method"] = f"regenerated by the verifier with adapter {mine.adapter.spec!r}"
        reported = {m for facts in res.higher_is_better.values() for m in facts}
        comparisons, metric_problems = compare_metrics(res.results, mine.results, reported, tolerances)
        record.comparisons = comparisons
        record.tolerance = {k: v.abs for k, v in tolerances.items()}
        record.problems = metric_problems + sample_problems[:50]
        record.passed = not record.problems
        return record
