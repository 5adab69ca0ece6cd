"""Captions CSV -> prompts (captions[1] if present else captions[0]), and the offline fetch message."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from mme3dr.benchmark.captions import (
    CaptionsError,
    attach_prompts,
    fetch_captions,
    prompt_from_captions,
    prompt_sha256,
    read_captions_csv,
)
from mme3dr.benchmark.taxonomy import Case

SHA_A, SHA_B = "a" * 64, "b" * 64


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)
    return path


def toys4k_csv(path: Path) -> Path:
    """A synthetic Toys4k.csv: extra columns, one two-caption row, one single-caption row, one bad row."""
    rows = [
        {"sha256": SHA_A, "file_identifier": "cup/cup_000/cup_000.blend", "aesthetic_score": "5.1",
         "captions": json.dumps(["A tall blue ceramic cup with a handle.", "A blue cup.", "Cup."])},
        {"sha256": SHA_B, "file_identifier": "frog/frog_001/frog_001.blend", "aesthetic_score": "4.9",
         "captions": json.dumps(["A low-poly green frog."])},
        {"sha256": "c" * 64, "file_identifier": "pig/pig_000/pig_000.blend", "aesthetic_score": "4.7",
         "captions": "not json"},
    ]
    return write_csv(path, rows, ["sha256", "file_identifier", "aesthetic_score", "captions"])


def test_prompt_rule_is_second_caption_else_first():
    assert prompt_from_captions(["long", "short", "s"]) == "short"
    assert prompt_from_captions(["only"]) == "only"
    assert prompt_from_captions([]) is None


def test_attach_prompts_fills_sha_and_prompt_and_reports_missing(tmp_path):
    table = read_captions_csv(toys4k_csv(tmp_path / "Toys4k.csv"))
    assert table.problems == ["Toys4k.csv:4: captions is not a JSON list; row skipped"]
    cases = [
        Case("x-0", "stylized", "cup", "cup/cup_000/cup_000.blend"),
        Case("x-1", "biological", "frog", "frog/frog_001/frog_001.blend"),
        Case("x-2", "biological", "pig", "pig/pig_000/pig_000.blend"),
        Case("x-3", "stylized", "cup", "cup/cup_000/cup_000.blend", sha256="d" * 64),
    ]
    out, missing = attach_prompts(cases, table)
    assert (out[0].prompt, out[0].sha256) == ("A blue cup.", SHA_A)
    assert (out[1].prompt, out[1].sha256) == ("A low-poly green frog.", SHA_B)
    assert missing == ["x-2", "x-3"]  # bad row; and a sha256 that disagrees with the CSV
    assert out[3].prompt is None


def test_rose_prompt_is_its_second_caption(trellis_rose):
    table = read_captions_csv(trellis_rose / "metadata.csv")
    (rec,) = table.by_sha256.values()
    assert len(rec.captions) == 11
    second = "A deep red rose, with smooth curled petals on a slender green stem."
    assert rec.prompt == rec.captions[1] == second
    assert len(prompt_sha256(rec.prompt)) == 64


def test_csv_missing_columns_says_which_and_what_to_expect(tmp_path):
    p = write_csv(tmp_path / "bad.csv", [{"file_identifier": "x", "text": "y"}], ["file_identifier", "text"])
    expected = r"missing column\(s\) sha256, captions .*expected TRELLIS's Toys4k"
    with pytest.raises(CaptionsError, match=expected):
        read_captions_csv(p)


def test_missing_captions_file_says_how_to_get_it(tmp_path):
    with pytest.raises(CaptionsError, match="run `mme3dr data fetch-captions` or download Toys4k.csv"):
        read_captions_csv(tmp_path / "Toys4k.csv")


def test_fetch_offline_says_exactly_what_to_place_where(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    target = tmp_path / "toys4k" / "Toys4k.csv"
    with pytest.raises(CaptionsError) as e:
        fetch_captions(target)
    msg = str(e.value)
    assert "JeffreyXiang/TRELLIS-500K" in msg and f"place it at {target}" in msg
    assert not target.exists()
