"""``mme3dr manifest …`` and ``mme3dr data …``: the benchmark's cases, captions and Toys4K assets.

Everything here is light (no torch, no OpenGL); ``datasets`` and ``huggingface_hub`` load only in the
commands that need them.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

manifest_app = typer.Typer(
    help="Benchmark manifests: build MME-3DR v1 from the Toys4K id list, show, validate, count, export.",
    no_args_is_help=True,
)
data_app = typer.Typer(
    help="Benchmark data: TRELLIS captions (prompts) and Toys4K reference assets.", no_args_is_help=True
)

NAME_HELP = "A built-in manifest (mme3dr-v1, toys4k-800) or the path of a .jsonl manifest."


def _fail(message: str) -> None:
    """One red line on stderr and exit 1: the user-facing error style of this CLI."""
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(1)


def _load(name: str, captions: Path | None = None):
    from mme3dr.benchmark.captions import CaptionsError, attach_prompts, read_captions_csv
    from mme3dr.benchmark.manifest import ManifestError, load_manifest

    try:
        manifest = load_manifest(name)
    except ManifestError as e:
        _fail(str(e))
    if captions is None:
        return manifest, []
    try:
        table = read_captions_csv(captions)
    except CaptionsError as e:
        _fail(str(e))
    cases, missing = attach_prompts(manifest.cases, table)
    for p in table.problems:
        typer.secho(f"warning: {p}", fg="yellow", err=True)
    if missing:
        typer.secho(
            f"warning: {len(missing)} case(s) have no caption in {captions} (e.g. {missing[0]}); "
            "they keep prompt = null",
            fg="yellow",
            err=True,
        )
    return manifest.with_cases(cases), missing


@manifest_app.command("build")
def build(
    toys_dict: Path = typer.Option(..., "--toys-dict", help="Toys4K toys_dict.json (4,000 objects)."),
    out: Path = typer.Option(Path("data/mme3dr/v1"), "--out", help="Folder to write the files into."),
    category_map: Path | None = typer.Option(
        None, "--category-map", help="category_map.json to use (default: the packaged one)."
    ),
    captions: Path | None = typer.Option(
        None,
        "--captions",
        help="Toys4k.csv: draw v1 only from objects that have a caption (a different list and hash "
        "from the shipped v1, which was drawn from all 4,000).",
    ),
) -> None:
    """Regenerate category_map.json, cases.jsonl (MME-3DR v1) and toys4k-800.jsonl, byte for byte.

    The selection rule is a seeded hash ranking, documented in mme3dr/benchmark/manifest_build.py and
    docs/benchmark.md: the same id list always gives the same bytes.
    """
    from mme3dr.benchmark.manifest import ManifestError
    from mme3dr.benchmark.manifest_build import build_all

    try:
        shas = build_all(toys_dict, out, category_map, captions)
    except ManifestError as e:
        _fail(str(e))
    for name, sha in shas.items():
        typer.echo(f"{out / name}  sha256 {sha}")


@manifest_app.command("show")
def show(
    name: str = typer.Argument("mme3dr-v1", help=NAME_HELP),
    category: str | None = typer.Option(None, "--category", help="Only this reasoning category."),
    limit: int = typer.Option(20, "--limit", help="Rows to print (0: all)."),
    captions: Path | None = typer.Option(None, "--captions", help="Toys4k.csv, to show resolved prompts."),
) -> None:
    """Print the cases as a table."""
    from rich.console import Console
    from rich.table import Table

    manifest, _ = _load(name, captions)
    rows = [c for c in manifest.cases if category is None or c.category == category]
    table = Table(title=f"{manifest.name} ({len(rows)} of {len(manifest)} cases)")
    for col in ("case_id", "category", "toys4k_category", "file_identifier", "prompt"):
        table.add_column(col, overflow="fold")
    for c in rows[: limit or None]:
        table.add_row(c.case_id, c.category, c.toys4k_category, c.file_identifier, c.prompt or "")
    Console().print(table)


@manifest_app.command("stats")
def stats(name: str = typer.Argument("mme3dr-v1", help=NAME_HELP)) -> None:
    """Count cases per reasoning category and print the manifest hash."""
    manifest, _ = _load(name)
    typer.echo(f"manifest: {manifest.name} (version {manifest.version})")
    typer.echo(f"sha256:   {manifest.sha256}")
    typer.echo(f"cases:    {len(manifest)}")
    typer.echo(f"objects:  {len({c.file_identifier for c in manifest})} distinct, "
               f"{len({c.toys4k_category for c in manifest})} Toys4K categories")
    for cat, n in manifest.counts().items():
        typer.echo(f"  {cat:<12}{n:>5}")
    typer.echo("counts:   " + "/".join(str(n) for n in manifest.counts().values()))


@manifest_app.command("validate")
def validate(
    name: str = typer.Argument("mme3dr-v1", help=NAME_HELP),
    toys_dict: Path | None = typer.Option(
        None, "--toys-dict", help="Also check every object exists in this Toys4K id list."
    ),
) -> None:
    """Check ids are unique, no object repeats, categories are known (and counts, for mme3dr-v1)."""
    from mme3dr.benchmark.manifest import (
        ManifestError,
        expected_counts_for,
        read_category_map,
        validate_manifest,
    )
    from mme3dr.benchmark.manifest_build import read_toys_dict

    manifest, _ = _load(name)
    try:
        ids = read_toys_dict(toys_dict) if toys_dict else None
    except ManifestError as e:
        _fail(str(e))
    cmap = read_category_map() if manifest.name in ("mme3dr-v1", "toys4k-800") else None
    problems = validate_manifest(
        manifest, id_list=ids, expected_counts=expected_counts_for(manifest), category_map=cmap
    )
    if problems:
        for p in problems:
            typer.secho(f"invalid: {p}", fg="red", err=True)
        raise typer.Exit(1)
    checked = " and the Toys4K id list" if ids else ""
    typer.secho(f"ok: {manifest.name}, {len(manifest)} cases, sha256 {manifest.sha256}{checked}", fg="green")


@manifest_app.command("export")
def export(
    out: Path = typer.Argument(..., help="Output folder (hf) or file (jsonl, csv)."),
    name: str = typer.Option("mme3dr-v1", "--manifest", "-m", help=NAME_HELP),
    fmt: str = typer.Option("hf", "--format", help="hf (datasets.save_to_disk), jsonl, or csv."),
    captions: Path | None = typer.Option(None, "--captions", help="Toys4k.csv, to include prompts."),
) -> None:
    """Export the cases: a Hugging Face dataset folder (reload with datasets.load_from_disk), JSONL or CSV."""
    import csv

    from mme3dr.benchmark.manifest import to_hf_dataset

    manifest, _ = _load(name, captions)
    rows = [c.to_dict() for c in manifest.cases]
    if fmt == "hf":
        try:
            to_hf_dataset(manifest).save_to_disk(str(out))
        except ImportError as e:
            _fail(f"{e}; install the hf extra: pip install 'mme3dr[hf]'")
    elif fmt == "jsonl":
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    elif fmt == "csv":
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    else:
        _fail(f"unknown --format {fmt!r}; use hf, jsonl or csv")
    typer.echo(f"wrote {len(rows)} cases of {manifest.name} (sha256 {manifest.sha256}) to {out}")


@data_app.command("fetch-captions")
def fetch_captions_cmd(
    dest: Path | None = typer.Option(
        None, "--dest", help="Where to put Toys4k.csv (default: $MME3DR_HOME/toys4k/Toys4k.csv)."
    ),
) -> None:
    """Download TRELLIS-500K's Toys4k.csv (captions -> prompts) from the Hugging Face hub.

    Offline, it prints exactly which file to download by hand and where to place it.
    """
    from mme3dr.benchmark.captions import CaptionsError, fetch_captions

    try:
        path = fetch_captions(dest)
    except CaptionsError as e:
        _fail(str(e))
    typer.echo(f"captions: {path}")


@data_app.command("convert-blend")
def convert_blend(
    blend_zip: Path = typer.Option(..., "--blend-zip", help="The official toys4k_blend_files.zip."),
    name: str = typer.Option("mme3dr-v1", "--manifest", "-m", help=NAME_HELP),
    cache: Path | None = typer.Option(None, "--cache", help="Cache folder (default: beside the zip)."),
    blender: str | None = typer.Option(
        None, "--blender", help="A `blender` binary or a python with bpy (default: search; see --help)."
    ),
    captions: Path | None = typer.Option(
        None, "--captions", help="Toys4k.csv: verify each .blend against TRELLIS's sha256."
    ),
    batch: int = typer.Option(16, "--batch", min=1, help="Files per Blender process."),
    limit: int = typer.Option(0, "--limit", help="Only the first N cases (0: all)."),
    report: Path | None = typer.Option(None, "--report", help="Write one JSON line per case here."),
) -> None:
    """Convert a manifest's Toys4K .blend objects to .glb (Y up) through an external Blender, cached.

    Blender is found from --blender, $MME3DR_BLENDER, the venv of `bash .ci/install_blender`
    (~/.cache/mme3dr/blender-venv), then `blender` on PATH. Objects that fail are listed with the reason;
    the others still convert. Exit code 1 if any failed.
    """
    from rich.progress import Progress

    from mme3dr.benchmark.blender_convert import BlenderNotFound
    from mme3dr.benchmark.toys4k import Toys4KError, open_source, resolve_references

    manifest, _ = _load(name, captions)
    cases = list(manifest.cases[: limit or None])
    src = open_source("blend-zip", blend_zip, cache_dir=cache, blender=blender)
    refs = []
    with Progress() as progress:
        task = progress.add_task(f"converting {len(cases)} objects", total=len(cases))
        for i in range(0, len(cases), batch):
            try:
                refs += resolve_references(cases[i : i + batch], src)
            except (Toys4KError, BlenderNotFound) as e:
                _fail(str(e))
            progress.advance(task, len(cases[i : i + batch]))
    failed = [r for r in refs if not r.ok]
    for r in failed:
        typer.secho(f"failed: {r.case_id}: {r.error}", fg="red", err=True)
    if report:
        lines = []
        for r in refs:
            rec = {"case_id": r.case_id, "file_identifier": r.file_identifier, "up_axis": r.up_axis}
            rec.update(path=str(r.path) if r.path else None, sha256=r.sha256, error=r.error, **r.detail)
            lines.append(json.dumps(rec) + "\n")
        report.write_text("".join(lines))
    typer.echo(f"{len(refs) - len(failed)} converted, {len(failed)} failed (up_axis of the .glb files: y)")
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``manifest`` and ``data`` command groups to the root app."""
    app.add_typer(manifest_app, name="manifest")
    app.add_typer(data_app, name="data")
