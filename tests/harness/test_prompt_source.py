"""`--prompt-source raw-captions-column`: the CLIP text the authors' eval.py main() used, re-derived from
the CSV with the csv module and ``str.split('.')[0]``; the default stays the parsed prompt."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from test_evaluate_toys4k import build_synthetic_toys4k
from typer.testing import CliRunner

from mme3dr.cli import app
from mme3dr.features.profiles import get_profile, with_options
from mme3dr.harness.inputs import load_benchmark_inputs


def test_raw_captions_column_reaches_the_clip_text(tmp_path: Path) -> None:
    zip_path, csv_path, cases = build_synthetic_toys4k(tmp_path, n=3, leave_out=99)
    inputs = load_benchmark_inputs("mme3dr-v1", toys4k=zip_path, captions=csv_path, cache_dir=tmp_path / "c")
    with csv_path.open(newline="") as f:
        column = {row["file_identifier"]: row["captions"] for row in csv.DictReader(f)}
    script = with_options(get_profile("ar3d-r1-script"), prompt_source="raw_captions_column")
    for case in inputs.manifest.cases[:3]:
        raw = column[case.file_identifier]
        assert inputs.raw_captions[case.case_id] == raw
        text = script.clip_text(case.prompt, inputs.raw_captions[case.case_id])
        assert text == raw.split(".")[0] and text.startswith('["')
        assert get_profile("ar3d-r1-script").clip_text(case.prompt, raw) == case.prompt.split(".")[0]


@pytest.mark.parametrize(("profile", "bench", "why"), [
    ("paper", "demo", "use it with --profile ar3d-r1-script, not paper"),
    ("ar3d-r1-script", "demo", "needs the captions CSV's raw column"),
])
def test_raw_captions_column_is_refused_where_it_cannot_apply(tmp_path: Path, profile, bench,
                                                              why) -> None:
    result = CliRunner().invoke(app, ["evaluate", "--model", "primitives", "--profile", profile,
                                      "--benchmark", bench, "--prompt-source", "raw-captions-column",
                                      "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and why in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run" / "run.json").exists()


def test_a_mistyped_benchmark_lists_every_built_in_and_suggests_the_closest(tmp_path: Path) -> None:
    from mme3dr.harness.inputs import BENCHMARKS, BenchmarkInputError

    with pytest.raises(BenchmarkInputError) as e:
        load_benchmark_inputs("dmo", cache_dir=tmp_path)
    assert str(e.value) == ("--benchmark 'dmo' is not a built-in benchmark (demo, mme3dr-v1, toys4k-800) and "
                            "no such manifest file; did you mean 'demo'?")
    assert BENCHMARKS == ("demo", "mme3dr-v1", "toys4k-800")
    with pytest.raises(BenchmarkInputError, match="pass a built-in name or the path of a .jsonl manifest"):
        load_benchmark_inputs("xyz/nothing.jsonl", cache_dir=tmp_path)
