"""What ``--benchmark`` resolves to: the cases with their prompts and each case's reference object.

Light module. ``demo`` is built by ``mme3dr.benchmark.demo``; ``mme3dr-v1`` and ``toys4k-800`` load the
packaged manifest, attach prompts from TRELLIS's captions CSV (``mme3dr.benchmark.captions``) and find each
ground-truth object in a Toys4K source (``mme3dr.benchmark.toys4k``). A case without a prompt or without a
reference object is not dropped: it is kept and recorded as failed (``reference_missing``) with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mme3dr.benchmark.manifest import Manifest
from mme3dr.errors import UserError

__all__ = [
    "BenchmarkInputError", "BenchmarkInputs", "Reference", "guess_source_kind", "load_benchmark_inputs",
]

BENCHMARKS = ("demo", "mme3dr-v1", "toys4k-800")


class BenchmarkInputError(UserError, ValueError):
    """The benchmark's data cannot be used at all (missing Toys4K or captions): what, and which flag."""


@dataclass(frozen=True)
class Reference:
    """A case's ground-truth object: ``path`` in frame ``up_axis``, or ``error`` saying why not."""

    path: Path | None
    up_axis: str = "y"
    error: str | None = None


@dataclass(frozen=True)
class BenchmarkInputs:
    manifest: Manifest  # cases carry their prompts (None when unresolved)
    references: dict[str, Reference]
    #: Why this benchmark can never be leaderboard-eligible (empty for mme3dr-v1 / toys4k-800).
    ineligible_reasons: tuple[str, ...] = ()
    problems: list[str] = field(default_factory=list)
    #: case id -> the captions CSV's raw ``captions`` column (for ``prompt_source="raw_captions_column"``).
    raw_captions: dict[str, str] = field(default_factory=dict)


def guess_source_kind(path: Path) -> str:
    """``blend-zip`` / ``obj-zip`` for the official zips, ``trellis`` for a TRELLIS render layout, else
    ``folder``."""
    if path.suffix == ".zip":
        return "obj-zip" if "obj" in path.name.lower() else "blend-zip"
    if (path / "renders").is_dir() and (path / "metadata.csv").is_file():
        return "trellis"
    return "folder"


def load_benchmark_inputs(
    name: str,
    *,
    toys4k: str | Path | None = None,
    toys4k_kind: str | None = None,
    captions: str | Path | None = None,
    cache_dir: str | Path,
    up_axis: str | None = None,
) -> BenchmarkInputs:
    """Resolve ``--benchmark`` (``demo``, ``mme3dr-v1``, ``toys4k-800`` or a manifest path)."""
    if name == "demo":
        from mme3dr.benchmark import demo

        paths = demo.write_references(Path(cache_dir) / "demo-references")
        refs = {k: Reference(p, "y") for k, p in paths.items()}
        return BenchmarkInputs(demo.demo_manifest(), refs,
                               ("benchmark 'demo' is a built-in pipeline demo, not MME-3DR",))

    from mme3dr.benchmark.captions import (
        CaptionsError,
        attach_prompts,
        default_captions_path,
        read_captions_csv,
    )
    from mme3dr.benchmark.manifest import ManifestError, load_manifest
    from mme3dr.benchmark.toys4k import Toys4KError, open_source, resolve_references

    if not Path(name).is_file() and name not in BENCHMARKS:
        import difflib

        hint = difflib.get_close_matches(name, BENCHMARKS, n=1)
        raise BenchmarkInputError(
            f"--benchmark {name!r} is not a built-in benchmark ({', '.join(BENCHMARKS)}) and no such "
            "manifest file" + (f"; did you mean {hint[0]!r}?" if hint else "; pass a built-in name or the "
                               "path of a .jsonl manifest"))
    try:
        manifest = load_manifest(name)
    except ManifestError as e:
        raise BenchmarkInputError(str(e)) from None
    if toys4k is None:
        raise BenchmarkInputError(
            f"--benchmark {name} needs the Toys4K objects: pass --toys4k PATH (the official "
            "toys4k_blend_files.zip or toys4k_obj_files.zip, a TRELLIS render folder, or a folder of "
            "meshes), plus --captions Toys4k.csv. Toys4K is available from its authors (rehg-lab, "
            "lowshot-shapebias). To try the pipeline without it, use --benchmark demo."
        )
    captions_path = Path(captions) if captions else default_captions_path()
    try:
        table = read_captions_csv(captions_path)
    except CaptionsError as e:
        raise BenchmarkInputError(f"{e} (or pass --captions PATH)") from None
    cases, missing = attach_prompts(manifest.cases, table)
    manifest = manifest.with_cases(cases)
    source_path = Path(toys4k).expanduser()
    kind = toys4k_kind or guess_source_kind(source_path)
    options = {"up_axis": up_axis} if up_axis else {}
    if kind in ("blend-zip", "obj-zip"):
        options["cache_dir"] = Path(cache_dir) / "toys4k"
    try:
        source = open_source(kind, source_path, **options)
        resolved = resolve_references(manifest.cases, source)
    except Toys4KError as e:
        raise BenchmarkInputError(str(e)) from None
    refs: dict[str, Reference] = {}
    for case, ref in zip(manifest.cases, resolved, strict=True):
        if case.case_id in missing:
            refs[case.case_id] = Reference(None, ref.up_axis, f"{case.file_identifier}: no caption in "
                                           f"{captions_path.name}, so the case has no prompt")
        else:
            ok = ref.ok
            refs[case.case_id] = Reference(ref.path if ok else None, ref.up_axis, None if ok else ref.error)
    raw = {c.case_id: rec.row.get("captions", "") for c in manifest.cases if (rec := table.lookup(c))}
    return BenchmarkInputs(manifest, refs, (), list(table.problems), raw)
