"""Build the built-in manifests (MME-3DR v1, Toys4K-800) from the Toys4K id list, byte for byte.

Light module (standard library only). Everything here is a pure function of the id list and the
category map, and every "random" choice is a **hash ranking**: an item's rank is the sha256 hex digest
of ``"<seed string>:<item>"``, sorted ascending. Unlike a PRNG stream, this is the same in any language,
any Python or numpy version and any order in which the ids are read, so the built files are
reproducible to the byte.

MME-3DR v1 selection rule (seed string ``"mme3dr-v1"``):

1. Each of the 105 Toys4K categories belongs to one reasoning category (``category_map.json``).
2. For a reasoning category with quota n (40/54/53/38/64), order its Toys4K categories by rank of the
   category name, and within each Toys4K category order the objects by rank of their
   ``file_identifier``.
3. Draw round-robin: the first object of every Toys4K category in that order, then the second of every
   category that has one, and so on, until n objects are drawn. This spreads each quota over as many
   Toys4K categories as possible instead of letting big classes (205 chairs) dominate.
4. Cases are ordered by reasoning category (taxonomy order), then by ``file_identifier``; ids are
   ``mme3dr-v1-000`` … ``mme3dr-v1-248`` in that order.

Toys4K-800 rule (seed string ``"toys4k-800:seed=0"``): the 800 lowest-ranked of the 4,000 objects,
ordered by ``file_identifier``, ids ``toys4k-800-000`` … ``toys4k-800-799``. Their ``category`` field is
the reasoning category the category map gives their Toys4K class (useful for analysis; the paper reports
per-category results on MME-3DR only).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mme3dr.benchmark.manifest import ManifestError
from mme3dr.benchmark.taxonomy import CATEGORY_IDS, V1_COUNTS, Case
from mme3dr.hashing import file_sha256

__all__ = [
    "V1_SEED",
    "TOYS4K_800_SEED",
    "build_toys4k_800",
    "build_v1",
    "canonical_category_map",
    "hash_rank",
    "id_list_sha256",
    "read_toys_dict",
]

V1_SEED = "mme3dr-v1"
TOYS4K_800_SEED = "toys4k-800:seed=0"
TOYS4K_800_SIZE = 800


def hash_rank(seed: str, item: str) -> str:
    """The sort key of ``item`` under ``seed``: sha256 hex of ``f"{seed}:{item}"`` (UTF-8)."""
    return hashlib.sha256(f"{seed}:{item}".encode()).hexdigest()


def read_toys_dict(path: str | Path) -> list[str]:
    """Toys4K ``toys_dict.json`` -> sorted ``file_identifier`` list, ``<category>/<that path>``.

    The file maps each category name to its object paths ``"<name>_NNN/<name>_NNN.blend"`` (the
    rehg-lab release); inside ``toys4k_blend_files.zip`` an object lives at ``<category>/<that path>``.
    """
    p = Path(path)
    if not p.is_file():
        raise ManifestError(
            f"Toys4K id list not found at {p}; pass the path of toys_dict.json (rehg-lab lowshot-shapebias, "
            "toys4k/renderer/jsons/toys_dict.json) with --toys-dict"
        )
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ManifestError(f"{p} is not valid JSON ({e}); expected Toys4K's toys_dict.json") from None
    if not isinstance(raw, dict) or not all(isinstance(v, list) for v in raw.values()):
        raise ManifestError(f"{p}: expected an object mapping category -> list of object paths")
    ids = []
    for cat, paths in raw.items():
        for rel in paths:
            if not isinstance(rel, str) or "/" in cat:
                raise ManifestError(
                    f"{p}: bad entry {cat!r}: {rel!r}; expected '<name>_NNN/<name>_NNN.blend'"
                )
            ids.append(f"{cat}/{rel}")
    if len(set(ids)) != len(ids):
        raise ManifestError(f"{p}: the id list repeats objects; expected each object once")
    return sorted(ids)


def id_list_sha256(file_identifiers: list[str]) -> str:
    """sha256 of the sorted ids, one per line: names the id list independently of its JSON formatting."""
    return hashlib.sha256(("\n".join(sorted(file_identifiers)) + "\n").encode()).hexdigest()


def canonical_category_map(mapping: dict[str, dict[str, str]]) -> bytes:
    """The category map as canonical bytes (sorted keys, 2-space indent, trailing newline)."""
    clean = {k: {"category": v["category"], "reason": v["reason"]} for k, v in mapping.items()}
    return (json.dumps(clean, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _categories_of(ids: list[str]) -> dict[str, list[str]]:
    by_cat: dict[str, list[str]] = {}
    for fid in ids:
        by_cat.setdefault(fid.split("/", 1)[0], []).append(fid)
    return by_cat


def _check_map_covers(by_cat: dict[str, list[str]], mapping: dict[str, dict[str, str]]) -> None:
    unmapped = sorted(set(by_cat) - set(mapping))
    if unmapped:
        raise ManifestError(
            f"{len(unmapped)} Toys4K categories have no reasoning category, e.g. {unmapped[0]!r}; "
            "add them to category_map.json"
        )


def _dump(header: dict, cases: list[Case]) -> bytes:
    lines = [json.dumps({"manifest": header}, sort_keys=True, ensure_ascii=False)]
    lines += [json.dumps(c.to_dict(), ensure_ascii=False) for c in cases]
    return ("\n".join(lines) + "\n").encode()


def _round_robin(seed: str, groups: dict[str, list[str]], n: int) -> list[str]:
    """Draw n items: groups ordered by rank, items within a group by rank, one per group per pass."""
    order = sorted(groups, key=lambda g: hash_rank(seed, g))
    queues = {g: sorted(groups[g], key=lambda x: hash_rank(seed, x)) for g in order}
    drawn: list[str] = []
    depth = 0
    while len(drawn) < n:
        took = False
        for g in order:
            if depth < len(queues[g]) and len(drawn) < n:
                drawn.append(queues[g][depth])
                took = True
        if not took:
            raise ManifestError(f"only {len(drawn)} objects available, {n} requested")
        depth += 1
    return drawn


def build_v1(
    file_identifiers: list[str],
    category_map: dict[str, dict[str, str]],
    *,
    captioned: set[str] | None = None,
    captions_sha256: str | None = None,
) -> bytes:
    """The MME-3DR v1 ``cases.jsonl`` bytes (249 cases) from the id list; the rule is in the module doc.

    ``captioned``: when given, draw only from these ``file_identifier``s (the objects that have a caption
    in TRELLIS's ``Toys4k.csv``, 3,180 of 4,000), so that every case gets a prompt. The header then
    records ``pool: captioned`` and the CSV's sha256. The shipped v1 was built without it (the CSV
    cannot be fetched offline); such a build is a different list with a different hash.
    """
    all_ids = sorted(set(file_identifiers))
    ids = [i for i in all_ids if i in captioned] if captioned is not None else all_ids
    by_cat = _categories_of(ids)
    _check_map_covers(by_cat, category_map)
    chosen: list[Case] = []
    for reasoning in CATEGORY_IDS:
        groups = {t: objs for t, objs in by_cat.items() if category_map[t]["category"] == reasoning}
        quota = V1_COUNTS[reasoning]
        try:
            picked = _round_robin(V1_SEED, groups, quota)
        except ManifestError as e:
            raise ManifestError(f"reasoning category {reasoning!r}: {e}; the id list is too small") from None
        for fid in sorted(picked):
            chosen.append(Case("", reasoning, fid.split("/", 1)[0], fid))
    cases = [
        Case(f"mme3dr-v1-{i:03d}", c.category, c.toys4k_category, c.file_identifier)
        for i, c in enumerate(chosen)
    ]
    header = {
        "name": "mme3dr-v1",
        "version": "1.0",
        "n_cases": len(cases),
        "counts": dict(V1_COUNTS),
        # The manifest header is frozen text: it is part of the manifest bytes, whose sha256 every result
        # records, so it keeps naming the module where the rule was first published (now in benchmark/).
        "selection": "hash-rank round-robin per reasoning category (mme3dr/manifest_build.py)",
        "seed": V1_SEED,
        "id_list_sha256": id_list_sha256(all_ids),
        "category_map_sha256": hashlib.sha256(canonical_category_map(category_map)).hexdigest(),
        "prompts": "resolved at load time from TRELLIS Toys4k.csv: captions[1] if present else captions[0]",
    }
    if captioned is not None:
        header.update(pool="captioned", captions_sha256=captions_sha256, pool_size=len(ids))
    return _dump(header, cases)


def build_toys4k_800(file_identifiers: list[str], category_map: dict[str, dict[str, str]]) -> bytes:
    """The ``toys4k-800.jsonl`` bytes: 800 objects drawn at random (hash rank, seed 0) from the id list."""
    ids = sorted(set(file_identifiers))
    if len(ids) < TOYS4K_800_SIZE:
        raise ManifestError(f"the id list has {len(ids)} objects; toys4k-800 needs {TOYS4K_800_SIZE}")
    _check_map_covers(_categories_of(ids), category_map)
    picked = sorted(sorted(ids, key=lambda x: hash_rank(TOYS4K_800_SEED, x))[:TOYS4K_800_SIZE])
    cases = []
    for i, fid in enumerate(picked):
        toy = fid.split("/", 1)[0]
        cases.append(Case(f"toys4k-800-{i:03d}", category_map[toy]["category"], toy, fid))
    header = {
        "name": "toys4k-800",
        "version": "1.0",
        "n_cases": len(cases),
        "selection": "800 lowest sha256 ranks of all objects (mme3dr/manifest_build.py)",  # frozen, as above
        "seed": TOYS4K_800_SEED,
        "id_list_sha256": id_list_sha256(ids),
        "category_field": "reasoning category of the object's Toys4K class per category_map.json",
        "prompts": "resolved at load time from TRELLIS Toys4k.csv: captions[1] if present else captions[0]",
    }
    return _dump(header, cases)


def _captioned_pool(captions_csv: str | Path | None) -> dict:
    if captions_csv is None:
        return {}
    from mme3dr.benchmark.captions import CaptionsError, read_captions_csv

    try:
        table = read_captions_csv(captions_csv)
    except CaptionsError as e:
        raise ManifestError(str(e)) from None
    captioned = {fid for fid, rec in table.by_identifier.items() if rec.prompt is not None}
    return {"captioned": captioned, "captions_sha256": file_sha256(captions_csv)}


def build_all(
    toys_dict: str | Path,
    out_dir: str | Path,
    category_map_path: str | Path | None = None,
    captions_csv: str | Path | None = None,
) -> dict:
    """Write ``category_map.json``, ``cases.jsonl`` and ``toys4k-800.jsonl`` into ``out_dir``.

    With ``captions_csv``, v1 is drawn only from captioned objects (see ``build_v1``). Returns
    ``{file name: sha256}``. Same inputs -> same bytes.
    """
    from mme3dr.benchmark.manifest import read_category_map

    ids = read_toys_dict(toys_dict)
    mapping = read_category_map(category_map_path)
    files = {
        "category_map.json": canonical_category_map(mapping),
        "cases.jsonl": build_v1(ids, mapping, **_captioned_pool(captions_csv)),
        "toys4k-800.jsonl": build_toys4k_800(ids, mapping),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (out / name).write_bytes(data)
    return {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
