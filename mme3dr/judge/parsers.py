"""Reply parsers: a judge's text reply → a typed result, or a typed failure that keeps the raw text.

A template's ``parser`` spec (part of the hashed template file) says what a valid reply holds:

- ``{"kind": "scores", "fields": [F, ...]}``: one labelled value per field, e.g.
  ``Alignment Score (1-5): 4.5`` → :class:`Scores` ``{"alignment": 4.5}``.
- ``{"kind": "items", "count_variable": "n_items", "fields": [F, ...]}``: numbered lines ``1. …``,
  ``2. …`` up to the count given in the request's variables, each holding every field →
  :class:`ItemScores`.

A field ``F`` is ``{"name", "label", "type": "number" | "yes_no", "min", "max", "integer"}``; an
item field may have ``"label": null`` (the line's first yes/no word). Optional ``"answer_tag":
"answer"`` restricts parsing to the last ``<answer>…</answer>`` block (else the text after the last
``</think>``, else the whole reply), so a thinking model's draft scores are not read as its verdict.

Rules (tested on hand-written replies): decimals are accepted unless ``integer`` is set; extra text
around the values is ignored; when a label occurs more than once the last occurrence wins (the
final verdict); a missing field, a value outside ``[min, max]`` or a non-integer where an integer is
required is a :class:`ParseFailure` naming it. Numbers are ASCII decimals only: Unicode digits
("５", "٣"), exponents ("1e5"), decimal commas ("4,5") and NaN/inf are not values, so the field is
missing. Nothing is clipped, rounded or defaulted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# ASCII digits only (``\d`` would take "５" or "٣", which float() reads), and a number must end there:
# "1e5", "4,5" (a decimal comma) or "3.7.1" are not read as 1, 4 or 3.7.
_NUMBER = r"[-+]?[0-9]+(?:\.[0-9]+)?(?![0-9]|[eE][-+]?[0-9]|[.,][0-9])"
_YES_NO = {"yes": 1.0, "true": 1.0, "no": 0.0, "false": 0.0}
_YES_NO_WORD = re.compile(r"\b(yes|no|true|false)\b", re.IGNORECASE)
_ITEM_LINE = re.compile(r"^[^\S\n]*(?:item[^\S\n]*)?([0-9]+)[^\S\n]*[.):\-][^\S\n]*(.*)$",
                        re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Scores:
    """A parsed ``scores`` reply: ``values`` maps field name → float, every field present and in range."""

    values: dict[str, float]
    ok: bool = True


@dataclass(frozen=True)
class ItemScores:
    """A parsed ``items`` reply: ``items[i]`` maps field name → float for numbered line ``i + 1``."""

    items: tuple[dict[str, float], ...]
    ok: bool = True


@dataclass(frozen=True)
class ParseFailure:
    """A reply that does not parse. ``raw`` is the reply as received; ``reason`` says what was wrong."""

    raw: str
    reason: str
    ok: bool = False


Parsed = Scores | ItemScores | ParseFailure


class _Invalid(Exception):
    pass


def answer_region(text: str, tag: str | None) -> str:
    """The part of a reply that holds the verdict (see the module docstring)."""
    if tag:
        blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", text, flags=re.DOTALL | re.IGNORECASE)
        if blocks:
            return blocks[-1]
        if "</think>" in text:
            return text.rsplit("</think>", 1)[1]
    return text


def _value_pattern(field: dict) -> str:
    return r"(yes|no|true|false|" + _NUMBER + ")" if field.get("type") == "yes_no" else "(" + _NUMBER + ")"


def _label_regex(field: dict) -> re.Pattern:
    # "Label", optional "(1-5)", optional markdown bold, ":" or "=", the value; same line only.
    sp = r"[^\S\n]*"
    return re.compile(
        re.escape(field["label"]) + sp + r"(?:\([^)\n]*\))?" + sp + r"\**" + sp + r"[:=]" + sp + r"\**" + sp
        + _value_pattern(field),
        re.IGNORECASE,
    )


def _convert(field: dict, token: str) -> float:
    name = field["name"]
    if field.get("type") == "yes_no":
        low = token.lower()
        if low in _YES_NO:
            return _YES_NO[low]
        value = float(token)
        if value not in (0.0, 1.0):
            raise _Invalid(f"{name}={token} is not yes/no (or 0/1)")
        return value
    value = float(token)
    if field.get("integer") and value != int(value):
        raise _Invalid(f"{name}={token} is not an integer")
    lo, hi = field.get("min"), field.get("max")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise _Invalid(f"{name}={token} is out of range [{lo}, {hi}]")
    return value


def _fields_in(text: str, fields: list[dict]) -> dict[str, float]:
    values, missing = {}, []
    for field in fields:
        if field.get("label") is None:
            hits = _YES_NO_WORD.findall(text)
            token = hits[0] if hits else None  # unlabelled: the line's first yes/no word
        else:
            hits = _label_regex(field).findall(text)
            token = hits[-1] if hits else None
        if token is None:
            missing.append(field["name"])
            continue
        values[field["name"]] = _convert(field, token)
    if missing:
        raise _Invalid(f"missing {', '.join(missing)}")
    return values


def parse_reply(spec: dict, text: str | None, variables: dict | None = None) -> Parsed:
    """Parse ``text`` by the template's parser ``spec``; never raises on a bad reply.

    Args:
        spec: the template's ``parser`` dict.
        text: the reply's message content (``None`` or empty is a failure).
        variables: the request's template variables (``items`` reads its count from them).

    Raises:
        ValueError: the *spec* itself is invalid (a template bug, not a bad reply).
    """
    kind = spec.get("kind")
    if kind not in ("scores", "items"):
        raise ValueError(f"unknown parser kind {kind!r} (expected 'scores' or 'items')")
    raw = text or ""
    if not raw.strip():
        return ParseFailure(raw=raw, reason="empty reply")
    region = answer_region(raw, spec.get("answer_tag"))
    try:
        if kind == "scores":
            return Scores(values=_fields_in(region, spec["fields"]))
        count = int((variables or {})[spec["count_variable"]])
        lines: dict[int, str] = {}
        for m in _ITEM_LINE.finditer(region):
            lines[int(m.group(1))] = m.group(2)  # a repeated number: the last line wins
        absent = [i for i in range(1, count + 1) if i not in lines]
        if absent:
            raise _Invalid(f"expected {count} numbered answers; missing item(s) {absent}")
        items = []
        for i in range(1, count + 1):
            try:
                items.append(_fields_in(lines[i], spec["fields"]))
            except _Invalid as exc:
                raise _Invalid(f"item {i}: {exc}") from None
        return ItemScores(items=tuple(items))
    except _Invalid as exc:
        return ParseFailure(raw=raw, reason=str(exc))
