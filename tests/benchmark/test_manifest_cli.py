"""`mme3dr manifest …` / `mme3dr data …` commands (Must show 1 and 5 through the CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from mme3dr.benchmark.manifest import load_manifest, read_category_map, to_hf_dataset
from mme3dr.cli.manifest import register
from mme3dr.models.protocol import derive_seed

V1_SHA256 = "32885090fd6aa862711365d75c0ae299f31baac1c58cf373afeb29508a400cf7"


def synthetic_toys_dict(path: Path) -> Path:
    """A made-up toys_dict.json: 30 objects for each of the 105 real Toys4K category names."""
    cats = sorted(read_category_map())
    path.write_text(json.dumps({c: [f"{c}_{n:03d}/{c}_{n:03d}.blend" for n in range(30)] for c in cats}))
    return path


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    root = typer.Typer()
    register(root)
    return root


def run(app, *args: str, ok: bool = True):
    result = CliRunner().invoke(app, list(args))
    if ok:
        assert result.exit_code == 0, result.output
    return result


def test_stats_prints_249_cases_in_paper_counts_and_hash(app):
    out = run(app, "manifest", "stats", "mme3dr-v1").output
    assert "cases:    249" in out and "counts:   40/54/53/38/64" in out
    assert V1_SHA256 in out and "249 distinct" in out


def test_validate_ok_and_failing(app, tmp_path):
    assert "ok: mme3dr-v1, 249 cases" in run(app, "manifest", "validate").output
    bad = tmp_path / "dup.jsonl"
    rec = {"case_id": "a", "category": "spatial", "toys4k_category": "chair"}
    rec["file_identifier"] = "chair/x/x.blend"
    bad.write_text(json.dumps(rec) + "\n" + json.dumps(rec) + "\n")
    result = run(app, "manifest", "validate", str(bad), ok=False)
    assert result.exit_code == 1 and "invalid: 1 duplicate case id(s)" in result.output


def test_build_cli_is_byte_reproducible_on_a_synthetic_id_list(app, tmp_path):
    ids = synthetic_toys_dict(tmp_path / "toys.json")
    run(app, "manifest", "build", "--toys-dict", str(ids), "--out", str(tmp_path / "a"))
    run(app, "manifest", "build", "--toys-dict", str(ids), "--out", str(tmp_path / "b"))
    for name in ("cases.jsonl", "toys4k-800.jsonl", "category_map.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert len(load_manifest(tmp_path / "a" / "cases.jsonl")) == 249


def test_build_cli_from_real_id_list_gives_the_shipped_manifest(app, shared_data, tmp_path):
    out = run(app, "manifest", "build", "--toys-dict", str(shared_data / "toys4k" / "toys_dict.json"),
              "--out", str(tmp_path)).output
    assert f"cases.jsonl  sha256 {V1_SHA256}" in out


def test_build_cli_missing_id_list_is_one_clear_line(app, tmp_path):
    result = run(app, "manifest", "build", "--toys-dict", str(tmp_path / "nope.json"), ok=False)
    assert result.exit_code == 2 and "Toys4K id list not found at" in result.output


def test_hf_export_round_trips_through_load_from_disk(app, tmp_path):
    datasets = pytest.importorskip("datasets")
    m = load_manifest("mme3dr-v1")
    run(app, "manifest", "export", "mme3dr-v1", "--out", str(tmp_path / "hf"), "--format", "hf")
    ds = datasets.load_from_disk(str(tmp_path / "hf"))
    assert ds.num_rows == 249 and ds.column_names == [*m.cases[0].to_dict(), "seeds"]
    seeds = [[derive_seed("mme3dr-v1", c.case_id, 0)] for c in m.cases]
    assert [dict(r) for r in ds] == [{**c.to_dict(), "seeds": s} for c, s in zip(m.cases, seeds, strict=True)]
    assert json.loads(ds.info.description)["sha256"] == m.sha256
    assert to_hf_dataset(m)[5] == m.cases[5].to_dict()


def test_export_lists_the_seeds_evaluate_hands_each_sample(app, tmp_path):
    out = tmp_path / "demo.csv"
    run(app, "manifest", "export", "demo", "--out", str(out), "--format", "csv",
        "--samples-per-prompt", "3")
    import csv

    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert len(rows) == 15
    for row in rows:  # the seed namespace is the manifest's name (results.json's benchmark.seed_namespace)
        assert row["seeds"].split() == [str(derive_seed("mme3dr-demo", row["case_id"], i)) for i in range(3)]
    assert len({r["seeds"] for r in rows}) == 15


def test_export_with_captions_attaches_prompts(app, tmp_path):
    m = load_manifest("mme3dr-v1")
    c = m.cases[7]
    csv = tmp_path / "Toys4k.csv"
    caps = json.dumps(["Long caption.", "The prompt."]).replace('"', '""')
    csv.write_text(f'sha256,file_identifier,captions\n{"e" * 64},{c.file_identifier},"{caps}"\n')
    out = str(tmp_path / "m.jsonl")
    result = run(app, "manifest", "export", "--out", out, "--format", "jsonl", "--captions", str(csv))
    assert "248 case(s) have no caption" in result.output
    rows = [json.loads(x) for x in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert rows[7]["prompt"] == "The prompt." and rows[7]["sha256"] == "e" * 64 and rows[0]["prompt"] is None


def test_convert_blend_wrong_zip_is_one_clear_line(app, tmp_path):
    z = tmp_path / "toys4k_blend_files.zip"
    z.write_bytes(b"not a zip")
    result = run(app, "data", "convert-blend", "--blend-zip", str(z), "--limit", "2", ok=False)
    assert result.exit_code == 2
    assert "is not a zip file; expected the official toys4k_blend_files.zip" in result.output


def test_fetch_captions_offline_prints_what_to_place_where(app, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = run(app, "data", "fetch-captions", "--dest", str(tmp_path), ok=False)
    assert result.exit_code == 2
    flat = result.output.replace("\n", "")
    assert "Toys4k.csv" in result.output and str(tmp_path / "Toys4k.csv") in flat
    # the file's address (resolve/), which a browser or curl downloads, not the page that shows it (blob/)
    assert "/resolve/main/Toys4k.csv" in flat and "/blob/" not in flat


def test_help_explains_the_commands(app):
    out = run(app, "manifest", "--help").output
    for cmd in ("build", "show", "validate", "stats", "export"):
        assert cmd in out
    assert "convert-blend" in run(app, "data", "--help").output


def test_show_filters_by_category(app):
    out = run(app, "manifest", "show", "mme3dr-v1", "--category", "knowledge", "--limit", "0").output
    assert "(38 of 249 cases)" in out and out.count("mme3dr-v1-") == 38


def test_stats_knows_the_demo_benchmark_and_lists_it_among_the_built_ins(app):
    result = CliRunner().invoke(app, ["manifest", "stats", "demo"])
    assert result.exit_code == 0, result.output
    assert "manifest: mme3dr-demo" in result.output and "counts:   3/3/3/3/3" in result.output
    assert "15 procedural shape kinds" in result.output and "Toys4K" not in result.output
    result = CliRunner().invoke(app, ["manifest", "stats", "demox"])
    assert result.exit_code == 2
    assert "the built-in names are mme3dr-v1, toys4k-800 and demo" in result.output
