"""A checklist derived from a caption: the object, its parts, counts, colours and spatial relations.

Rule-based on purpose (version :data:`CHECKLIST_VERSION`, recorded in every metric card): the same
caption gives the same questions on every machine, with no model in the loop, so a judge score moves
only when the judge or the asset does. The rules read TRELLIS-style captions ("A <adjectives>
<object> with <parts> and <parts>, <relation> ..."):

- **object**: the first noun phrase, up to the first ``with``/``made of``/comma/relation word;
- **parts**: phrases after ``with``/``featuring``/``having``/``made of``, split on commas and
  ``and``; each keeps its count (``four legs`` → 4) and colour words;
- **counts**: one question per part with a count of 2 or more;
- **colours**: one question per colour word attached to the object or a part;
- **relations**: ``X <on|above|below|under|beside|next to|in front of|behind|inside|in|on top of> Y``.

The part list (:func:`prompt_parts`) is also what the part-completeness reward asks about.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CHECKLIST_VERSION = "checklist-rules-v1"

NUMBER_WORDS = {"one": 1, "a single": 1, "single": 1, "two": 2, "a pair of": 2, "pair of": 2, "three": 3,
                "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
                "eleven": 11, "twelve": 12}
COLOURS = ("red", "green", "blue", "yellow", "orange", "purple", "pink", "brown", "black", "white", "grey",
           "gray", "silver", "gold", "golden", "beige", "cyan", "teal", "turquoise", "violet", "tan")
RELATIONS = ("on top of", "in front of", "next to", "attached to", "above", "below", "under", "beneath",
             "beside", "behind", "inside", "on", "in")
_PART_INTRO = re.compile(
    r"\b(?:with|featuring|having|made of|topped with|and has|that has|standing on)\b", re.I)
_ARTICLE = re.compile(r"^(?:a|an|the|its|their|some)\s+", re.I)
_REL = "|".join(r.replace(" ", r"\s+") for r in RELATIONS)


@dataclass(frozen=True)
class Part:
    """A part the caption names: ``name`` (noun phrase without count), ``count`` (None if not stated),
    ``colours`` (colour words in it)."""

    name: str
    count: int | None = None
    colours: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"{self.count} {self.name}" if self.count and self.count > 1 else self.name


@dataclass(frozen=True)
class ChecklistItem:
    """One yes/no question: ``kind`` is object | part | count | colour | relation."""

    kind: str
    question: str


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip(" .;:!\n\t")).strip()


def _split_count(phrase: str) -> tuple[int | None, str]:
    phrase = _ARTICLE.sub("", _clean(phrase))
    for word, n in sorted(NUMBER_WORDS.items(), key=lambda kv: -len(kv[0])):
        if re.match(rf"{word}\b", phrase, re.I):
            return n, _clean(phrase[len(word):])
    m = re.match(r"(\d+)\s+(.*)", phrase)
    return (int(m.group(1)), _clean(m.group(2))) if m else (None, phrase)


def _colours_in(phrase: str) -> tuple[str, ...]:
    return tuple(c for c in COLOURS if re.search(rf"\b{c}\b", phrase, re.I))


def object_phrase(caption: str) -> str:
    """The caption's head noun phrase (article dropped), e.g. "round red stool"."""
    first = re.split(r",|\.|;|\b(?:with|featuring|having|made of|standing|sitting|that|which)\b", caption,
                     maxsplit=1, flags=re.I)[0]
    first = re.split(rf"\s+(?:{_REL})\s+", first, maxsplit=1, flags=re.I)[0]
    return _ARTICLE.sub("", _clean(first)) or _clean(caption)


def prompt_parts(caption: str) -> list[Part]:
    """Parts named after ``with``/``featuring``/... (see module docstring); may be empty."""
    parts: list[Part] = []
    for m in _PART_INTRO.finditer(caption):
        tail = caption[m.end():]
        tail = re.split(r"[.;]|\b(?:with|featuring|having)\b", tail, maxsplit=1, flags=re.I)[0]
        for chunk in re.split(r",|\band\b|\bthen\b", tail):
            chunk = re.split(rf"\s+(?:{_REL})\s+", chunk, maxsplit=1, flags=re.I)[0]
            count, name = _split_count(chunk)
            if name and len(name.split()) <= 5 and name.lower() not in {p.name.lower() for p in parts}:
                parts.append(Part(name=name, count=count, colours=_colours_in(name)))
    return parts


def relations(caption: str) -> list[tuple[str, str, str]]:
    """``(subject, relation, object)`` triples such as ("cap", "on", "white stem")."""
    out = []
    phrase = r"([a-z][a-z\- ]{1,30}?)"
    pattern = (rf"(?:a|an|the|its)?\s*{phrase}\s+({_REL})\s+(?:a|an|the|its)\s+{phrase}"
               r"(?=[,.;]|\band\b|\bwith\b|$)")
    for m in re.finditer(pattern, caption, re.I):
        subj = _ARTICLE.sub("", _clean(re.split(r"\bwith\b|,", m.group(1), flags=re.I)[-1]))
        obj = _clean(m.group(3))
        if subj and obj:
            out.append((subj, re.sub(r"\s+", " ", m.group(2).lower()), obj))
    return out


def derive_checklist(caption: str) -> list[ChecklistItem]:
    """The yes/no questions for one caption, object first; never empty (the object question)."""
    head = object_phrase(caption)
    items = [ChecklistItem("object", f"Is the object recognisably {_article(head)}{head}?")]
    for colour in _colours_in(head):
        items.append(ChecklistItem("colour", f"Is the object mainly {colour}?"))
    for part in prompt_parts(caption):
        items.append(ChecklistItem("part", f"Does the object have {_article(part.name)}{part.name}?"))
        if part.count and part.count > 1:
            items.append(ChecklistItem("count", f"Does the object have exactly {part.count} {part.name}?"))
        colour_words = "|".join(rf"\b{c}\b" for c in part.colours)
        bare = _clean(re.sub(colour_words, "", part.name)) if part.colours else ""
        for colour in part.colours:
            noun = bare or part.name
            items.append(ChecklistItem("colour", f"{_be(noun, part.count)} the {noun} {colour}?"))
    for subj, rel, obj in relations(caption):
        count, subj = _split_count(subj)
        items.append(ChecklistItem("relation", f"{_be(subj, count)} the {subj} {rel} the {obj}?"))
    seen, unique = set(), []
    for item in items:
        if item.question.lower() not in seen:
            seen.add(item.question.lower())
            unique.append(item)
    return unique


def numbered(lines: list[str]) -> str:
    """``"1. a\\n2. b"``: the form the templates' ``${checklist}`` / ``${parts}`` take."""
    return "\n".join(f"{i}. {line}" for i, line in enumerate(lines, 1))


def _plural(noun: str, count: int | None) -> bool:
    last = noun.split()[-1].lower() if noun.split() else ""
    return bool(count and count > 1) or (last.endswith("s") and not last.endswith(("ss", "us", "is")))


def _be(noun: str, count: int | None) -> str:
    return "Are" if _plural(noun, count) else "Is"


def _article(phrase: str) -> str:
    """"a "/"an " for a singular noun phrase, "" for a plural or mass one ("fins", "icing")."""
    if _plural(phrase, None) or phrase.lower().endswith("ing"):
        return ""
    return "an " if phrase[:1].lower() in "aeiou" else "a "
