"""Strict reading of submitted JSON: what ``json.loads`` lets through that a bundle must not carry.

- **Duplicate keys.** ``{"profile": "smoke", "profile": "paper"}`` is valid JSON to Python (last wins)
  and to pydantic, but a first-wins reader (jq's ``first``, some JavaScript parsers, a person reading
  the file top-down) sees another run. Refused, naming the key.
- **Non-standard constants.** ``NaN``, ``Infinity`` and ``-Infinity`` are not JSON (RFC 8259 §6);
  Python reads them, so a score of ``-Infinity`` would pass as a float. Refused, as is a number
  too large for a float (``1e400`` reads as infinity) and an integer of more than 18 digits.
- **Deep nesting.** 100,000 nested arrays make ``json.loads`` raise ``RecursionError`` (not a
  ``ValueError``: it escaped the checks as a traceback). Anything nested deeper than
  :data:`MAX_DEPTH` is refused with a one-line reason; no bundle file needs more than a handful.

Light module: standard library only.
"""

from __future__ import annotations

import json
from typing import Any

#: Longest integer accepted (a count or a seed; 10**400 would become infinity as a float).
MAX_INT_DIGITS = 18
#: Deepest nesting of objects/arrays accepted in a bundle's JSON (results.json nests about 5 deep).
MAX_DEPTH = 32


class StrictJsonError(ValueError):
    """The text is not JSON a bundle may contain; the message says why (and where, when known)."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise StrictJsonError(f"duplicate key {key!r} (a reader taking the first would see another "
                                  "value)")
        out[key] = value
    return out


def _no_constants(name: str) -> float:
    raise StrictJsonError(f"{name} is not a JSON number (RFC 8259 allows no NaN or Infinity)")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise StrictJsonError(f"the number {text[:40]} overflows a float (it would read as infinity)")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise StrictJsonError(f"the integer {text[:20]}… has {len(text.lstrip('-'))} digits (a float cannot "
                              "hold it; at most 18 are accepted)")
    return int(text)


def depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0, ``[]`` is 1), computed without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            node = list(node.values())
        if isinstance(node, list):
            deepest = max(deepest, level + 1)
            stack.extend((item, level + 1) for item in node if isinstance(item, (dict, list)))
    return deepest


def strict_loads(data: str | bytes, where: str) -> Any:
    """Parse ``data`` as strict JSON; :class:`StrictJsonError` naming ``where`` on anything refused
    (invalid JSON, duplicate keys, NaN/Infinity, nesting deeper than :data:`MAX_DEPTH`)."""
    try:
        value = json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_no_constants,
                           parse_float=_finite_float, parse_int=_bounded_int)
    except StrictJsonError as exc:
        raise StrictJsonError(f"{where}: {exc}") from None
    except RecursionError:
        raise StrictJsonError(f"{where}: nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # json.JSONDecodeError, UnicodeDecodeError
        raise StrictJsonError(f"{where}: not valid JSON ({exc})") from None
    if depth(value) > MAX_DEPTH:
        raise StrictJsonError(f"{where}: nested deeper than {MAX_DEPTH} levels")
    return value
