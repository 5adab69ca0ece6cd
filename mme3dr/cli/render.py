"""`mme3dr render`: canonical multi-view renders of 3D assets (NNN.png + transforms.json per asset)."""

from __future__ import annotations

from pathlib import Path

import typer

_HELP = """Render 3D assets from a camera rig into TRELLIS-layout folders (NNN.png + transforms.json).

Each asset is loaded (GLB/GLTF/OBJ/PLY/STL/OFF), validated, normalised into the canonical frame (centred, longest side 1, Y up) and rendered with the protocol-v1 shading. Results go to OUT/<asset name>/. Renders are cached by content (asset sha256, rig, shading, backend) under OUT/.render-cache unless --cache points elsewhere, so nothing renders twice.

Bad assets are listed with their reason at the end (and in OUT/render_report.json); the exit code is non-zero only when every asset failed.

[bold]Examples[/bold]

  mme3dr render a.glb b.obj --rig eval24 --out renders/

  mme3dr render mesh.ply --transforms transforms.json --out renders/

With --transforms the cameras come from the file and the asset is rendered in its own frame (no normalisation), since such files come with their own normalised mesh.
"""  # noqa: E501


def _output_names(paths: list[Path], shas: list[str | None]) -> list[str]:
    """Folder name per asset: its file stem, made unique with a hash prefix where stems collide."""
    stems = [p.stem for p in paths]
    names = []
    for p, sha in zip(paths, shas, strict=True):
        if stems.count(p.stem) > 1:
            names.append(f"{p.stem}-{(sha or p.suffix.lstrip('.'))[:8]}")
        else:
            names.append(p.stem)
    return names


def render_command(
    assets: list[Path] = typer.Argument(
        ..., help="Asset files (.glb .gltf .obj .ply .stl .off).", show_default=False
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: one OUT/<asset name>/ per asset."),
    rig: str = typer.Option("eval24", "--rig",
                            help="Built-in rig: eval24 (24 views), reward6 or video6 (6 views)."),
    transforms: Path | None = typer.Option(
        None,
        "--transforms",
        help="Cameras from a NeRF-style transforms.json instead of --rig; the asset keeps its own frame.",
    ),
    size: int | None = typer.Option(None, "--size", min=16, max=4096,
                                    help="Image size in pixels (default: the rig's, 512)."),
    up_axis: str = typer.Option("y", "--up-axis", help="Assets' up axis: y (glTF) or z (Blender, Toys4K)."),
    shading: str = typer.Option(
        "protocol", "--shading", help="protocol (asset colours) or plain_white (the authors' script)."
    ),
    workers: int = typer.Option(1, "--workers", "-j", min=1, max=256,
                                help="Worker processes, each its own renderer."),
    backend: str = typer.Option(
        "auto", "--backend", help="OpenGL backend: auto or egl (moderngl on headless EGL; the only one)."
    ),
    cache: Path | None = typer.Option(None, "--cache", help="Render cache (default: OUT/.render-cache)."),
    max_faces: int = typer.Option(2_000_000, "--max-faces", min=1,
                                  help="Reject assets with more faces than this."),
) -> None:
    from rich.console import Console
    from rich.table import Table

    from mme3dr.render.cache import export_entry
    from mme3dr.render.cameras import get_rig, rig_from_transforms
    from mme3dr.render.pool import render_batch, reuse_freed_memory
    from mme3dr.render.renderer import BACKENDS, SHADINGS

    reuse_freed_memory()  # with --workers 1 this process renders every view
    console = Console(stderr=True)
    if up_axis not in ("y", "z"):
        raise typer.BadParameter("must be y or z", param_hint="--up-axis")
    if shading not in SHADINGS:
        raise typer.BadParameter("must be protocol or plain_white", param_hint="--shading")
    if backend not in ("auto", *BACKENDS):
        raise typer.BadParameter("must be auto or egl", param_hint="--backend")
    _usable_output_dirs(console, out, cache)
    try:
        camera_rig = rig_from_transforms(transforms) if transforms else get_rig(rig)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--transforms" if transforms else "--rig") from None
    if size is not None:
        camera_rig = camera_rig.with_size(size)
    normalise = transforms is None
    if transforms is not None:
        up_axis = "y"  # the asset's own frame: the transforms file's cameras were made for it
    cache_root = cache if cache is not None else out / ".render-cache"
    try:
        outcomes = render_batch(
            assets, camera_rig, cache_root, workers=workers, up_axis=up_axis, shading=shading,
            backend=None if backend == "auto" else backend, normalise=normalise, max_faces=max_faces,
        )
    except RuntimeError as exc:  # no OpenGL context could be opened: an environment problem
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    except OSError as exc:
        from mme3dr.output_files import is_disk_full

        if not is_disk_full(exc):
            raise
        console.print(f"[red]error:[/red] no space left on the device while writing {exc.filename or out}; "
                      "free some space and run the command again (finished renders are cached)",
                      soft_wrap=True)
        raise typer.Exit(2) from None
    names = _output_names(list(assets), [o.asset_sha256 for o in outcomes])
    failed = []
    for name, outcome in zip(names, outcomes, strict=True):
        if outcome.ok:
            export_entry(outcome.render_dir, out / name)
        else:
            failed.append(outcome)
    _write_report(out, camera_rig, names, outcomes)
    n_ok = len(outcomes) - len(failed)
    n_cached = sum(1 for o in outcomes if o.ok and o.cached)
    console.print(
        f"rendered {n_ok}/{len(outcomes)} assets ({n_cached} from cache) with rig {camera_rig.name} "
        f"({camera_rig.n_views} views, {camera_rig.width}x{camera_rig.height}) into {out}"
    )
    if failed:
        table = Table(title=f"{len(failed)} asset(s) failed", title_justify="left")
        table.add_column("asset")
        table.add_column("reason")
        table.add_column("detail")
        for o in failed:
            table.add_row(o.asset_path, o.reason or "", o.detail or o.error or "")
        console.print(table)
    if outcomes and n_ok == 0:
        raise typer.Exit(1)


def _usable_output_dirs(console, out: Path, cache: Path | None) -> None:
    """``--out`` (and ``--cache``) must be folders this process can write: else one line, exit 2."""
    from rich.markup import escape

    from mme3dr.output_files import OutputDirError, prepare_output_dir

    try:
        prepare_output_dir(out, "--out")
        if cache is not None:
            prepare_output_dir(cache, "--cache")
    except OutputDirError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None


def _write_report(out: Path, rig, names: list[str], outcomes) -> Path:
    """OUT/render_report.json: one record per asset (folder, sha256, cached, failure reason, detail)."""
    import json

    from mme3dr.output_files import atomic_write_text

    records = [
        {
            "asset": o.asset_path,
            "output": name if o.ok else None,
            "asset_sha256": o.asset_sha256,
            "ok": o.ok,
            "cached": o.cached,
            "failure": o.reason,
            "detail": o.detail or o.error or "",
        }
        for name, o in zip(names, outcomes, strict=True)
    ]
    out.mkdir(parents=True, exist_ok=True)
    path = out / "render_report.json"
    report = {"rig": rig.name, "rig_hash": rig.hash, "assets": records}
    atomic_write_text(path, json.dumps(report, indent=2) + "\n")
    return path


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    app.command("render", help=_HELP, no_args_is_help=True)(render_command)
