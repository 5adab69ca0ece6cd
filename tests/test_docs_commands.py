"""Every command the README and docs/*.md show exists with the flags it uses, and no doc points outside the
project.

A user copies commands from the docs; a renamed flag that the docs still show is a first-hour failure. This
walks every fenced code block of README.md and docs/*.md, takes each `mme3dr`, `leaderboard` and `ar3d-r1`
command (after `&&`, `|` or `;` too), resolves its sub-command through the real command-line apps, and checks
that every `--flag` it uses is an option of that command. `ar3d-r1 sft/train` take every config field as a
flag (TRL style), so their flags are checked against the dataclass fields as well.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path

import pytest
import typer.main

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PROGRAMS = ("mme3dr", "leaderboard", "ar3d-r1")


def _blocks(path: Path) -> list[str]:
    return re.findall(r"```[a-z]*\n(.*?)```", path.read_text(encoding="utf-8"), re.S)


def doc_commands() -> list[tuple[str, str]]:
    """``(doc name, command line)`` for every project command in a code block of the docs."""
    found = []
    for path in DOCS:
        for block in _blocks(path):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" #")[0].strip().removeprefix("$ ")
                for part in re.split(r"&&|\|\||[|;]", line):
                    part = part.strip()
                    if part.split(" ", 1)[0] in PROGRAMS:
                        found.append((str(path.relative_to(REPO)), part))
    return found


def _app(program: str):
    if program == "mme3dr":
        from mme3dr.cli import app
    elif program == "leaderboard":
        from leaderboard.cli import app
    else:
        from ar3d_r1.cli import app
    return typer.main.get_command(app)


def _config_fields(command) -> set[str]:
    """The dataclass fields that `ar3d-r1 sft` / `ar3d-r1 train` take as flags (empty for other commands)."""
    if command.name not in {"sft", "train"} or not command.context_settings.get("allow_extra_args"):
        return set()
    from ar3d_r1 import config

    cls = config.SFTConfig if command.name == "sft" else config.HiGRPOConfig
    return {f"--{f.name}" for f in dataclasses.fields(cls)}


def _resolve(line: str) -> tuple:
    tokens = shlex.split(line)
    command, args = _app(tokens[0]), tokens[1:]
    while hasattr(command, "commands"):  # typer vendors click: a group is whatever has sub-commands
        words = [a for a in args if not a.startswith("-")]
        if not words:
            break
        name = words[0]
        assert name in command.commands, f"no command {name!r} in {command.name!r}"
        args = args[args.index(name) + 1:]
        command = command.commands[name]
    return command, args


@pytest.mark.parametrize(("doc", "line"), doc_commands())
def test_each_doc_command_uses_flags_that_exist(doc: str, line: str) -> None:
    command, args = _resolve(line)
    known = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)} | {"--help"}
    known |= _config_fields(command)
    unknown = [a.split("=", 1)[0] for a in args
               if a.startswith("--") and a.split("=", 1)[0] not in known]
    assert not unknown, f"{doc}: `{line}` uses flags that `{command.name}` does not have: {unknown}"


def test_the_docs_show_commands_of_every_program() -> None:
    assert {line.split(" ", 1)[0] for _, line in doc_commands()} == set(PROGRAMS)


def _outside(path: Path) -> list[str]:
    """Markdown links that leave the project or name a missing file, and code spans that climb out of it."""
    text = path.read_text(encoding="utf-8")
    bad = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:|#", target):  # a web address or an anchor on the same page
            continue
        resolved = (path.parent / target.split("#", 1)[0]).resolve()
        if not resolved.is_relative_to(REPO) or not resolved.exists():
            bad.append(target)
    for span in re.findall(r"`(\.\./[^`\s]*)`", text):  # `../x.png` inside the project is an example path
        if not (path.parent / span).resolve().is_relative_to(REPO):
            bad.append(span)
    # the developers' background notes (design, paper facts) are not shipped with the project
    bad += re.findall(r"\b(?:design|paper-facts|shapellm-facts|authors-trainer-facts)\.md", text)
    return bad


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_no_doc_links_a_file_outside_the_project(path: Path) -> None:
    outside = _outside(path)
    assert not outside, f"{path.name} points to files a user of the project does not have: {outside}"
