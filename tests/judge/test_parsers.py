"""Parser tests on hand-written replies for every shipped template (Must-show 2)."""

from __future__ import annotations

import pytest

from mme3dr.judge import ItemScores, ParseFailure, Scores, load_template, parse_reply


def parse(name: str, text: str, **variables):
    return parse_reply(load_template(name).parser, text, variables)


# --- unifiedreward2-pointwise: three labelled 1-5 lines -------------------------------------------
def test_unifiedreward2_reads_decimals_among_extra_text():
    reply = ("The frog is clearly recognisable.\nAlignment Score (1-5): 4.5\n"
             "**Coherence Score (1-5):** 3\nStyle Score (1-5): 2.25 because the colours are dull.")
    expected = Scores({"alignment": 4.5, "coherence": 3.0, "style": 2.25})
    assert parse("unifiedreward2-pointwise", reply) == expected


def test_unifiedreward2_missing_line_names_the_field():
    out = parse("unifiedreward2-pointwise", "Alignment Score (1-5): 4\nStyle Score (1-5): 2")
    assert isinstance(out, ParseFailure) and out.reason == "missing coherence"
    assert out.raw.startswith("Alignment Score")


def test_unifiedreward2_out_of_range_is_a_failure_not_a_clip():
    out = parse("unifiedreward2-pointwise",
                "Alignment Score (1-5): 6\nCoherence Score (1-5): 3\nStyle Score (1-5): 2")
    assert isinstance(out, ParseFailure) and "alignment=6 is out of range [1, 5]" in out.reason
    out = parse("unifiedreward2-pointwise",
                "Alignment Score (1-5): 0.5\nCoherence Score (1-5): 3\nStyle Score (1-5): 2")
    assert isinstance(out, ParseFailure) and "out of range" in out.reason


def test_unifiedreward2_last_occurrence_is_the_verdict():
    reply = ("Alignment Score (1-5): 2\nOn reflection:\nAlignment Score (1-5): 3\n"
             "Coherence Score: 4\nStyle Score = 5")
    values = parse("unifiedreward2-pointwise", reply).values
    assert values == {"alignment": 3.0, "coherence": 4.0, "style": 5.0}


# --- unifiedreward-think-geometry: <think> then <answer> ------------------------------------------
def test_think_geometry_reads_the_answer_block_not_the_draft():
    reply = ("<think>At first sight Geometric Alignment Score (1-5): 1, but the legs are there.</think>\n"
             "<answer>Geometric Alignment Score (1-5): 4.5</answer>")
    assert parse("unifiedreward-think-geometry", reply) == Scores({"geometric_alignment": 4.5})


def test_think_geometry_without_answer_tags_uses_the_text_after_think():
    reply = "<think>Geometric Alignment Score (1-5): 2</think> Geometric Alignment Score (1-5): 3"
    assert parse("unifiedreward-think-geometry", reply).values == {"geometric_alignment": 3.0}
    reply = "<think>Geometric Alignment Score (1-5): 2</think> I am unsure."
    out = parse("unifiedreward-think-geometry", reply)
    assert isinstance(out, ParseFailure) and out.reason == "missing geometric_alignment"


def test_think_geometry_out_of_range_and_empty():
    out = parse("unifiedreward-think-geometry", "<answer>Geometric Alignment Score (1-5): 7</answer>")
    assert isinstance(out, ParseFailure) and "out of range" in out.reason
    assert parse("unifiedreward-think-geometry", "  \n").reason == "empty reply"
    assert parse("unifiedreward-think-geometry", None).reason == "empty reply"


# --- qwen-category-match: yes/no ------------------------------------------------------------------
@pytest.mark.parametrize(("reply", "value"), [
    ("Category Match: yes", 1.0), ("category match: No.", 0.0),
    ("Looking closely...\nCategory Match: YES", 1.0),
    ("Category Match: 1", 1.0), ("**Category Match**: no, it is a table", 0.0),
])
def test_category_match_reads_yes_no(reply, value):
    assert parse("qwen-category-match", reply) == Scores({"category_match": value})


@pytest.mark.parametrize(("reply", "reason"), [
    ("It is a chair.", "missing category_match"),
    ("Category Match: 0.5", "category_match=0.5 is not yes/no (or 0/1)"),
    ("Category Match: maybe", "missing category_match"),
])
def test_category_match_failures(reply, reason):
    out = parse("qwen-category-match", reply)
    assert isinstance(out, ParseFailure) and out.reason == reason and out.raw == reply


# --- qwen-consistency: three 0-1 values -----------------------------------------------------------
def test_consistency_reads_decimals():
    reply = "Colour Consistency: 0.9\nMaterial Consistency: 1\nTexture Consistency: 0.35\nOverall fine."
    assert parse("qwen-consistency", reply).values == {"colour": 0.9, "material": 1.0, "texture": 0.35}


def test_consistency_out_of_range_and_missing():
    reply = "Colour Consistency: 1.2\nMaterial Consistency: 1\nTexture Consistency: 0"
    bad = parse("qwen-consistency", reply)
    assert isinstance(bad, ParseFailure) and "colour=1.2 is out of range [0, 1]" in bad.reason
    missing = parse("qwen-consistency", "Colour Consistency: 0.5\nTexture Consistency: 0.5")
    assert missing.reason == "missing material"


# --- part-completeness: numbered items with existence and completeness ---------------------------
def test_part_completeness_items():
    reply = "Here you go:\n1. exists: yes, completeness: 0.8\n2) Exists: no; Completeness: 0\n"
    out = parse("part-completeness", reply, prompt="p", parts="1. legs\n2. top", n_items=2)
    assert out == ItemScores(({"exists": 1.0, "completeness": 0.8}, {"exists": 0.0, "completeness": 0.0}))


def test_part_completeness_missing_item_and_out_of_range():
    out = parse("part-completeness", "1. exists: yes, completeness: 0.8", prompt="p", parts="x", n_items=2)
    assert isinstance(out, ParseFailure) and "missing item(s) [2]" in out.reason
    out = parse("part-completeness", "1. exists: yes, completeness: 1.5\n2. exists: yes, completeness: 1",
                prompt="p", parts="x", n_items=2)
    assert isinstance(out, ParseFailure) and out.reason == "item 1: completeness=1.5 is out of range [0, 1]"
    out = parse("part-completeness", "1. exists: yes\n2. exists: yes, completeness: 1",
                prompt="p", parts="x", n_items=2)
    assert out.reason == "item 1: missing completeness"


# --- eval-checklist: numbered yes/no --------------------------------------------------------------
def test_checklist_answers():
    reply = "1. Yes\n2. no - the legs are missing\n3. yes, it is red"
    out = parse("eval-checklist", reply, prompt="p", checklist="...", n_items=3)
    assert [item["answer"] for item in out.items] == [1.0, 0.0, 1.0]


def test_checklist_unanswered_line_and_missing_line():
    out = parse("eval-checklist", "1. yes\n2. I cannot tell\n3. no", prompt="p", checklist="...", n_items=3)
    assert isinstance(out, ParseFailure) and out.reason == "item 2: missing answer"
    out = parse("eval-checklist", "1. yes\n3. no", prompt="p", checklist="...", n_items=3)
    assert "missing item(s) [2]" in out.reason


def test_unknown_parser_kind_is_a_template_bug():
    with pytest.raises(ValueError, match="unknown parser kind"):
        parse_reply({"kind": "vibes"}, "text")
