"""The README's commands work as written: every `mme3dr` line parses with all its required options, and
the system packages it names are the ones CI installs."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer.main

from mme3dr.cli import app

REPO = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    out = []
    for block in re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            for part in line.split("  #")[0].split("&&"):
                part = part.strip()
                if part.startswith("mme3dr ") and "..." not in part:
                    out.append(part)
    return out


def test_the_readme_shows_the_main_commands() -> None:
    verbs = {shlex.split(c)[1] for c in _readme_commands()}
    assert {"evaluate", "report", "submit", "render", "score", "manifest"} <= verbs


@pytest.mark.parametrize("line", _readme_commands())
def test_each_readme_command_parses_with_its_required_options(line: str) -> None:
    args = shlex.split(line)[1:]
    command = typer.main.get_command(app)
    while hasattr(command, "commands"):  # mme3dr manifest stats → the `stats` command
        command = command.commands[args.pop(0)]
    try:
        command.make_context(command.name, args)  # parses and checks; runs nothing
    except Exception as exc:  # click's errors (typer vendors click): MissingParameter, BadParameter
        message = exc.format_message() if hasattr(exc, "format_message") else repr(exc)
        pytest.fail(f"README command does not parse: {line}\n  {message}")


def test_readme_names_the_system_packages_ci_installs() -> None:
    ci = re.search(r"SYSTEM_PACKAGES=\((.*?)\)", (REPO / ".ci" / "run").read_text()).group(1).split()
    readme = re.search(r"apt-get install -y ([^\n`]+)", (REPO / "README.md").read_text()).group(1).split()
    assert readme == ci
