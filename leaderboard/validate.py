"""Validate a submission bundle, failing closed: any check that cannot pass rejects the bundle.

Order: safe extraction (``archive_safety``) → ``bundle.json`` schema → every file's sha256 and size →
size caps (``results.json``, ``samples.jsonl``, every string in them) → strict JSON (``json_input``: no
duplicate keys, NaN/Infinity or deep nesting) → ``results.json`` /
``samples.jsonl`` schemas (``mme3dr.results``, extra fields forbidden) →
``samples_sha256`` → the content checks (``content_checks``: eligibility, metric card, manifest hash,
protocol and rig, cases and seeds, failures, duplicates, recomputed aggregates; ``number_checks``:
every number finite, in range and matching the samples' counts) → bundle-level asset
checks → (with a registry) the same asset set not already submitted under another name.

Light module: no torch, no renderer.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from leaderboard.archive_safety import ArchiveLimits, UnsafeArchiveError, safe_extract
from leaderboard.bundle import (
    ASSETS_DIR,
    MANIFEST_NAME,
    RESULTS_NAME,
    SAMPLES_NAME,
    BundleError,
    BundleManifest,
    asset_set_sha256,
    read_manifest,
    sha256_file,
)
from leaderboard.content_checks import (
    Problem,
    check_aggregates,
    check_benchmark,
    check_cases,
    check_duplicate_assets,
    check_eligibility,
    check_failures,
    check_metric_card,
    check_metric_facts,
    check_protocol,
)
from leaderboard.json_input import StrictJsonError, strict_loads
from leaderboard.number_checks import check_numbers, check_raw_booleans

#: Caps on a bundle's run files (tag ``limits``). A run's results.json is tens of kB and each
#: samples.jsonl line about 1 kB; the caps leave ample room and stop a bundle from carrying hundreds of
#: MB of text into the registry.
MAX_RESULTS_BYTES = 16 * 1024**2
MAX_SAMPLES_BYTES = 256 * 1024**2
#: Longest string anywhere in results.json or a samples.jsonl line (names, prompts, failure details).
MAX_STRING_CHARS = 4096


@dataclass
class ValidationReport:
    """The outcome: ``ok`` only when there is no problem at all."""

    bundle: Path
    bundle_sha256: str
    problems: list[Problem] = field(default_factory=list)
    manifest: BundleManifest | None = None
    results: object | None = None  # mme3dr.results.Results
    samples: list = field(default_factory=list)  # list[mme3dr.results.SampleRecord]
    extracted: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and self.manifest is not None and self.results is not None

    @property
    def asset_set_sha256(self) -> str | None:
        return None if self.manifest is None else asset_set_sha256([a.sha256 for a in self.manifest.assets])

    def summary(self) -> str:
        if self.ok:
            return f"{self.bundle}: valid (sha256 {self.bundle_sha256})"
        lines = [f"{self.bundle}: REJECTED, {len(self.problems)} problem(s):"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


def check_files(extracted: Path, manifest: BundleManifest,
                digests: dict[str, str] | None = None) -> list[Problem]:
    """Every archive file is listed in ``bundle.json`` with its sha256 and size, and nothing else is.
    ``digests``, when given, receives every sha256 computed here (archive name -> digest), so that
    later checks do not hash the same (possibly multi-GB) files again."""
    out = []
    present = {p.relative_to(extracted).as_posix() for p in extracted.rglob("*") if p.is_file()}
    present.discard(MANIFEST_NAME)
    for name in sorted(present - set(manifest.files)):
        out.append(Problem("files", f"{name} is in the archive but not in bundle.json"))
    for name, entry in sorted(manifest.files.items()):
        path = extracted / name
        if name not in present:
            out.append(Problem("files", f"{name} is listed in bundle.json but missing from the archive"))
        elif path.stat().st_size != entry.size or _sha256(path, name, digests) != entry.sha256:
            out.append(Problem("files", f"{name}: sha256 does not match bundle.json (the file was changed)"))
    for required in (RESULTS_NAME, SAMPLES_NAME):
        if required not in present:
            out.append(Problem("files", f"{required} is missing from the bundle"))
    return out


def _sha256(path: Path, name: str, digests: dict[str, str] | None) -> str:
    if digests is not None and name in digests:
        return digests[name]
    digest = sha256_file(path)
    if digests is not None:
        digests[name] = digest
    return digest


def check_bundle_assets(manifest: BundleManifest, samples: list, extracted: Path,
                        digests: dict[str, str] | None = None) -> list[Problem]:
    """``bundle.json``'s asset list is exactly the samples' assets; included files hash to their names.
    ``digests``: sha256s :func:`check_files` already computed, reused instead of hashing again."""
    out = []
    listed = {a.sha256 for a in manifest.assets}
    used = {s.asset_sha256 for s in samples if s.asset_sha256}
    if listed != used:
        msg = (f"bundle.json lists {len(listed)} assets but samples.jsonl uses {len(used)} "
               f"({len(listed - used)} extra, {len(used - listed)} unlisted)")
        out.append(Problem("assets", msg))
    if manifest.assets_included:
        for a in manifest.assets:
            prefixes = (f"{ASSETS_DIR}/{a.sha256}.", f"{ASSETS_DIR}/{a.sha256}/")
            if a.path is None or not a.path.startswith(prefixes):
                msg = f"asset {a.sha256[:12]}… has no path under {ASSETS_DIR}/<sha256>"
                out.append(Problem("assets", msg))
                continue
            path = extracted / a.path
            if not path.is_file():
                out.append(Problem("assets", f"asset {a.sha256[:12]}… ({a.format}) is not in the bundle"))
            elif _asset_sha256(path, a.path, digests) != a.sha256:
                msg = f"asset {a.sha256[:12]}…: its bytes do not hash to its name (changed after scoring)"
                out.append(Problem("assets", msg))
    return out


def check_file_sizes(extracted: Path) -> list[Problem]:
    """``results.json`` and ``samples.jsonl`` stay under their caps, checked before either is read."""
    out = []
    for name, cap in ((RESULTS_NAME, MAX_RESULTS_BYTES), (SAMPLES_NAME, MAX_SAMPLES_BYTES)):
        size = (extracted / name).stat().st_size
        if size > cap:
            out.append(Problem("limits", f"{name} is {size:,} bytes; at most {cap:,} are accepted"))
    return out


def check_string_lengths(value: object, where: str, problems: list[Problem], *, limit: int = 5) -> None:
    """Every string (and dict key) inside a parsed JSON value is at most ``MAX_STRING_CHARS`` long; the
    first ``limit`` offenders are reported by their JSON path."""
    stack = [(where, value)]
    while stack and len(problems) < limit:
        path, v = stack.pop()
        if isinstance(v, str) and len(v) > MAX_STRING_CHARS:
            problems.append(Problem("limits", f"{path} is a string of {len(v):,} characters; at most "
                                              f"{MAX_STRING_CHARS:,} are accepted"))
        elif isinstance(v, dict):
            for key, item in v.items():
                if len(key) > MAX_STRING_CHARS:
                    problems.append(Problem("limits", f"{path} has a key of {len(key):,} characters"))
                else:
                    stack.append((f"{path}.{key}", item))
        elif isinstance(v, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(v))


def _asset_sha256(path: Path, name: str, digests: dict[str, str] | None) -> str:
    """The asset's content address: its file's sha256, or for a file with side files (an OBJ with its
    MTL and textures, a .gltf with its .bin) the hash of its closure (``mme3dr.assets.closure``)."""
    from mme3dr.assets.closure import ClosureError, asset_closure, closure_sha256

    try:
        closure = asset_closure(path)
    except ClosureError:
        return ""  # a reference leaving the asset's folder: never a valid address
    return _sha256(path, name, digests) if len(closure) == 1 else closure_sha256(closure)


def _parse_run(extracted: Path, report: ValidationReport) -> None:
    from mme3dr.results import Results, SampleRecord, samples_digest

    too_long: list[Problem] = []
    raw = (extracted / RESULTS_NAME).read_bytes()
    try:
        # strict first: duplicate keys, NaN/Infinity and deep nesting are refused before anything else
        # reads the file (100,000 nested arrays used to escape as a RecursionError traceback)
        parsed = strict_loads(raw, RESULTS_NAME)
        check_string_lengths(parsed, "results.json", too_long)
        report.problems += check_raw_booleans(parsed)
        report.results = Results.model_validate_json(raw)
    except StrictJsonError as exc:
        report.problems.append(Problem("json", str(exc)))
    except ValueError as exc:
        report.problems.append(Problem("schema", f"results.json does not follow the results schema: {exc}"))
    try:  # JSON Lines: split on \n only (a prompt may hold U+2028, which str.splitlines splits on)
        lines = (extracted / SAMPLES_NAME).read_bytes().decode("utf-8").split("\n")
    except UnicodeDecodeError as exc:
        report.problems.append(Problem("json", f"{SAMPLES_NAME} is not UTF-8 text ({exc})"))
        lines = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"samples.jsonl line {lineno}"
        try:
            check_string_lengths(strict_loads(line, where), where, too_long)
            rec = SampleRecord.model_validate_json(line)
        except StrictJsonError as exc:
            report.problems.append(Problem("json", str(exc)))
            continue
        except ValueError as exc:
            report.problems.append(Problem("schema", f"samples.jsonl line {lineno}: {exc}"))
            continue
        report.samples.append(rec)
    report.problems += too_long
    if report.results is not None and report.results.samples_sha256 != samples_digest(report.samples):
        report.problems.append(Problem("samples", "samples.jsonl does not hash to results.samples_sha256 "
                                                  "(a sample record was changed, added or removed)"))


def published_run_problems(folder: Path) -> list[Problem]:
    """What :func:`leaderboard.site.build_from_registry` re-checks in a registry folder before publishing
    it: the run files parse strictly and follow the schema, ``samples_sha256`` matches, and every number
    is possible (``number_checks``) and agrees with the samples (``check_aggregates``). A bundle accepted
    by an older, laxer version is caught here instead of reaching the page."""
    report = ValidationReport(bundle=folder, bundle_sha256="")
    for name in (RESULTS_NAME, SAMPLES_NAME):
        if not (folder / name).is_file():
            return [Problem("files", f"{name} is missing")]
    oversized = check_file_sizes(folder)
    if oversized:
        return oversized
    _parse_run(folder, report)
    if report.results is not None:
        report.problems += check_numbers(report.results, report.samples)
        report.problems += check_aggregates(report.results, report.samples)
    return report.problems


def validate_extracted(extracted: Path, report: ValidationReport, *, registry: Path | None = None) -> None:
    """Run every check on an extracted bundle, appending problems to ``report``."""
    try:
        report.manifest = read_manifest(extracted)
    except BundleError as exc:
        report.problems.append(Problem("bundle", str(exc)))
        return
    digests: dict[str, str] = {}
    report.problems += check_files(extracted, report.manifest, digests)
    if not ((extracted / RESULTS_NAME).is_file() and (extracted / SAMPLES_NAME).is_file()):
        return
    oversized = check_file_sizes(extracted)
    if oversized:  # never read a file past its cap into memory
        report.problems += oversized
        return
    _parse_run(extracted, report)
    res = report.results
    if res is None:
        return
    for check in (check_eligibility, check_metric_card, check_metric_facts, check_benchmark, check_protocol):
        report.problems += check(res)
    for check in (check_cases, check_failures, check_numbers, check_aggregates):
        report.problems += check(res, report.samples)
    report.problems += check_duplicate_assets(report.samples)
    report.problems += check_bundle_assets(report.manifest, report.samples, extracted, digests)
    if registry is not None:
        from leaderboard.registry import find_same_assets

        owner = find_same_assets(registry, res.benchmark.name, report.asset_set_sha256)
        sub = report.manifest.submitter
        if owner is not None and owner != (sub.model_name, sub.revision):
            msg = f"the same asset set is already on the leaderboard as {owner[0]!r} revision {owner[1]!r}"
            report.problems.append(Problem("duplicates", msg))


def validate_bundle(bundle: Path, *, workdir: Path | None = None, registry: Path | None = None,
                    limits: ArchiveLimits = ArchiveLimits()) -> ValidationReport:
    """Validate ``bundle`` (a ``.tar.gz``). With ``workdir``, the extraction is kept there for later
    steps (verify, add); otherwise it goes into a temporary directory that is removed."""
    bundle = Path(bundle)
    if not bundle.is_file():
        raise BundleError(f"{bundle}: no such bundle (make one with `mme3dr submit RUN_DIR --out BUNDLE`)")
    report = ValidationReport(bundle=bundle, bundle_sha256=sha256_file(bundle))
    with tempfile.TemporaryDirectory(prefix="mme3dr-bundle-") as tmp:
        target = Path(workdir) if workdir is not None else Path(tmp) / "bundle"
        try:
            safe_extract(bundle, target, limits)
        except UnsafeArchiveError as exc:
            report.problems.append(Problem("archive", str(exc)))
            return report
        validate_extracted(target, report, registry=registry)
        report.extracted = target if workdir is not None else None
    return report
