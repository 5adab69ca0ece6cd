"""The submissions registry: ``submissions/<benchmark>/<model>__<revision>/`` folders of accepted bundles.

Each folder holds what the site needs and what a reader needs to re-check it: ``entry.json`` (who,
when, tier, hashes), the bundle's ``bundle.json``, ``results.json`` and ``samples.jsonl`` byte for
byte, and its thumbnails. Assets are not kept here (they stay in the submitted bundle, named by its
sha256). Adding re-validates the bundle against the registry, so the same asset set cannot come back
under another name.

Light module: standard library + pydantic.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from leaderboard.bundle import MANIFEST_NAME, RESULTS_NAME, SAMPLES_NAME, Submitter
from leaderboard.rows import LeaderboardRow, MetricValue, Tier

ENTRY_NAME = "entry.json"
#: The registry inside this package (the leaderboard repository's own ``leaderboard/submissions``).
DEFAULT_REGISTRY = Path(__file__).resolve().parent / "submissions"


class RegistryError(ValueError):
    """The registry refused an operation; the message says why and what to do."""


class Verification(BaseModel):
    """The record of a verification beyond validation (``leaderboard verify``)."""

    model_config = ConfigDict(extra="forbid")

    tier: Tier
    bundle_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    passed: bool
    verifier: str = Field(min_length=1, max_length=200)
    date: str
    tolerance: dict[str, float] = Field(default_factory=dict)
    comparisons: dict[str, dict[str, float | None]] = Field(default_factory=dict)
    problems: list[str] = Field(default_factory=list)
    notes: dict[str, str] = Field(default_factory=dict)


class Entry(BaseModel):
    """``entry.json``."""

    model_config = ConfigDict(extra="forbid")

    benchmark: str
    slug: str
    submitter: Submitter
    tier: Tier
    generated_by: str
    scored_by: str
    added: str = Field(description="date the bundle was accepted (YYYY-MM-DD)")
    bundle_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    asset_set_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    verification: Verification | None = None


def slugify(text: str) -> str:
    """A folder-safe version of a name: ASCII letters, digits, ``.``, ``-``, ``_`` only."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:80]
    return slug or "unnamed"


def entry_slug(submitter: Submitter) -> str:
    return f"{slugify(submitter.model_name)}__{slugify(submitter.revision)}"


def iter_entries(registry: Path) -> list[tuple[Path, Entry]]:
    """Every entry in the registry, sorted by folder (a broken ``entry.json`` is an error, not skipped)."""
    out = []
    for path in sorted(Path(registry).glob(f"*/*/{ENTRY_NAME}")):
        try:
            out.append((path.parent, Entry.model_validate_json(path.read_bytes())))
        except ValueError as exc:
            raise RegistryError(f"{path} is not a valid registry entry: {exc}") from None
    return out


def find_same_assets(registry: Path, benchmark: str, asset_set: str | None) -> tuple[str, str] | None:
    """(model, revision) of the entry that already submitted this asset set on ``benchmark``, if any."""
    if asset_set is None or not Path(registry).is_dir():
        return None
    for _, entry in iter_entries(registry):
        if entry.benchmark == benchmark and entry.asset_set_sha256 == asset_set:
            return entry.submitter.model_name, entry.submitter.revision
    return None


def add_bundle(bundle: Path, registry: Path = DEFAULT_REGISTRY, *, verification: Verification | None = None,
               date: str | None = None, replace: bool = False) -> Path:
    """Validate ``bundle`` against the registry and file it; return the entry folder.

    Raises ``RegistryError`` listing the problems when the bundle is not valid, when the verification
    record belongs to another bundle or did not pass, or when the entry exists (unless ``replace``).
    """
    import tempfile

    from leaderboard.validate import validate_bundle

    registry = Path(registry)
    with tempfile.TemporaryDirectory(prefix="mme3dr-add-") as tmp:
        report = validate_bundle(bundle, workdir=Path(tmp) / "bundle", registry=registry)
        if not report.ok:
            raise RegistryError(report.summary())
        if verification is not None:
            if verification.bundle_sha256 != report.bundle_sha256:
                other = verification.bundle_sha256[:12]
                raise RegistryError(f"the verification record is for bundle {other}…, not this one "
                                    f"({report.bundle_sha256[:12]}…)")
            if "testing_overrides" in verification.notes:
                why = verification.notes["testing_overrides"]
                raise RegistryError(f"the verification record was made with testing overrides ({why}); "
                                    "it cannot go on the leaderboard")
            if not verification.passed:
                raise RegistryError("the verification record did not pass; add without it (self-reported) "
                                    "or fix the submission")
        sub = report.manifest.submitter
        bench = report.results.benchmark.name
        folder = registry / bench / entry_slug(sub)
        if folder.exists():
            if not replace:
                raise RegistryError(f"{folder} already exists; pass --replace to update this submission")
            shutil.rmtree(folder)
        tier = verification.tier if verification is not None else "self-reported"
        verifier = verification.verifier if verification is not None else None
        entry = Entry(
            benchmark=bench, slug=folder.name, submitter=sub, tier=tier,
            generated_by=verifier if tier == "reproduced" else sub.evaluator,
            scored_by=verifier if tier in ("re-scored", "reproduced") else sub.evaluator,
            added=date or dt.datetime.now(dt.timezone.utc).date().isoformat(),
            bundle_sha256=report.bundle_sha256, asset_set_sha256=report.asset_set_sha256,
            verification=verification,
        )
        (folder / "thumbnails").mkdir(parents=True)
        for name in (MANIFEST_NAME, RESULTS_NAME, SAMPLES_NAME):
            shutil.copyfile(report.extracted / name, folder / name)
        for case_id, rel in sorted(report.manifest.thumbnails.items()):
            src = report.extracted / rel
            if src.is_file():
                shutil.copyfile(src, folder / "thumbnails" / f"{slugify(case_id)}.png")
        (folder / ENTRY_NAME).write_text(json.dumps(entry.model_dump(mode="json"), indent=2, sort_keys=True,
                                                    ensure_ascii=False) + "\n", encoding="utf-8")
    return folder


def _metric_value(task: dict, name: str) -> MetricValue | None:
    value = task.get(name)
    if not isinstance(value, (int, float)):
        return None
    low, high, std = (task.get(f"{name}_{k}") for k in ("ci95_low", "ci95_high", "std"))
    return MetricValue(float(value), low, high, std)


def row_from_entry(folder: Path, entry: Entry) -> LeaderboardRow:
    """The site row of one registry folder: every metric its results report, with its CI."""
    from mme3dr.results import load_results

    res = load_results(folder / RESULTS_NAME)
    bench = res.benchmark.name
    task = res.results.get(bench, {})
    reported = res.higher_is_better.get(bench, {})
    metrics = {name: mv for name in reported if (mv := _metric_value(task, name)) is not None}
    per_category = {}
    for cat in res.benchmark.categories:
        mv = _metric_value(res.results.get(f"{bench}/{cat}", {}), "clip")
        if mv is not None:
            per_category[cat] = mv
    sub = entry.submitter
    row = LeaderboardRow(
        benchmark=bench, model_name=sub.model_name, revision=sub.revision, slug=entry.slug, tier=entry.tier,
        generated_by=entry.generated_by, scored_by=entry.scored_by, date=entry.added, metrics=metrics,
        per_category=per_category, link=sub.link, licence=sub.licence, description=sub.description,
        evaluator_relationship=sub.evaluator_relationship, profile=res.profile,
        protocol_version=res.protocol_version, manifest_sha256=res.benchmark.manifest_sha256,
        bundle_sha256=entry.bundle_sha256, metric_card=res.metric_card,
        thumbnails=tuple(str(p) for p in sorted((folder / "thumbnails").glob("*.png"))),
        n_cases=res.benchmark.n_cases, n_failures=sum(res.failures.values()),
        verification=entry.verification.model_dump(mode="json") if entry.verification else {},
    )
    return row
