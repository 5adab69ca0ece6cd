"""Admission into the registry: validate a bundle against the registry, check its verification record,
and file it as ``submissions/<benchmark>/<model>__<revision>/``.

Light module: standard library + pydantic.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
from pathlib import Path

from leaderboard.bundle import MANIFEST_NAME, RESULTS_NAME, SAMPLES_NAME
from leaderboard.entry import Entry, Verification
from leaderboard.registry import (
    DEFAULT_REGISTRY,
    ENTRY_NAME,
    RegistryError,
    entry_slug,
    folder_owner,
    slugify,
)
from leaderboard.validate import validate_bundle


def add_bundle(bundle: Path, registry: Path = DEFAULT_REGISTRY, *, verification: Verification | None = None,
               date: str | None = None, replace: bool = False) -> Path:
    """Validate ``bundle`` against the registry and file it; return the entry folder.

    Raises ``RegistryError`` listing the problems when the bundle is not valid, when the verification
    record belongs to another bundle or did not pass, or when the entry exists (unless ``replace``).
    """
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
        owner = folder_owner(folder)
        if owner is not None and owner != (sub.model_name, sub.revision):
            # Another model's name slugifies alike ("Tetra/X", "Tetra X"): its own, hashed folder.
            folder = registry / bench / entry_slug(sub, disambiguate=True)
            owner = folder_owner(folder)
        if owner is not None and owner != (sub.model_name, sub.revision):
            raise RegistryError(f"{folder} holds another submission ({owner[0]!r} revision {owner[1]!r}), "
                                f"not {sub.model_name!r} revision {sub.revision!r}; submit under another "
                                "model name or revision")
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


def admission_warnings(registry: Path, folder: Path) -> list[str]:
    """Warnings about the entry just filed in ``folder``: a model name with bidi or invisible characters,
    or one that reads like another entry's (``leaderboard.names``). Shown by ``leaderboard add``."""
    from leaderboard.names import name_warnings
    from leaderboard.registry import iter_entries, read_entry

    mine = read_entry(Path(folder) / ENTRY_NAME).submitter.model_name
    here = Path(folder).resolve()
    others = [e.submitter.model_name for f, e in iter_entries(registry) if f.resolve() != here]
    return name_warnings(mine, others)
