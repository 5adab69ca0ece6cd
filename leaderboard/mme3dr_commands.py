"""The leaderboard's commands on the ``mme3dr`` command line: ``mme3dr submit`` and ``mme3dr leaderboard``.

``mme3dr`` never imports the leaderboard: this module's :func:`register` reaches the ``mme3dr`` app
through the ``mme3dr.commands`` entry point group (pyproject.toml), the way adapters reach the model
registry through ``mme3dr.models``. Without the leaderboard installed, ``mme3dr`` simply has no
``submit``/``leaderboard`` commands; ``leaderboard`` is also its own console script.

``mme3dr submit RUN_DIR --out BUNDLE`` packs a finished run into a leaderboard submission bundle; the
packing and validation live in ``leaderboard/`` (torch-free); this module only parses options.
"""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add ``submit`` and the ``leaderboard`` command group to the ``mme3dr`` app (the entry point)."""
    from leaderboard.cli import app as leaderboard_app

    app.command(name="submit")(submit)
    app.add_typer(leaderboard_app, name="leaderboard", help="Validate, verify and publish submissions.")


def submit(
    run_dir: Path = typer.Argument(..., help="A finished `mme3dr evaluate --out` folder."),
    out: Path = typer.Option(..., "--out", help="Bundle to write, e.g. my-model.mme3dr.tar.gz."),
    evaluator: str = typer.Option(..., help="Person or lab who generated and scored the assets."),
    relationship: str = typer.Option(
        ..., "--relationship", help="'first-party' (the model's authors ran it) or 'third-party'."
    ),
    contact: str = typer.Option(..., help="E-mail address or http(s) URL for questions about this "
                                "submission."),
    model_name: str | None = typer.Option(None, help="Display name (default: results' model_info.name)."),
    revision: str | None = typer.Option(None, help="Checkpoint/tag (default: results' model_info.revision)."),
    licence: str | None = typer.Option(None, help="Licence of the weights (default: model_info.license)."),
    link: str | None = typer.Option(None, help="http(s) link to paper/code (default: model_info.url)."),
    description: str = typer.Option("", help="A short description shown on the submission's page."),
    no_assets: bool = typer.Option(
        False, "--no-assets", help="Leave the generated files out and list only their sha256 (cannot be "
        "re-scored by a verifier)."
    ),
    thumbnails: int = typer.Option(10, min=0, max=50, help="How many small renders to include."),
    cache_dir: Path | None = typer.Option(None, help="The run's --cache-dir, if not RUN_DIR/cache."),
    keep_invalid: bool = typer.Option(
        False, help="Keep the bundle even when it does not validate (for inspection; it will be refused)."
    ),
    overwrite: bool = typer.Option(False, help="Replace an existing file at --out."),
) -> None:
    """Pack results.json, samples.jsonl, the assets and thumbnails into one bundle, then validate it."""
    from pydantic import ValidationError
    from rich.console import Console
    from rich.markup import escape

    from leaderboard.bundle import BundleError, Submitter
    from leaderboard.pack import pack_run
    from leaderboard.validate import validate_bundle
    from mme3dr.results import load_results

    console = Console(stderr=True)
    if out.exists() and not overwrite:
        console.print(f"[red]error:[/] {escape(str(out))} already exists; pass --overwrite to replace it "
                      "(or another --out)", soft_wrap=True)
        raise typer.Exit(1)
    try:
        info = load_results(Path(run_dir) / "results.json").model_info
    except ValueError as exc:  # no run there, or not a valid results.json: unusable input
        console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    try:
        submitter = Submitter(
            model_name=model_name or info.name, revision=revision or info.revision, evaluator=evaluator,
            evaluator_relationship=relationship, contact=contact, licence=licence or info.license,
            link=link or info.url, description=description,
        )
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        console.print(f"[red]error:[/] bad submitter metadata: {escape(errors)}", soft_wrap=True)
        raise typer.Exit(2) from None
    try:
        with console.status("packing the bundle (hashing every file)…"):
            digest = pack_run(run_dir, out, submitter, include_assets=not no_assets, n_thumbnails=thumbnails,
                              cache_dir=cache_dir)
        with console.status("validating the bundle…"):
            report = validate_bundle(out)
    except BundleError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from None
    if not report.ok:
        # escape: the summary's "[check]" tags are text, not rich markup
        console.print(f"[red]{escape(report.summary())}[/red]", soft_wrap=True)
        if keep_invalid:
            console.print(f"kept the invalid bundle at {escape(str(out))} (--keep-invalid)")
        else:
            out.unlink(missing_ok=True)
            console.print("no bundle written; fix the run, or pass --keep-invalid to keep the bundle and see "
                          "it with every reason: leaderboard build --preview BUNDLE", soft_wrap=True)
        raise typer.Exit(1)
    typer.echo(f"{out}  sha256 {digest}")
    console.print("[green]valid.[/green] Send the bundle to the leaderboard maintainers "
                  "(see docs/leaderboard.md).")
