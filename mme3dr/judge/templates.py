"""Versioned prompt templates: one JSON file per (name, version), shipped as package data.

A template file ``mme3dr/judge/templates/<name>.v<version>.json`` holds::

    {"name": ..., "version": 1, "description": ..., "source": ...,
     "system": "text" | null, "user": "text with ${variables}", "images": "before" | "after",
     "variables": ["prompt", ...], "parser": {...}}

The template's ``sha256`` is the sha256 of the file's bytes, so any edit (wording, parser spec,
ranges) gives a new hash; it is recorded with every score and is part of the response-cache key. Edit a
published template by adding ``.v<version+1>.json``, never by rewriting one in place.

Placeholders use :class:`string.Template` syntax (``${prompt}``), so braces in the prompt text (JSON
examples) need no escaping. Every declared variable must be given, and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from dataclasses import dataclass, field
from importlib import resources

from mme3dr.judge.images import EncodedImage

_FILE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9_-]*)\.v(?P<version>\d+)\.json$")


@dataclass(frozen=True)
class PromptTemplate:
    """A loaded template. ``sha256`` is of the file bytes; ``parser`` is the reply spec (see parsers)."""

    name: str
    version: int
    sha256: str
    user: str
    system: str | None = None
    images: str = "before"
    variables: tuple[str, ...] = ("prompt",)
    parser: dict = field(default_factory=dict)
    description: str = ""
    source: str = ""

    @property
    def id(self) -> str:
        """``name.vN``, the human-readable identity (the hash is the exact one)."""
        return f"{self.name}.v{self.version}"

    def render_text(self, variables: dict[str, object]) -> str:
        """The user text with every ``${var}`` filled in.

        Raises:
            ValueError: a declared variable is missing or an undeclared one is given.
        """
        given, declared = set(variables), set(self.variables)
        if given != declared:
            raise ValueError(
                f"template {self.id} takes variables {sorted(declared)}; got {sorted(given)} "
                f"(missing {sorted(declared - given)}, unexpected {sorted(given - declared)})"
            )
        return string.Template(self.user).substitute({k: str(v) for k, v in variables.items()})

    def messages(self, images: list[EncodedImage], variables: dict[str, object]) -> list[dict]:
        """OpenAI chat ``messages``: optional system text, then one user message with the images
        (as ``image_url`` data URLs, in order) before or after one text part."""
        text = {"type": "text", "text": self.render_text(variables)}
        pictures = [{"type": "image_url", "image_url": {"url": im.data_url()}} for im in images]
        content = pictures + [text] if self.images == "before" else [text] + pictures
        out = [{"role": "system", "content": self.system}] if self.system else []
        return out + [{"role": "user", "content": content}]

    def card(self) -> dict:
        """Identity for a metric card or a reward log: name, version, sha256."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256}


def template_from_bytes(data: bytes, origin: str = "<bytes>") -> PromptTemplate:
    """Parse a template file's bytes (the hash is over exactly these bytes).

    Raises:
        ValueError: not JSON, or a required key is missing or of the wrong kind.
    """
    try:
        raw = json.loads(data)
    except json.JSONDecodeError as exc:
        raise ValueError(f"template {origin} is not valid JSON: {exc}") from exc
    missing = [k for k in ("name", "version", "user", "parser") if k not in raw]
    if missing:
        raise ValueError(f"template {origin} lacks required keys {missing}")
    if raw.get("images", "before") not in ("before", "after"):
        raise ValueError(f"template {origin}: 'images' must be 'before' or 'after'")
    declared = tuple(raw.get("variables", ("prompt",)))
    used = {m.group("named") or m.group("braced") for m in string.Template.pattern.finditer(raw["user"])
            if m.group("named") or m.group("braced")}
    if used != set(declared):
        raise ValueError(
            f"template {origin}: placeholders {sorted(used)} differ from variables {list(declared)}")
    return PromptTemplate(
        name=raw["name"], version=int(raw["version"]), sha256=hashlib.sha256(data).hexdigest(),
        user=raw["user"], system=raw.get("system"), images=raw.get("images", "before"),
        variables=declared, parser=dict(raw["parser"]), description=raw.get("description", ""),
        source=raw.get("source", ""),
    )


def available_templates() -> dict[str, list[int]]:
    """``{name: [versions ascending]}`` of the templates shipped in the package."""
    found: dict[str, list[int]] = {}
    for entry in resources.files("mme3dr.judge").joinpath("templates").iterdir():
        m = _FILE.match(entry.name)
        if m:
            found.setdefault(m["name"], []).append(int(m["version"]))
    return {k: sorted(v) for k, v in sorted(found.items())}


def load_template(name: str, version: int | None = None) -> PromptTemplate:
    """Load a shipped template; ``version=None`` takes the highest version.

    Raises:
        KeyError: no such template or version (the message lists what exists).
    """
    known = available_templates()
    if name not in known or (version is not None and version not in known[name]):
        listing = ", ".join(f"{n} v{vs}" for n, vs in known.items())
        raise KeyError(f"no prompt template {name!r} version {version}; shipped: {listing}")
    version = known[name][-1] if version is None else version
    entry = resources.files("mme3dr.judge").joinpath("templates", f"{name}.v{version}.json")
    template = template_from_bytes(entry.read_bytes(), origin=str(entry))
    if template.name != name or template.version != version:
        raise ValueError(f"{entry}: file name says {name} v{version}, contents say {template.id}")
    return template
