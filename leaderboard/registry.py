"""The submissions registry: ``submissions/<benchmark>/<model>__<revision>/`` folders of accepted bundles.

Each folder holds what the site needs and what a reader needs to re-check it: ``entry.json`` (who,
when, tier, hashes), the bundle's ``bundle.json``, ``results.json`` and ``samples.jsonl`` byte for
byte, and its thumbnails. Assets are not kept here (they stay in the submitted bundle, named by its
sha256). This module reads the registry (entries, slugs, duplicate asset sets, site rows);
:func:`leaderboard.admission.add_bundle` validates a bundle against it and files it.

Light module: standard library + pydantic.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from leaderboard.bundle import RESULTS_NAME, SAMPLES_NAME, Submitter
from leaderboard.entry import Entry
from leaderboard.rows import LeaderboardRow, MetricValue

ENTRY_NAME = "entry.json"
#: The registry inside this package (the leaderboard repository's own ``leaderboard/submissions``).
DEFAULT_REGISTRY = Path(__file__).resolve().parent / "submissions"


class RegistryError(ValueError):
    """The registry refused an operation; the message says why and what to do."""


def slugify(text: str) -> str:
    """A folder-safe version of a name: ASCII letters, digits, ``.``, ``-``, ``_`` only."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:80]
    return slug or "unnamed"


def entry_slug(submitter: Submitter, *, disambiguate: bool = False) -> str:
    """The registry folder name ``<model>__<revision>``, slugified. Slugifying can map two names to one
    folder ("Tetra/X" and "Tetra X" both become "Tetra-X"); ``disambiguate`` appends the first 8 hex
    digits of the sha256 of the exact (model, revision) pair, which :func:`leaderboard.admission.add_bundle`
    uses when the plain folder already belongs to another model."""
    model, revision = submitter.model_name, submitter.revision
    slug = f"{slugify(model)}__{slugify(revision)}"
    if disambiguate:
        slug += "-" + hashlib.sha256(json.dumps([model, revision]).encode("utf-8")).hexdigest()[:8]
    return slug


def read_entry(path: Path) -> Entry:
    """Parse an ``entry.json`` strictly (``json_input``); :class:`RegistryError` naming the file."""
    from leaderboard.json_input import strict_loads

    try:
        raw = path.read_bytes()
        strict_loads(raw, str(path))
        return Entry.model_validate_json(raw)
    except (OSError, ValueError) as exc:
        raise RegistryError(f"{path} is not a valid registry entry: {exc}") from None


def iter_entries(registry: Path) -> list[tuple[Path, Entry]]:
    """Every entry in the registry, sorted by folder (a broken ``entry.json`` is an error, not skipped)."""
    out = []
    for path in sorted(Path(registry).glob(f"*/*/{ENTRY_NAME}")):
        out.append((path.parent, read_entry(path)))
    return out


def find_same_assets(registry: Path, benchmark: str, asset_set: str | None) -> tuple[str, str] | None:
    """(model, revision) of the entry that already submitted this asset set on ``benchmark``, if any."""
    if asset_set is None or not Path(registry).is_dir():
        return None
    for _, entry in iter_entries(registry):
        if entry.benchmark == benchmark and entry.asset_set_sha256 == asset_set:
            return entry.submitter.model_name, entry.submitter.revision
    return None


def folder_owner(folder: Path) -> tuple[str, str] | None:
    """(model, revision) of the entry in ``folder``, if it holds one."""
    path = folder / ENTRY_NAME
    if not path.is_file():
        return None
    sub = read_entry(path).submitter
    return sub.model_name, sub.revision


def _metric_value(task: dict, name: str) -> MetricValue | None:
    value = task.get(name)
    if not isinstance(value, (int, float)):
        return None
    low, high, std = (task.get(f"{name}_{k}") for k in ("ci95_low", "ci95_high", "std"))
    return MetricValue(float(value), low, high, std)


def case_scores_from(samples_file: Path, metric: str = "clip") -> dict[str, float]:
    """Mean ``metric`` of each case over its scored samples (``samples.jsonl``); {} when absent."""
    from mme3dr.results import read_samples

    if not samples_file.is_file():
        return {}
    sums: dict[str, list[float]] = {}
    for s in read_samples(samples_file):
        if s.status == "ok" and s.metrics.get(metric) is not None:
            sums.setdefault(s.case_id, []).append(float(s.metrics[metric]))
    return {case: sum(v) / len(v) for case, v in sums.items()}


def row_from_entry(folder: Path, entry: Entry) -> LeaderboardRow:
    """The site row of one registry folder: every metric its results report, with its CI."""
    from mme3dr.results import load_results

    return row_from_results(
        load_results(folder / RESULTS_NAME), entry.submitter, slug=entry.slug, tier=entry.tier,
        generated_by=entry.generated_by, scored_by=entry.scored_by, date=entry.added,
        bundle_sha256=entry.bundle_sha256,
        thumbnails=tuple(str(p) for p in sorted((folder / "thumbnails").glob("*.png"))),
        verification=entry.verification.model_dump(mode="json") if entry.verification else {},
        case_scores=case_scores_from(folder / SAMPLES_NAME),
    )


def row_from_results(res, sub: Submitter, *, slug: str, tier: str, generated_by: str, scored_by: str,
                     date: str, bundle_sha256: str, thumbnails: tuple[str, ...] = (),
                     verification: dict | None = None, **marks) -> LeaderboardRow:
    """The site row of a run's ``Results`` (``mme3dr.results.Results``) submitted by ``sub``.

    ``marks``: further :class:`LeaderboardRow` fields (``is_preview``, ``preview_problems``).
    """
    bench = res.benchmark.name
    task = res.results.get(bench, {})
    reported = res.higher_is_better.get(bench, {})
    metrics = {name: mv for name in reported if (mv := _metric_value(task, name)) is not None}
    per_category = {}
    for cat in res.benchmark.categories:
        mv = _metric_value(res.results.get(f"{bench}/{cat}", {}), "clip")
        if mv is not None:
            per_category[cat] = mv
    return LeaderboardRow(
        benchmark=bench, model_name=sub.model_name, revision=sub.revision, slug=slug, tier=tier,
        generated_by=generated_by, scored_by=scored_by, date=date, metrics=metrics,
        per_category=per_category, link=sub.link, licence=sub.licence, description=sub.description,
        evaluator_relationship=sub.evaluator_relationship, profile=res.profile,
        protocol_version=res.protocol_version, manifest_sha256=res.benchmark.manifest_sha256,
        bundle_sha256=bundle_sha256, metric_card=res.metric_card, thumbnails=thumbnails,
        n_cases=res.benchmark.n_cases, n_failures=sum(res.failures.values()),
        verification=verification or {}, **marks,
    )
