"""Benchmark manifests: load, hash and validate a list of cases; build the built-in ones from Toys4K.

Light module (standard library only). A manifest file is JSON Lines:

- line 1 (optional) is a header ``{"manifest": {"name": ..., "version": ..., ...}}``;
- every other line is one ``Case`` record (``mme3dr.benchmark.taxonomy.Case.to_dict``).

The manifest's identity is the sha256 of the file's bytes (``Manifest.sha256``): every result records it
and the leaderboard checks it (design.md §4). Prompts are not part of the built-in files; they are
resolved at load time from TRELLIS's captions CSV (``mme3dr.benchmark.captions``), which does not change
the hash.

Built-in manifests ship inside the package (``mme3dr/_data`` is a link to the repository's top-level
``data/mme3dr``, so the files land in the wheel as package data and load through
``importlib.resources``): ``"mme3dr-v1"`` (249 cases) and ``"toys4k-800"``.
The selection rules that build them live in ``mme3dr.benchmark.manifest_build``.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from mme3dr.benchmark.taxonomy import CATEGORY_IDS, V1_COUNTS, Case, CaseError
from mme3dr.errors import UserError

__all__ = [
    "BUILTIN_MANIFESTS",
    "Manifest",
    "ManifestError",
    "builtin_data_file",
    "expected_counts_for",
    "load_manifest",
    "manifest_sha256",
    "parse_manifest",
    "read_category_map",
    "to_hf_dataset",
    "validate_manifest",
]

#: Built-in manifest name -> file name under the packaged ``data/mme3dr/v1`` folder.
BUILTIN_MANIFESTS: dict[str, str] = {"mme3dr-v1": "cases.jsonl", "toys4k-800": "toys4k-800.jsonl"}
DATA_VERSION = "v1"


class ManifestError(UserError, ValueError):
    """A manifest that cannot be loaded or does not validate; the message says what and what to do."""


def builtin_data_file(name: str) -> Path:
    """Path of a file in the packaged benchmark data (``data/mme3dr/v1/<name>``), editable or wheel."""
    root = resources.files("mme3dr") / "_data" / DATA_VERSION / name
    if not root.is_file():
        raise ManifestError(
            f"packaged benchmark file {name!r} is missing from the mme3dr install ({root}); "
            "reinstall mme3dr (`pip install mme3dr`) or run `mme3dr manifest build --toys-dict PATH`"
        )
    return Path(str(root))


def manifest_sha256(source: str | Path | bytes) -> str:
    """sha256 hex digest of a manifest file's bytes (or of the bytes given)."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Manifest:
    """A loaded manifest: ``cases`` in file order and the sha256 of the file's bytes."""

    name: str
    version: str
    cases: tuple[Case, ...]
    sha256: str
    header: dict = field(default_factory=dict, compare=False)
    path: Path | None = field(default=None, compare=False)

    def __len__(self) -> int:
        return len(self.cases)

    def __iter__(self) -> Iterator[Case]:
        return iter(self.cases)

    def __getitem__(self, case_id: str) -> Case:
        for c in self.cases:
            if c.case_id == case_id:
                return c
        raise KeyError(f"no case {case_id!r} in manifest {self.name}")

    def counts(self) -> dict[str, int]:
        """Cases per category, in taxonomy order first, then any other category names sorted."""
        n = Counter(c.category for c in self.cases)
        order = [k for k in CATEGORY_IDS if k in n] + sorted(k for k in n if k not in CATEGORY_IDS)
        return {k: n[k] for k in order}

    def with_cases(self, cases: Iterable[Case]) -> Manifest:
        """A copy with new case records (e.g. prompts attached); ``sha256`` still names the file."""
        return replace(self, cases=tuple(cases))


def parse_manifest(data: bytes, *, name: str | None = None, path: Path | None = None) -> Manifest:
    """Parse manifest bytes (JSON Lines, optional header line); raises ``ManifestError``."""
    where = str(path) if path else (name or "manifest")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ManifestError(f"{where}: not UTF-8 text ({e}); a manifest is a JSON Lines file") from None
    header: dict = {}
    cases: list[Case] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ManifestError(
                f"{where}:{lineno}: invalid JSON ({e.msg}); fix or regenerate the file"
            ) from None
        if lineno == 1 and isinstance(record, dict) and "manifest" in record:
            header = record["manifest"] if isinstance(record["manifest"], dict) else {}
            continue
        try:
            cases.append(Case.from_dict(record, where=f"{where}:{lineno}"))
        except CaseError as e:
            raise ManifestError(str(e)) from None
    if not cases:
        raise ManifestError(f"{where}: no cases found; a manifest needs at least one case line")
    resolved = name or header.get("name") or (path.stem if path else "manifest")
    return Manifest(
        name=str(resolved),
        version=str(header.get("version", "unversioned")),
        cases=tuple(cases),
        sha256=manifest_sha256(data),
        header=header,
        path=path,
    )


def load_manifest(name_or_path: str | Path = "mme3dr-v1") -> Manifest:
    """Load a built-in manifest (``"mme3dr-v1"``, ``"toys4k-800"``) or any manifest file by path.

    >>> m = load_manifest("mme3dr-v1")
    >>> len(m), m.counts()["spatial"]
    (249, 40)
    """
    key = str(name_or_path)
    if key in BUILTIN_MANIFESTS:
        path = builtin_data_file(BUILTIN_MANIFESTS[key])
        return parse_manifest(path.read_bytes(), name=key, path=path)
    path = Path(name_or_path)
    if not path.is_file():
        raise ManifestError(
            f"manifest {key!r} not found: not a built-in name ({', '.join(BUILTIN_MANIFESTS)}) "
            "and no such file; pass a built-in name or the path of a .jsonl manifest"
        )
    return parse_manifest(path.read_bytes(), path=path)


def read_category_map(path: str | Path | None = None) -> dict[str, dict[str, str]]:
    """The Toys4K category -> ``{"category": reasoning id, "reason": str}`` map (packaged by default)."""
    p = Path(path) if path is not None else builtin_data_file("category_map.json")
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ManifestError(f"cannot read category map {p}: {e}; pass a valid category_map.json") from None
    mapping = raw.get("categories", raw) if isinstance(raw, dict) else None
    if not isinstance(mapping, dict):
        raise ManifestError(f"{p}: expected an object mapping Toys4K category -> {{category, reason}}")
    for toy, entry in mapping.items():
        ok = isinstance(entry, dict) and entry.get("category") in CATEGORY_IDS and entry.get("reason")
        if not ok:
            raise ManifestError(
                f"{p}: entry {toy!r} must be {{'category': one of {list(CATEGORY_IDS)}, 'reason': text}}"
            )
    return mapping


def validate_manifest(
    manifest: Manifest,
    *,
    id_list: Iterable[str] | None = None,
    expected_counts: dict[str, int] | None = None,
    category_map: dict[str, dict[str, str]] | None = None,
) -> list[str]:
    """Problems found in a manifest (empty list: valid). Pure: reads nothing from disk.

    Checks: unique case ids, no object twice, known reasoning categories, ``toys4k_category`` equal to
    the first path component of ``file_identifier``; with ``id_list``, every object exists in it; with
    ``expected_counts``, the per-category counts; with ``category_map``, every case's category agrees.
    """
    problems: list[str] = []
    for label, key in (("case id", "case_id"), ("object", "file_identifier")):
        dup = [v for v, n in Counter(getattr(c, key) for c in manifest.cases).items() if n > 1]
        if dup:
            problems.append(f"{len(dup)} duplicate {label}(s), e.g. {dup[0]!r}")
    for c in manifest.cases:
        if c.category not in CATEGORY_IDS:
            valid = ", ".join(CATEGORY_IDS)
            problems.append(f"{c.case_id}: unknown category {c.category!r} (valid: {valid})")
        parts = c.file_identifier.split("/")
        if c.file_identifier.startswith("/") or ".." in parts or "\\" in c.file_identifier:
            problems.append(f"{c.case_id}: file_identifier {c.file_identifier!r} must be a relative path")
        if parts[0] != c.toys4k_category:
            problems.append(
                f"{c.case_id}: file_identifier {c.file_identifier!r} is not under toys4k_category "
                f"{c.toys4k_category!r}"
            )
        if category_map is not None:
            entry = category_map.get(c.toys4k_category)
            if entry is None:
                problems.append(f"{c.case_id}: Toys4K category {c.toys4k_category!r} not in the category map")
            elif entry["category"] != c.category:
                said = entry["category"]
                problems.append(f"{c.case_id}: category {c.category!r} but the map says {said!r}")
    if id_list is not None:
        known = set(id_list)
        missing = [c.file_identifier for c in manifest.cases if c.file_identifier not in known]
        if missing:
            problems.append(f"{len(missing)} object(s) not in the Toys4K id list, e.g. {missing[0]!r}")
    if expected_counts is not None:
        got = manifest.counts()
        for cat, n in expected_counts.items():
            if got.get(cat, 0) != n:
                problems.append(f"category {cat!r}: {got.get(cat, 0)} cases, expected {n}")
        extra = set(got) - set(expected_counts)
        if extra:
            problems.append(f"unexpected categories: {sorted(extra)}")
    return problems


def expected_counts_for(manifest: Manifest) -> dict[str, int] | None:
    """The fixed per-category counts a built-in manifest must have (``None`` when not fixed)."""
    return dict(V1_COUNTS) if manifest.name == "mme3dr-v1" else None


def to_hf_dataset(manifest: Manifest, rows: list[dict] | None = None):
    """The cases as a Hugging Face ``datasets.Dataset``: one row per case, ``Case.to_dict`` columns, or
    ``rows`` (the same with extra columns; a ``seeds`` column holds lists of int64).

    The manifest's name, version and sha256 go into ``dataset.info.description`` as JSON. ``datasets``
    is imported here, lazily (``pip install mme3dr[hf]``).
    """
    import datasets  # lazy: optional dependency

    rows = rows if rows is not None else [c.to_dict() for c in manifest.cases]
    features = datasets.Features({k: datasets.Sequence(datasets.Value("int64")) if k == "seeds"
                                  else datasets.Value("string") for k in rows[0]})
    columns = {k: [r[k] for r in rows] for k in rows[0]}
    info = datasets.DatasetInfo(
        description=json.dumps(
            {"name": manifest.name, "version": manifest.version, "sha256": manifest.sha256}
        ),
        features=features,
    )
    return datasets.Dataset.from_dict(columns, features=features, info=info)
