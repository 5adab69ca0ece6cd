"""`mme3dr compare` on demo runs (Must show 1), against itself, on runs with set differences, refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from demo_runs import run_cli

from mme3dr.results import read_samples


def compare_runs(paths: list[Path]) -> dict:
    """``mme3dr compare PATHS --json`` in a subprocess (one BLAS thread, see demo_runs.run_cli)."""
    proc = run_cli(["compare", *map(str, paths), "--json"])
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _clip_by_key(run: Path) -> dict:
    return {(s.case_id, s.sample_index): (s.category, s.metrics["clip"])
            for s in read_samples(run / "samples.jsonl") if s.status == "ok"}


def test_primitives_vs_oracle_table_and_json_deltas_equal_mean_paired_differences(primitives_run, oracle_run):
    table = run_cli(["compare", str(primitives_run), str(oracle_run)])
    assert table.returncode == 0, table.stderr
    assert "oracle − primitives-baseline: 15 of 15 samples pair up" in table.stdout
    assert "oracle is " in table.stdout and " on CLIP by " in table.stdout and "15 pairs" in table.stdout
    # the slow part says what it is doing, on stderr (the tables and --json stay alone on stdout)
    said = "compare: resampling kd_incep (overall, 15 cases): oracle against primitives-baseline"
    assert said in table.stderr
    assert "compare: resampling" not in table.stdout
    proc = run_cli(["compare", str(primitives_run), str(oracle_run), "--json"])
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    (comp,) = doc["comparisons"]
    a, b = _clip_by_key(primitives_run), _clip_by_key(oracle_run)
    diffs = {k: (a[k][0], b[k][1] - a[k][1]) for k in a.keys() & b.keys()}
    clip = comp["metrics"]["clip"]
    assert clip["overall"]["delta"] == pytest.approx(np.mean([d for _, d in diffs.values()]), abs=1e-12)
    assert clip["overall"]["n_pairs"] == len(diffs) == 15
    for cat in {c for c, _ in diffs.values()}:
        want = np.mean([d for c, d in diffs.values() if c == cat])
        assert clip[cat]["delta"] == pytest.approx(want, abs=1e-12)
    for stats in clip.values():
        assert set(stats) >= {"delta", "ci95_low", "ci95_high", "p_value", "n_pairs"}
        assert stats["ci95_low"] <= stats["delta"] <= stats["ci95_high"] and 0 < stats["p_value"] <= 1
    # set metrics: the difference of the protocol values each run reported
    ra = json.loads((primitives_run / "results.json").read_text())["results"]["mme3dr-demo"]
    rb = json.loads((oracle_run / "results.json").read_text())["results"]["mme3dr-demo"]
    for name in ("kd_incep", "kd_dinov2", "fd_incep", "fd_dinov2"):
        overall = comp["metrics"][name]["overall"]
        assert overall["delta"] == pytest.approx(rb[name] - ra[name], rel=1e-6, abs=1e-9)
        assert overall["p_value"] is None and overall["ci95_low"] <= overall["delta"] <= overall["ci95_high"]


def test_a_run_against_itself_gives_zero_and_p_one(primitives_run):
    doc = compare_runs([primitives_run, primitives_run])
    for metric, groups in doc["comparisons"][0]["metrics"].items():
        for stats in groups.values():
            assert stats["delta"] == 0.0, metric
            if stats["p_value"] is not None:
                assert stats["p_value"] == 1.0


def _with_clip_shift(src: Path, dst: Path, diffs: dict) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("cache", "report", ".lock"))
    lines = []
    for line in (dst / "samples.jsonl").read_text().splitlines():
        rec = json.loads(line)
        rec["metrics"]["clip"] += diffs[rec["case_id"]]
        lines.append(json.dumps(rec, sort_keys=True))
    (dst / "samples.jsonl").write_text("\n".join(lines) + "\n")
    return dst


def test_set_per_sample_differences_give_that_delta_and_holm_for_three_runs(primitives_run, tmp_path):
    cases = sorted(_clip_by_key(primitives_run))
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.5, len(cases))
    diffs = {k[0]: 2.0 + n - noise.mean() for k, n in zip(cases, noise, strict=True)}  # mean exactly 2.0
    b = _with_clip_shift(primitives_run, tmp_path / "b", diffs)
    c = _with_clip_shift(primitives_run, tmp_path / "c", {k: 0.0 for k in diffs})
    two = compare_runs([primitives_run, b])["comparisons"][0]["metrics"]["clip"]["overall"]
    assert two["delta"] == pytest.approx(2.0, abs=1e-9)
    assert two["ci95_low"] < 2.0 < two["ci95_high"] and two["p_value"] < 0.001
    doc = compare_runs([primitives_run, b, c])
    assert doc["correction"] == "holm"
    ps = [comp["metrics"]["clip"]["overall"] for comp in doc["comparisons"]]
    assert ps[0]["p_value_raw"] == two["p_value"] and ps[0]["p_value"] == pytest.approx(2 * two["p_value"])
    assert ps[1]["p_value"] == 1.0
    proc = run_cli(["compare", str(primitives_run), str(b), str(c)])
    assert "Holm-adjusted" in proc.stdout


@pytest.mark.parametrize(("key", "path", "value", "says"), [
    ("benchmark", "manifest_sha256", "0" * 64, "manifest hash"),
    ("profile", None, "paper", "profile"),
    ("protocol_version", None, "0", "protocol"),
    ("rig_hash", None, "1" * 64, "rig"),
])
def test_mismatched_runs_are_refused_with_one_line(primitives_run, tmp_path, key, path, value, says):
    other = tmp_path / "other"
    skip = shutil.ignore_patterns("cache", "report", "assets", ".lock")
    shutil.copytree(primitives_run, other, ignore=skip)
    results = json.loads((other / "results.json").read_text())
    if path is None:
        results[key] = value
    else:
        results[key][path] = value
    (other / "results.json").write_text(json.dumps(results))
    proc = run_cli(["compare", str(primitives_run), str(other)])
    assert proc.returncode == 2
    message = proc.stderr.strip()
    assert message.startswith("error:") and says in message and str(other) in message
    assert len(message.splitlines()) == 1


def test_missing_run_folder_is_one_clear_error(primitives_run, tmp_path):
    proc = run_cli(["compare", str(primitives_run), str(tmp_path / "nope")])
    assert proc.returncode == 2 and "no such run folder" in proc.stderr


def test_missing_stored_features_is_one_clear_error(primitives_run, tmp_path):
    other = tmp_path / "nofeatures"
    skip = shutil.ignore_patterns("cache", "report", "features", ".lock")
    shutil.copytree(primitives_run, other, ignore=skip)
    proc = run_cli(["compare", str(primitives_run), str(other)])
    assert proc.returncode == 2
    assert "feature file of render" in proc.stderr and str(other) in proc.stderr
