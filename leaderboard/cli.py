"""`leaderboard` command line (also mounted as `mme3dr leaderboard`)."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="leaderboard", help="Validate, verify and publish MME-3DR submissions.", no_args_is_help=True
)


@app.callback()
def _root() -> None:
    """MME-3DR leaderboard tools."""


def main() -> None:
    app()
