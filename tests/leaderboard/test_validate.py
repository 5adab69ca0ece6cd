"""Validation: an eligible synthetic run is accepted; ineligible, forged and tampered bundles are not."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from bundle_factory import make_run, submitter, tamper

from leaderboard.pack import pack_run
from leaderboard.validate import validate_bundle
from mme3dr.render.cameras import eval24


def _checks(report) -> set[str]:
    return {p.check for p in report.problems}


def _messages(report) -> str:
    return "\n".join(str(p) for p in report.problems)


def test_bundle_from_eligible_synthetic_run_is_accepted(good_bundle: Path) -> None:
    report = validate_bundle(good_bundle)
    assert report.ok, report.summary()
    assert len(report.samples) == 249
    assert report.manifest.assets_included and len(report.manifest.assets) == 247
    # Ten thumbnails, round-robin over the five categories.
    assert len(report.manifest.thumbnails) == 10
    categories = {s.category for s in report.samples if s.case_id in report.manifest.thumbnails}
    assert len(categories) == 5


def test_packing_is_byte_reproducible(run_template: Path, good_bundle: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.tar.gz"
    pack_run(run_template, again, submitter())
    assert again.read_bytes() == good_bundle.read_bytes()


def test_no_assets_bundle_lists_hashes_and_is_accepted(run_template: Path, tmp_path: Path) -> None:
    out = tmp_path / "noassets.tar.gz"
    pack_run(run_template, out, submitter(), include_assets=False)
    report = validate_bundle(out)
    assert report.ok, report.summary()
    assert not report.manifest.assets_included and len(report.manifest.assets) == 247
    assert not any(name.startswith("assets/") for name in report.manifest.files)


def test_smoke_profile_run_is_rejected_as_ineligible(tmp_path: Path) -> None:
    run = make_run(tmp_path / "smoke", profile="smoke")
    pack_run(run, tmp_path / "smoke.tar.gz", submitter())
    report = validate_bundle(tmp_path / "smoke.tar.gz")
    assert not report.ok
    assert "eligibility" in _checks(report)
    assert "profile 'smoke' is never leaderboard-eligible" in _messages(report)


def test_forged_eligible_run_with_smoke_metric_card_is_rejected(tmp_path: Path) -> None:
    # Claims profile "paper" and eligibility, but its metric card is the smoke suite's.
    run = make_run(tmp_path / "forged", profile="paper", card_profile="smoke")
    pack_run(run, tmp_path / "forged.tar.gz", submitter())
    report = validate_bundle(tmp_path / "forged.tar.gz")
    assert not report.ok
    assert _checks(report) == {"metric-card"}, report.summary()
    assert "smoke:tiny-clip/seed0" in _messages(report)
    assert "metric_card profile is 'smoke'" in _messages(report)


def test_forged_card_that_also_claims_paper_is_rejected_by_its_encoders(tmp_path: Path) -> None:
    # A careful forger also rewrites the card's own profile entries; the smoke encoders still show.
    run = make_run(tmp_path / "forged2", profile="paper", card_profile="smoke", card_claims="paper")
    pack_run(run, tmp_path / "forged2.tar.gz", submitter())
    report = validate_bundle(tmp_path / "forged2.tar.gz")
    assert _checks(report) == {"metric-card"}, report.summary()
    assert "does not name the 'paper' profile's encoder 'clip-vit-b-32-openai'" in _messages(report)


def test_ar3d_r1_script_profile_and_demo_benchmark_are_ineligible(tmp_path: Path) -> None:
    run = make_run(tmp_path / "script", profile="ar3d-r1-script")
    pack_run(run, tmp_path / "script.tar.gz", submitter())
    assert "profile 'ar3d-r1-script' is never" in _messages(validate_bundle(tmp_path / "script.tar.gz"))
    # The built-in demo validates in every other respect but is never ranked.
    demo = make_run(tmp_path / "demo", benchmark="mme3dr-demo", with_renders=False)
    pack_run(demo, tmp_path / "demo.tar.gz", submitter())
    report = validate_bundle(tmp_path / "demo.tar.gz")
    assert _checks(report) == {"eligibility"}, report.summary()
    assert "benchmark 'mme3dr-demo' is not ranked" in _messages(report)


def test_limit_run_is_ineligible(good_bundle: Path, tmp_path: Path) -> None:
    def edit(d: Path) -> None:
        res = json.loads((d / "results.json").read_text())
        res["config"]["limit"] = 10
        (d / "results.json").write_text(json.dumps(res))

    report = validate_bundle(tamper(good_bundle, tmp_path, edit))
    assert "--limit 10" in _messages(report)


# --- Must show 2: tampering, one test per case --------------------------------------------------------


def _first_asset(d: Path) -> Path:
    return sorted(p for p in (d / "assets").rglob("*") if p.is_file())[0]


def test_one_changed_byte_in_an_asset_is_caught_by_the_file_hash(good_bundle: Path, tmp_path: Path) -> None:
    def edit(d: Path) -> None:
        p = _first_asset(d)
        data = bytearray(p.read_bytes())
        data[0] ^= 0x01
        p.write_bytes(bytes(data))

    report = validate_bundle(tamper(good_bundle, tmp_path, edit, rehash=False))
    assert not report.ok
    assert "sha256 does not match bundle.json" in _messages(report)
    assert "assets/" in _messages(report)


def test_changed_asset_with_rehashed_bundle_json_is_still_caught(good_bundle: Path, tmp_path: Path) -> None:
    def edit(d: Path) -> None:
        p = _first_asset(d)
        data = bytearray(p.read_bytes())
        data[-2] ^= 0x01
        p.write_bytes(bytes(data))

    report = validate_bundle(tamper(good_bundle, tmp_path, edit, rehash=True))
    assert _checks(report) == {"assets"}, report.summary()
    assert "do not hash to its name" in _messages(report)


def test_one_changed_metric_value_is_caught(good_bundle: Path, tmp_path: Path) -> None:
    def edit(d: Path) -> None:
        res = json.loads((d / "results.json").read_text())
        res["results"]["mme3dr-v1"]["clip"] += 0.5
        (d / "results.json").write_text(json.dumps(res))

    report = validate_bundle(tamper(good_bundle, tmp_path, edit))
    assert _checks(report) == {"aggregates"}, report.summary()
    assert "results['mme3dr-v1']['clip']" in _messages(report)


def test_one_changed_per_asset_score_is_caught(good_bundle: Path, tmp_path: Path) -> None:
    def edit(d: Path) -> None:
        lines = (d / "samples.jsonl").read_text().splitlines()
        rec = json.loads(lines[0])
        rec["metrics"]["clip"] += 10
        lines[0] = json.dumps(rec, sort_keys=True, separators=(",", ":"))
        (d / "samples.jsonl").write_text("\n".join(lines) + "\n")

    report = validate_bundle(tamper(good_bundle, tmp_path, edit))
    assert "aggregates" in _checks(report)
    assert "a metric value was changed" in _messages(report)


def test_changed_manifest_hash_is_caught(good_bundle: Path, tmp_path: Path) -> None:
    def edit(d: Path) -> None:
        res = json.loads((d / "results.json").read_text())
        res["benchmark"]["manifest_sha256"] = "0" * 64
        (d / "results.json").write_text(json.dumps(res))

    report = validate_bundle(tamper(good_bundle, tmp_path, edit))
    assert _checks(report) == {"manifest"}, report.summary()
    assert "is not the sha256 of mme3dr-v1" in _messages(report)


def test_changed_seed_is_caught(good_bundle: Path, tmp_path: Path) -> None:
    def edit(d: Path) -> None:
        lines = (d / "samples.jsonl").read_text().splitlines()
        rec = json.loads(lines[5])
        rec["seed"] += 1
        lines[5] = json.dumps(rec, sort_keys=True, separators=(",", ":"))
        (d / "samples.jsonl").write_text("\n".join(lines) + "\n")

    report = validate_bundle(tamper(good_bundle, tmp_path, edit))
    assert _checks(report) == {"seeds"}, report.summary()
    assert "case mme3dr-v1-005 sample 0: seed" in _messages(report)


def test_deleted_case_is_caught_even_when_every_hash_is_fixed(good_bundle: Path, tmp_path: Path) -> None:
    def edit(d: Path) -> None:
        lines = (d / "samples.jsonl").read_text().splitlines()
        (d / "samples.jsonl").write_text("\n".join(lines[:3] + lines[4:]) + "\n")

    report = validate_bundle(tamper(good_bundle, tmp_path, edit))
    assert not report.ok
    assert "1 case(s) missing from samples.jsonl (first: mme3dr-v1-003)" in _messages(report)


def test_edited_samples_without_rehash_break_the_samples_hash(good_bundle: Path, tmp_path: Path) -> None:
    def edit(d: Path) -> None:
        lines = (d / "samples.jsonl").read_text().splitlines()
        (d / "samples.jsonl").write_text("\n".join(lines[1:]) + "\n")

    report = validate_bundle(tamper(good_bundle, tmp_path, edit, rehash=False))
    assert {"files", "samples"} <= _checks(report)


def test_same_asset_for_two_cases_is_rejected(good_bundle: Path, tmp_path: Path) -> None:
    def edit(d: Path) -> None:
        lines = (d / "samples.jsonl").read_text().splitlines()
        a, b = json.loads(lines[0]), json.loads(lines[1])
        b["asset_sha256"] = a["asset_sha256"]
        lines[1] = json.dumps(b, sort_keys=True, separators=(",", ":"))
        (d / "samples.jsonl").write_text("\n".join(lines) + "\n")

    report = validate_bundle(tamper(good_bundle, tmp_path, edit))
    assert "duplicates" in _checks(report)
    assert "is submitted for 2 cases" in _messages(report)


def test_extra_field_in_results_is_rejected_by_the_schema(good_bundle: Path, tmp_path: Path) -> None:
    def edit(d: Path) -> None:
        res = json.loads((d / "results.json").read_text())
        res["verified"] = True
        (d / "results.json").write_text(json.dumps(res))

    report = validate_bundle(tamper(good_bundle, tmp_path, edit))
    assert _checks(report) == {"schema"}
    assert "Extra inputs are not permitted" in _messages(report)


def test_hostile_archive_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    import io
    import tarfile

    bad = tmp_path / "evil.tar.gz"
    with tarfile.open(bad, "w:gz") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    report = validate_bundle(bad)
    assert _checks(report) == {"archive"}
    assert not (tmp_path.parent / "escape.txt").exists()


def test_forged_run_with_the_real_smoke_suite_card_is_rejected(tmp_path: Path) -> None:
    # The card of the real smoke feature suite (tiny random encoders), with its own profile entries
    # rewritten to "paper" by a careful forger; the run claims profile "paper" and eligibility.
    pytest.importorskip("torch", reason="the real smoke suite needs torch (metrics extra)")
    from mme3dr import results as R
    from mme3dr.features import load_feature_suite
    from mme3dr.harness.scoring import metric_card

    suite_card = load_feature_suite("smoke").card()
    suite_card.update(profile="paper", leaderboard_eligible=True)
    run = make_run(tmp_path / "forged", profile="paper", with_renders=False)
    res = R.load_results(run / "results.json")
    card = metric_card(suite_card, eval24(), res.renderer.model_dump())
    R.dump_results(res.model_copy(update={"metric_card": card}), run / "results.json")
    pack_run(run, tmp_path / "forged.tar.gz", submitter())
    report = validate_bundle(tmp_path / "forged.tar.gz")
    assert _checks(report) == {"metric-card"}, report.summary()
    assert "does not name the 'paper' profile's encoder 'clip-vit-b-32-openai'" in _messages(report)
    assert "names the smoke encoder 'smoke:" in _messages(report)


def test_flipped_higher_is_better_is_rejected(good_bundle: Path, tmp_path: Path) -> None:
    # Claiming KD is higher-is-better would put the worst model first.
    def edit(d: Path) -> None:
        res = json.loads((d / "results.json").read_text())
        res["higher_is_better"]["mme3dr-v1"]["kd_incep"] = True
        (d / "results.json").write_text(json.dumps(res))

    report = validate_bundle(tamper(good_bundle, tmp_path, edit))
    assert _checks(report) == {"metric-card"}, report.summary()
    assert "higher_is_better['mme3dr-v1']['kd_incep'] is True" in _messages(report)


def test_an_overlong_string_field_is_rejected_by_its_path(good_bundle: Path, tmp_path: Path) -> None:
    from leaderboard.validate import MAX_STRING_CHARS

    def edit(d: Path) -> None:
        res = json.loads((d / "results.json").read_text())
        res["model_info"]["name"] = "N" * (MAX_STRING_CHARS + 1)
        (d / "results.json").write_text(json.dumps(res))
        lines = (d / "samples.jsonl").read_text().splitlines()
        rec = json.loads(lines[0])
        rec["failure_detail"] = "x" * (MAX_STRING_CHARS + 1)
        lines[0] = json.dumps(rec, sort_keys=True, separators=(",", ":"))
        (d / "samples.jsonl").write_text("\n".join(lines) + "\n")

    report = validate_bundle(tamper(good_bundle, tmp_path, edit))
    assert _checks(report) == {"limits"}
    assert "results.json.model_info.name is a string of 4,097 characters" in _messages(report)
    assert "samples.jsonl line 1.failure_detail" in _messages(report)


@pytest.mark.parametrize("name", ["results.json", "samples.jsonl"])
def test_an_oversized_run_file_is_rejected_before_it_is_read(good_bundle: Path, tmp_path: Path,
                                                             monkeypatch, name: str) -> None:
    import leaderboard.validate as V

    def edit(d: Path) -> None:  # pad with JSON whitespace: still valid, just big
        with (d / name).open("a") as f:
            f.write(" " * 5000 if name == "results.json" else "\n" * 5000)

    bundle = tamper(good_bundle, tmp_path, edit)
    size = (tmp_path / "x" / name).stat().st_size
    cap = "MAX_RESULTS_BYTES" if name == "results.json" else "MAX_SAMPLES_BYTES"
    monkeypatch.setattr(V, cap, size - 1)
    report = validate_bundle(bundle)
    assert _checks(report) == {"limits"}
    assert f"{name} is {size:,} bytes; at most {size - 1:,} are accepted" in _messages(report)
    monkeypatch.setattr(V, cap, size)
    assert validate_bundle(bundle).ok


@pytest.mark.parametrize(("field", "value", "code"), [
    ("model_name", "Synthetic Tetra\u202e\u2066 evil", "U+202E"), ("evaluator", "Test\u200bLab", "U+200B"),
    ("revision", "r1\ufeff", "U+FEFF"), ("model_name", "a\u2060b", "U+2060"),
    ("model_name", "x\u202ay", "U+202A"),
])
def test_names_with_bidi_controls_or_zero_width_characters_are_refused(field, value, code):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=re.escape(code)):
        submitter(**{field: value})


def test_a_bundle_whose_name_holds_a_bidi_override_is_refused(good_bundle: Path, tmp_path: Path) -> None:
    def edit(d: Path) -> None:
        manifest = json.loads((d / "bundle.json").read_text())
        manifest["submitter"]["model_name"] = "Synthetic Tetra\u202e evil"
        (d / "bundle.json").write_text(json.dumps(manifest))

    report = validate_bundle(tamper(good_bundle, tmp_path, edit))
    assert not report.ok and "U+202E" in report.summary(), report.summary()


@pytest.mark.parametrize("contact", ["not an email", "a@b", "@example.org", "a b@example.org",
                                     "javascript:alert(1)", "https://", "lab@example.org\r\nBcc: x@y.z"])
def test_a_contact_that_is_neither_an_email_nor_a_url_is_refused(contact):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="e-mail address or an http"):
        submitter(contact=contact)


@pytest.mark.parametrize("contact", ["lab@example.org", "first.last+tag@sub.example.co.uk",
                                     "https://github.com/lab/model/issues"])
def test_an_email_or_http_url_contact_is_accepted(contact):
    assert submitter(contact=contact).contact == contact


def test_the_site_neutralises_zero_width_characters_too():
    from leaderboard.names import neutralise_bidi

    assert neutralise_bidi("a\u202eb\u200bc\ufeffd") == "a\ufffdb\ufffdc\ufffdd"
