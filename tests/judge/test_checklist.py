"""Caption → checklist and part list (rule-based, deterministic)."""

from __future__ import annotations

from mme3dr.judge import Part, derive_checklist, numbered, prompt_parts


def questions(caption: str) -> list[tuple[str, str]]:
    return [(item.kind, item.question) for item in derive_checklist(caption)]


def test_object_parts_counts_and_colours():
    assert questions("A blue toy car with four black wheels.") == [
        ("object", "Is the object recognisably a blue toy car?"),
        ("colour", "Is the object mainly blue?"),
        ("part", "Does the object have black wheels?"),
        ("count", "Does the object have exactly 4 black wheels?"),
        ("colour", "Are the wheels black?"),
    ]


def test_spatial_relation():
    relation = ("relation", "Is the red cap on the white stem?")
    assert relation in questions("A mushroom with a red cap on a white stem.")


def test_parts_keep_counts_and_colours():
    assert prompt_parts("A wooden table with four legs and a rectangular top.") == [
        Part("legs", 4, ()), Part("rectangular top", None, ())]
    stool = prompt_parts("A round red stool standing on three black legs.")
    assert stool == [Part("black legs", 3, ("black",))]
    assert prompt_parts("A white chess pawn.") == []


def test_object_question_is_always_there():
    assert questions("Saturn.")[0] == ("object", "Is the object recognisably a Saturn?")
    assert numbered(["a", "b"]) == "1. a\n2. b"
