"""Bundles carrying impossible numbers or hostile JSON are refused with a reason, never a traceback
(issue 26, kind 6): non-finite values, values outside a metric's range, negative std, a CI that does not
hold its mean, counts that disagree with samples.jsonl, duplicate keys, deep nesting."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from bundle_factory import extract_plain, repack, submitter, tamper

from leaderboard.bundle import sha256_file
from leaderboard.json_input import MAX_DEPTH, StrictJsonError, depth, strict_loads
from leaderboard.pack import pack_run
from leaderboard.validate import validate_bundle

BENCH = "mme3dr-v1"


def _checks(report) -> set[str]:
    return {p.check for p in report.problems}


def _messages(report) -> str:
    return "\n".join(str(p) for p in report.problems)


def raw_tamper(bundle: Path, workdir: Path, name: str, edit) -> Path:
    """Replace the bytes of ``name`` with ``edit(bytes)`` and fix only bundle.json's file hashes (the
    file itself is not re-parsed, so duplicate keys and deep nesting reach the validator as written)."""
    src = extract_plain(bundle, workdir / "x")
    (src / name).write_bytes(edit((src / name).read_bytes()))
    manifest = json.loads((src / "bundle.json").read_text())
    manifest["files"][name] = {"sha256": sha256_file(src / name), "size": (src / name).stat().st_size}
    (src / "bundle.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return repack(src, workdir / "tampered.tar.gz", rehash=False)


def edit_overall(**changes):
    def edit(d: Path) -> None:
        res = json.loads((d / "results.json").read_text())
        res["results"][BENCH].update(changes)
        (d / "results.json").write_text(json.dumps(res))  # writes NaN / Infinity as Python does

    return edit


@pytest.mark.parametrize(("changes", "words"), [
    ({"kd_incep": float("-inf")}, "-Infinity is not a JSON number"),
    ({"fd_incep": float("nan")}, "NaN is not a JSON number"),
    ({"kd_dinov2_std": float("inf")}, "Infinity is not a JSON number"),
])
def test_non_finite_numbers_are_refused(good_bundle, tmp_path, changes, words):
    report = validate_bundle(tamper(good_bundle, tmp_path, edit_overall(**changes)))
    assert not report.ok and "json" in _checks(report), report.summary()
    assert words in _messages(report)


def test_a_number_too_large_for_a_float_is_refused(good_bundle, tmp_path):
    bundle = raw_tamper(good_bundle, tmp_path, "results.json",
                        lambda raw: raw.replace(b'"fd_incep": 30.5', b'"fd_incep": 1e400'))
    report = validate_bundle(bundle)
    assert "json" in _checks(report) and "overflows a float" in _messages(report), report.summary()


@pytest.mark.parametrize(("changes", "words"), [
    ({"fd_incep": -100.0}, "['fd_incep'] is -100.0, outside fd_incep's range [0, inf]"),
    ({"fd_dinov2": -0.5}, "outside fd_dinov2's range"),
    ({"kd_incep_std": -0.01}, "a standard deviation is >= 0"),
    ({"clip": 150.0, "clip_ci95_high": 160.0}, "outside clip's range [0, 100]"),
    ({"clip_ci95_low": 29.9, "clip_ci95_high": 30.0}, "is not inside its 95% CI"),
    ({"n": 3.5}, "['n'] is 3.5, not a count"),
    ({"n_failed": -1}, "['n_failed'] is -1, not a count"),
    ({"n": True}, "['n'] is true, not a number"),
    ({"clip": True}, "['clip'] is true, not a number"),
    ({"n": 200}, "['n'] is 200, but samples.jsonl has"),
    ({"judge": 101.0, "judge_n": 1, "judge_n_failed": 0}, "outside judge's range [0, 100]"),
    ({"kd_incep": -1e300}, "outside kd_incep's range [-100, inf]"),
])
def test_impossible_numbers_are_refused_by_name(good_bundle, tmp_path, changes, words):
    report = validate_bundle(tamper(good_bundle, tmp_path, edit_overall(**changes)))
    assert not report.ok and "numbers" in _checks(report), report.summary()
    assert words in _messages(report), report.summary()


@pytest.mark.parametrize("name", ["results.json", "samples.jsonl"])
def test_an_integer_too_large_for_a_float_is_refused(good_bundle, tmp_path, name):
    big = b"1" + b"0" * 400  # json reads it as an int; as a float it is infinity

    def edit(raw: bytes) -> bytes:
        if name == "results.json":
            return raw.replace(b'"fd_incep": 30.5', b'"fd_incep": ' + big)
        first, rest = raw.split(b"\n", 1)
        rec = json.loads(first)
        return first.replace(str(rec["metrics"]["clip"]).encode(), big, 1) + b"\n" + rest

    report = validate_bundle(raw_tamper(good_bundle, tmp_path, name, edit))
    assert "json" in _checks(report) and "has 401 digits" in _messages(report), report.summary()


def test_a_category_count_that_disagrees_with_the_samples_is_refused(good_bundle, tmp_path):
    def edit(d: Path) -> None:
        res = json.loads((d / "results.json").read_text())
        task = sorted(k for k in res["results"] if k.startswith(f"{BENCH}/"))[0]
        res["results"][task]["n"] += 1
        (d / "results.json").write_text(json.dumps(res))

    report = validate_bundle(tamper(good_bundle, tmp_path, edit))
    assert "numbers" in _checks(report) and "but samples.jsonl has" in _messages(report), report.summary()


def test_negative_failure_and_case_counts_are_refused(good_bundle, tmp_path):
    def edit(d: Path) -> None:
        res = json.loads((d / "results.json").read_text())
        res["failures"]["render_error"] = -3
        (d / "results.json").write_text(json.dumps(res))

    report = validate_bundle(tamper(good_bundle, tmp_path, edit))
    assert "results.failures['render_error'] is -3, not a count" in _messages(report), report.summary()


def test_an_impossible_per_sample_value_is_refused(good_bundle, tmp_path):
    def edit(d: Path) -> None:
        lines = (d / "samples.jsonl").read_text().splitlines()
        rec = json.loads(lines[0])
        rec["metrics"]["clip"] = -5.0
        lines[0] = json.dumps(rec)
        (d / "samples.jsonl").write_text("\n".join(lines) + "\n")

    report = validate_bundle(tamper(good_bundle, tmp_path, edit))
    assert "numbers" in _checks(report)
    assert "clip -5.0 is not a finite value in [0.0, 100.0]" in _messages(report), report.summary()


def test_duplicate_keys_are_refused(good_bundle, tmp_path):
    # A first-wins reader would see profile "smoke"; Python's json keeps the last ("paper").
    bundle = raw_tamper(good_bundle, tmp_path, "results.json",
                        lambda raw: raw.replace(b"{", b'{"profile": "smoke", ', 1))
    report = validate_bundle(bundle)
    assert not report.ok and "duplicate key 'profile'" in _messages(report), report.summary()


def test_duplicate_keys_in_a_sample_line_are_refused(good_bundle, tmp_path):
    def edit(raw: bytes) -> bytes:
        first, rest = raw.split(b"\n", 1)
        return first.replace(b"{", b'{"status": "failed", ', 1) + b"\n" + rest

    report = validate_bundle(raw_tamper(good_bundle, tmp_path, "samples.jsonl", edit))
    assert "samples.jsonl line 1: duplicate key 'status'" in _messages(report), report.summary()


@pytest.mark.parametrize("name", ["results.json", "samples.jsonl", "bundle.json"])
def test_100000_nested_arrays_are_refused_cleanly(good_bundle, tmp_path, name):
    # Regression: results.json used to go through json.loads before the schema (for the string-length
    # caps) and its RecursionError escaped as a traceback; an earlier version let pydantic reject it.
    deep = b"[" * 100_000 + b"]" * 100_000

    def edit(raw: bytes) -> bytes:
        if name == "samples.jsonl":
            first, rest = raw.split(b"\n", 1)
            return first.replace(b'"metrics":', b'"x": ' + deep + b', "metrics":', 1) + b"\n" + rest
        return raw.replace(b"{", b'{"deep": ' + deep + b", ", 1)

    if name == "bundle.json":
        src = extract_plain(good_bundle, tmp_path / "x")
        (src / name).write_bytes(edit((src / name).read_bytes()))
        bundle = repack(src, tmp_path / "t.tar.gz", rehash=False)
    else:
        bundle = raw_tamper(good_bundle, tmp_path, name, edit)
    report = validate_bundle(bundle)  # no RecursionError
    assert not report.ok and f"nested deeper than {MAX_DEPTH} levels" in _messages(report), report.summary()


def test_samples_that_are_not_utf8_are_a_problem_not_a_crash(good_bundle, tmp_path):
    bundle = raw_tamper(good_bundle, tmp_path, "samples.jsonl", lambda raw: raw + b"\xff\xfe\n")
    report = validate_bundle(bundle)
    assert "json" in _checks(report) and "not UTF-8" in _messages(report), report.summary()


def test_strict_loads_rules():
    assert strict_loads(b'{"a": [1, 2.5, {"b": null}]}', "x") == {"a": [1, 2.5, {"b": None}]}
    assert depth([[[]]]) == 3 and depth(1) == 0 and depth({"a": {"b": []}}) == 3
    for bad in ('{"a": 1, "a": 1}', "[NaN]", "[1e999]", "[" * 33 + "]" * 33, "{", '{"a": 1} x',
                "[" + "9" * 19 + "]"):
        with pytest.raises(StrictJsonError, match="^where: "):
            strict_loads(bad, "where")
    strict_loads("[" * 32 + "]" * 32, "ok")  # exactly MAX_DEPTH is fine


def test_a_huge_integer_that_reaches_the_numbers_check_is_not_a_crash():
    from leaderboard.number_checks import check_row

    (problem,) = check_row("t", {"n": 10**400})
    assert "an integer of 401 digits: every number must be finite" in str(problem)


def test_a_line_separator_inside_a_sample_string_is_not_a_line_break(good_bundle, run_template, tmp_path):
    # JSON Lines split on \n only; str.splitlines also splits on U+2028, which json.dumps(ensure_ascii=
    # False) writes raw inside strings: a valid bundle was refused as a broken line.
    from mme3dr.results import SampleRecord, samples_digest

    src = extract_plain(good_bundle, tmp_path / "x")
    lines = (src / "samples.jsonl").read_text(encoding="utf-8").split("\n")
    k = next(i for i, line in enumerate(lines) if '"failed"' in line)
    rec = json.loads(lines[k])
    rec["failure_detail"] = "first part\u2028second part"
    lines[k] = json.dumps(rec, ensure_ascii=False, sort_keys=True)
    (src / "samples.jsonl").write_text("\n".join(lines), encoding="utf-8")
    records = [SampleRecord.model_validate_json(x) for x in lines if x.strip()]
    results = json.loads((src / "results.json").read_text())
    results["samples_sha256"] = samples_digest(records)
    (src / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    manifest = json.loads((src / "bundle.json").read_text())
    for name in ("samples.jsonl", "results.json"):
        manifest["files"][name] = {"sha256": sha256_file(src / name), "size": (src / name).stat().st_size}
    (src / "bundle.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    report = validate_bundle(repack(src, tmp_path / "t.tar.gz", rehash=False))
    assert report.ok, report.summary()
    assert "\u2028" in next(s.failure_detail for s in report.samples if s.failure_detail)
    # and `mme3dr submit` packs such a run (its samples.jsonl read the same way)
    run = tmp_path / "run"
    shutil.copytree(run_template, run)
    for name in ("samples.jsonl", "results.json"):
        shutil.copyfile(src / name, run / name)
    pack_run(run, tmp_path / "packed.tar.gz", submitter())
    assert validate_bundle(tmp_path / "packed.tar.gz").ok


def test_kd_may_be_slightly_negative_but_not_below_its_floor():
    from leaderboard.number_checks import check_row

    assert check_row("t", {"kd_incep": -0.02, "kd_incep_ci95_low": -0.05, "kd_incep_ci95_high": 0.01}) == []
    problems = check_row("t", {"kd_dinov2": -100.5})
    assert len(problems) == 1 and "outside kd_dinov2's range [-100, inf]" in str(problems[0])


def test_an_invented_results_task_is_refused(good_bundle, tmp_path):
    def edit(d: Path) -> None:
        res = json.loads((d / "results.json").read_text())
        res["results"][f"{BENCH}/zzz"] = {"clip": 99.0, "n": 0}
        (d / "results.json").write_text(json.dumps(res))

    report = validate_bundle(tamper(good_bundle, tmp_path, edit))
    assert not report.ok and "manifest" in _checks(report), report.summary()
    assert f"results has task '{BENCH}/zzz'" in _messages(report), report.summary()
