"""The five MME-3DR categories and the Case record."""

from __future__ import annotations

import pytest

from mme3dr.benchmark.taxonomy import (
    CATEGORIES,
    CATEGORY_IDS,
    V1_COUNTS,
    V1_TOTAL,
    Case,
    CaseError,
    get_category,
)


def test_five_categories_with_paper_counts():
    assert CATEGORY_IDS == ("spatial", "mechanical", "biological", "knowledge", "stylized")
    assert [V1_COUNTS[k] for k in CATEGORY_IDS] == [40, 54, 53, 38, 64]
    assert V1_TOTAL == 249
    assert all(c.name and len(c.definition) > 80 and c.reasoning.endswith("reasoning") for c in CATEGORIES)


def test_get_category_unknown_names_valid_ids():
    assert get_category("knowledge").name == "World-Knowledge Rare Objects"
    with pytest.raises(KeyError, match="valid ids: spatial, mechanical"):
        get_category("spacial")


def test_case_round_trips_through_dict():
    c = Case("x-000", "spatial", "chair", "chair/chair_000/chair_000.blend", "a" * 64, "A chair.")
    assert Case.from_dict(c.to_dict()) == c
    keys = ["case_id", "category", "toys4k_category", "file_identifier", "sha256", "prompt"]
    assert list(c.to_dict()) == keys


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"case_id": "a", "category": "spatial", "toys4k_category": "chair"}, "missing field"),
        ({"case_id": "", "category": "s", "toys4k_category": "c", "file_identifier": "f"}, "non-empty"),
        (
            {"case_id": "a", "category": "s", "toys4k_category": "c", "file_identifier": "f", "sha256": "XY"},
            "64 lowercase hex",
        ),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_bad_case_records_say_which_field(record, message):
    with pytest.raises(CaseError, match=message):
        Case.from_dict(record)
