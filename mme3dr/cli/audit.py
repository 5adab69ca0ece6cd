"""``mme3dr audit RUN_DIR``: do the generated assets stand the way the references do? (docs/evaluate.md)"""

from __future__ import annotations

import json
from pathlib import Path

import typer

AUDIT_HELP = """Check that a finished run's generated assets are not turned relative to the references.

Compares each sample's silhouettes with its reference's under the 24 quarter-turn rotations of the \
cube (low resolution, a few views) and warns when one rotation agrees clearly better for most samples, \
e.g. an adapter that forgot to declare up_axis=z. Never changes a score. `evaluate` runs it after \
scoring as well.

Example:

  mme3dr audit runs/demo
  mme3dr audit runs/demo --json
"""


def print_audit(console, result) -> None:
    """The console form of an ``AuditResult``: a yellow warning when flagged, one quiet line otherwise."""
    if result.flagged:
        console.print(f"[bold yellow]warning:[/] {result.message}", highlight=False, soft_wrap=True)
    else:
        console.print(f"frame audit: {result.n} samples checked, no quarter turn agrees better with the "
                      "references for most samples", style="dim", highlight=False, soft_wrap=True)
    if result.skipped:
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(result.skipped.items()))
        console.print(f"frame audit skipped: {skipped}", style="dim", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``audit`` to the root app."""

    @app.command("audit", help=AUDIT_HELP)
    def audit_cmd(
        run_dir: Path = typer.Argument(..., help="A finished run directory (results.json, samples.jsonl)."),
        as_json: bool = typer.Option(False, "--json", help='Print {"flagged", "rotation", "share", "n"}.'),
    ) -> None:
        from rich.console import Console
        from rich.markup import escape

        from mme3dr.audit import audit_run

        try:
            result = audit_run(run_dir)
        except (OSError, ValueError) as e:
            message = escape(str(e).splitlines()[0])
            Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        if as_json:
            typer.echo(json.dumps({k: v for k, v in result.to_dict().items()
                                   if k in ("flagged", "rotation", "share", "n")}, sort_keys=True))
            return
        print_audit(Console(), result)
