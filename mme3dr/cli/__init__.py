"""The `mme3dr` command line (typer + rich).

Each stage owns a module here with a ``register(app)`` function; the modules import their heavy
dependencies inside the command bodies so that ``mme3dr --help`` stays fast.
"""

from __future__ import annotations

import typer

from mme3dr import __version__

app = typer.Typer(
    name="mme3dr",
    help=(
        "MME-3DR: evaluate text-to-3D models on reasoning-intensive prompts.\n\n"
        "Typical use: `mme3dr evaluate --model primitives --benchmark demo --profile smoke --out runs/demo`."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"mme3dr {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """MME-3DR benchmark toolkit."""
    _one_line_warnings()


def _one_line_warnings() -> None:
    """Library warnings (e.g. the KD subset-size clamp) print as one yellow ``warning:`` line, not as
    Python's ``file:line: UserWarning`` followed by the source line."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ARG001
        typer.secho(f"warning: {message}", fg="yellow", err=True)

    warnings.showwarning = show


#: The command modules of mme3dr itself, in --help order; each has ``register(app)``. A new stage adds its
#: module here (or, from another package, registers through the ``mme3dr.commands`` entry point group).
COMMAND_MODULES = ("evaluate", "models", "judge", "render", "metrics", "manifest", "compare", "audit")
#: Entry point group of commands from other packages (the leaderboard's ``submit`` and ``leaderboard``):
#: each entry point is a ``register(app)`` function.
COMMANDS_GROUP = "mme3dr.commands"


def _register_all() -> None:
    import importlib
    from importlib.metadata import entry_points

    for name in COMMAND_MODULES:
        importlib.import_module(f"mme3dr.cli.{name}").register(app)
    for ep in entry_points(group=COMMANDS_GROUP):
        ep.load()(app)


_register_all()


#: Columns that rich lays tables and long lines out for when the output is a file or a pipe (a log):
#: its default there is 80, which folded the results table and cut sentences mid-phrase. A table
#: only takes the width it needs; ``COLUMNS`` set by the user wins.
LOG_COLUMNS = "160"


def main() -> None:
    import os
    import sys

    if not (sys.stdout.isatty() or sys.stderr.isatty()):
        os.environ.setdefault("COLUMNS", LOG_COLUMNS)
    app()
