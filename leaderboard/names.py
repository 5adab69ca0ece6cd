"""Model names that read like another: look-alike letters from other scripts, invisible and bidi
characters. ``leaderboard add`` warns with :func:`name_warnings`; validation refuses bidi controls and
zero-width characters in names (:func:`forbidden_name_chars`); the site shows every bidi control and
zero-width character as U+FFFD (:func:`neutralise_bidi`), so a right-to-left override cannot reverse
a name on the page.

Skeleton (after Unicode TR39 §4, reduced to what a leaderboard name needs): NFKC, then every
non-ASCII character that the Unicode confusables table (``confusable_homoglyphs``, Unicode's
confusables.txt) says looks like an ASCII one becomes that ASCII character, and invisible format
characters (category Cf: zero-width space/joiners, bidi controls, soft hyphen) are dropped. Two
different names with one skeleton read alike: "Shаpe" (Cyrillic а) and "Shape", "Sha\\u200bpe" and
"Shape". ASCII letters are left as they are ("Model-l" and "Model-1" are different names on purpose).

Light module: standard library + ``confusable_homoglyphs`` (pure Python, a JSON table).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

#: Unicode bidirectional controls (UAX #9 explicit embeddings, overrides, isolates, marks; U+061C).
BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


#: Zero-width characters that make two names look identical (ZWSP, ZWNJ, ZWJ, word joiner, BOM).
ZERO_WIDTH = re.compile("[\u200b-\u200d\u2060\ufeff]")
#: What a name (model name, revision, evaluator) may not hold: the explicit bidi embeddings, overrides
#: and isolates (U+202A-202E, U+2066-2069) and the zero-width characters.
FORBIDDEN_IN_NAMES = re.compile("[\u202a-\u202e\u2066-\u2069\u200b-\u200d\u2060\ufeff]")


def forbidden_name_chars(text: str) -> str | None:
    """The code points of ``text`` a name may not hold, spelled ``U+202E RIGHT-TO-LEFT OVERRIDE, ...``;
    None when there are none."""
    found = FORBIDDEN_IN_NAMES.findall(text)
    return _spell(found) if found else None


def neutralise_bidi(text: str) -> str:
    """``text`` with every bidi control and zero-width character replaced by U+FFFD (visible: the reader
    sees something was there)."""
    return ZERO_WIDTH.sub("\ufffd", BIDI_CONTROLS.sub("\ufffd", text))


@lru_cache(maxsize=4096)
def _ascii_lookalike(char: str) -> str | None:
    from confusable_homoglyphs import confusables

    found = confusables.is_confusable(char, preferred_aliases=["latin"], greedy=True)
    for entry in found or ():
        for glyph in entry["homoglyphs"]:
            if glyph["c"].isascii() and glyph["c"].isprintable():
                return glyph["c"]
    return None


def skeleton(name: str) -> str:
    """The name as it reads: NFKC, look-alikes to ASCII, invisible format characters dropped."""
    out = []
    for char in unicodedata.normalize("NFKC", name):
        if unicodedata.category(char) == "Cf":
            continue
        out.append(char if char.isascii() else (_ascii_lookalike(char) or char))
    return "".join(out)


def _spell(chars: Iterable[str]) -> str:
    return ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, '?')}" for c in dict.fromkeys(chars))


def name_warnings(name: str, existing: Iterable[str]) -> list[str]:
    """Warnings about model name ``name`` given the names already on the leaderboard (``existing``):
    bidi controls, invisible characters, and each existing entry it reads like but is not."""
    out = []
    bidi = BIDI_CONTROLS.findall(name)
    if bidi:
        out.append(f"model name {name!r} holds bidirectional control(s) {_spell(bidi)}; the site shows "
                   "each as U+FFFD")
    hidden = [c for c in name if unicodedata.category(c) == "Cf" and not BIDI_CONTROLS.match(c)]
    if hidden:
        out.append(f"model name {name!r} holds invisible character(s) {_spell(hidden)}")
    mine = skeleton(name)
    for other in sorted(set(existing)):
        if other != name and skeleton(other) == mine:
            foreign = [c for c in name if not c.isascii() and c not in other
                       and unicodedata.category(c) != "Cf"]
            why = f" (look-alike letters: {_spell(foreign)})" if foreign else ""
            out.append(f"model name {name!r} reads like the existing entry {other!r}{why}; if it is not the "
                       "same model, rename it")
    return out
