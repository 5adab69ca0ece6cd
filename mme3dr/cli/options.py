"""Command-line options generated from a config dataclass, and the one handler of user errors.

``config_command(EvalConfig, body)`` returns a typer command whose options are the config's fields
(flags, help, choices, ranges from each field's ``opt`` metadata, ``mme3dr.harness.config``): the
command builds the config and hands it to ``body``, so the command and the Python API cannot disagree
on an option. ``user_errors`` turns a :class:`mme3dr.errors.UserError` (and a full disk) into one
``error:`` line and exit 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import inspect
import typing
from collections.abc import Callable, Iterator
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import typer

from mme3dr.errors import UserError, one_line

__all__ = ["config_command", "error_exit", "user_errors"]

_PANELS = {"run": None, "outputs": "Outputs", "judge": "VLM judge (docs/judge.md)"}


def error_exit(console, message: str, code: int = 2) -> typing.NoReturn:
    """One ``error:`` line on ``console`` (never wrapped, ``[...]`` kept as text), then exit ``code``."""
    from rich.markup import escape

    console.print(f"[red]error:[/] {escape(str(message))}", soft_wrap=True, highlight=False)
    raise typer.Exit(code)


@contextlib.contextmanager
def user_errors(console, out: Path | None = None) -> Iterator[None]:
    """Print a user mistake (``UserError``) or a full disk as one ``error:`` line and exit 2."""
    from mme3dr.output_files import is_disk_full

    try:
        yield
    except UserError as exc:
        error_exit(console, one_line(exc))
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        where = exc.filename or out
        error_exit(console, f"no space left on the device while writing {where}; every file written so far "
                            f"is complete. Free some space, then re-run the same command with --resume"
                            + (f" (--out {out})" if out else ""))


def _cli_type(hint: Any) -> Any:
    """The option's type: the field's, with ``tuple[str, ...]`` given as one comma-separated string."""
    if typing.get_origin(hint) is tuple:
        return str
    return hint


def _option(f, hint) -> inspect.Parameter:
    meta = f.metadata
    flags = meta["flags"] or ("--" + f.name.replace("_", "-"),)
    default = f.default if f.default is not MISSING else f.default_factory()
    if meta["csv"]:
        default = ",".join(default)
    kwargs: dict[str, Any] = {"help": meta["help"], "rich_help_panel": _PANELS[meta["group"]]}
    if meta["choices"]:  # listed in the help; a value outside them is the config's one-line error
        kwargs["metavar"] = "[" + "|".join(meta["choices"]) + "]"
    for bound in ("min", "max"):
        if meta[bound] is not None:
            kwargs[bound] = meta[bound]
    option = typer.Option(... if meta["required"] else default, *flags, **kwargs)
    annotation = _cli_type(hint)
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)


def config_command(config_cls: type, body: Callable[[Any], None], doc: str) -> Callable[..., None]:
    """A typer command (register it with ``app.command(name, help=doc)``) taking one option per field of
    the dataclass ``config_cls``; it builds the config (a ``UserError`` is one ``error:`` line) and
    calls ``body(config)``."""
    hints = typing.get_type_hints(config_cls)
    params = [_option(f, hints[f.name]) for f in fields(config_cls)]
    csv_fields = {f.name for f in fields(config_cls) if f.metadata["csv"]}

    def command(**values: Any) -> None:
        from rich.console import Console

        for name in csv_fields:
            values[name] = tuple(x.strip() for x in values[name].split(",") if x.strip())
        with user_errors(Console(stderr=True)):
            config = config_cls(**values)
        body(config)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
    command.__doc__ = doc
    command.__name__ = config_cls.__name__
    return command
