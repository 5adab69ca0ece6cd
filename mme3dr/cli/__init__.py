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


def _register_all() -> None:
    # Plain imports: each module adds its commands. Order is the order shown in --help.
    from mme3dr.cli import audit as _audit
    from mme3dr.cli import compare as _compare
    from mme3dr.cli import evaluate as _evaluate
    from mme3dr.cli import judge as _judge
    from mme3dr.cli import manifest as _manifest
    from mme3dr.cli import metrics as _metrics
    from mme3dr.cli import models as _models
    from mme3dr.cli import render as _render
    from mme3dr.cli import submit as _submit

    for module in (_evaluate, _models, _judge, _render, _metrics, _manifest, _submit, _compare, _audit):
        module.register(app)
    try:
        from leaderboard.cli import app as leaderboard_app
    except ImportError:  # leaderboard package not installed alongside
        return
    app.add_typer(leaderboard_app, name="leaderboard", help="Validate, verify and publish submissions.")


_register_all()


def main() -> None:
    app()
