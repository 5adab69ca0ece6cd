"""``mme3dr models``: the adapters ``--model`` accepts, built in and installed, and what each needs."""

from __future__ import annotations

import typer

#: Terminal columns from which the adapters are one table (narrower: a block of three lines each).
WIDE_TABLE = 140


def register(app: typer.Typer) -> None:
    @app.command("models")
    def models(
        as_json: bool = typer.Option(False, "--json", help="Print the list as JSON."),
    ) -> None:
        """List the built-in and installed adapters with what each needs (extra, weights, GPU)."""
        import json

        from rich.console import Console
        from rich.table import Table

        from mme3dr.models.listing import list_adapters

        rows = list_adapters()
        if as_json:
            typer.echo(json.dumps([r.to_dict() for r in rows], indent=1, ensure_ascii=False))
            return
        console, title = Console(), "adapters for `mme3dr evaluate --model ...`"
        if console.width < WIDE_TABLE:  # seven columns fold words letter by letter: a block per adapter
            from rich.markup import escape

            console.print(title, style="bold", highlight=False)
            for r in rows:
                console.print(f"\n[bold]{escape(r.model)}[/]  ({escape(r.source)}; ready: {escape(r.ready)})",
                              highlight=False)
                console.print(f"  {escape(r.summary)}", highlight=False)
                needs = f"  extra: {r.extra}   weights: {r.weights}   GPU: {r.gpu}"
                console.print(escape(needs), highlight=False)
        else:
            table = Table(title=title)
            for col in ("model", "source", "extra", "weights", "GPU", "ready", "what it is"):
                table.add_column(col, overflow="fold")
            for r in rows:
                table.add_row(r.model, r.source, r.extra, r.weights, r.gpu, r.ready, r.summary)
            console.print(table)
        typer.echo("Arguments: --model-args key=value,... (docs/evaluate.md lists each adapter's).")
