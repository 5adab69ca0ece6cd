"""A judge run that gets no answer, a judge run that fails for some samples, and NaN features: each is
recorded where it arises and loses nothing (issue 26, kind 4). One real 2-case demo run is shared;
each test works on its own copy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from evaluate_support import FAST, evaluate_cmd, run_cli
from judge_server import Scripted, ScriptedServer, chat_reply, free_port

ARGS = ["--model", "primitives", "--benchmark", "demo", "--limit", "2", *FAST, "--no-report"]
#: Enough numbered "yes" lines for any checklist: every sample scores 100.
ALL_YES = chat_reply("\n".join(f"{k}. yes" for k in range(1, 31)))
SERVER_ERROR = Scripted({"error": "injected"}, status=500)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("hostile") / "run"
    done = run_cli(evaluate_cmd(run, *ARGS))
    assert done.returncode == 0, done.stderr[-3000:]
    return run


def judge(run: Path, url: str) -> object:
    return run_cli([*evaluate_cmd(run)[:3], "judge", str(run), "--judge", url, "--judge-model", "m",
                    "--judge-concurrency", "1", "--judge-retries", "0", "--judge-timeout", "20"])


def files(run: Path) -> dict[str, bytes]:
    return {name: (run / name).read_bytes() for name in ("results.json", "samples.jsonl", "judge.jsonl")
            if (run / name).is_file()}


def judge_scores(run: Path) -> list:
    lines = (run / "samples.jsonl").read_text().splitlines()
    return [json.loads(line)["metrics"].get("judge") for line in lines]


def test_no_answer_at_all_exits_non_zero_and_changes_nothing(finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = files(run)
    done = judge(run, f"http://127.0.0.1:{free_port()}/v1")
    assert done.returncode == 1, done.stderr[-2000:]
    assert "no judge answer for any of 2 samples" in done.stderr and "left unchanged" in done.stderr
    assert files(run) == before and "judge" not in json.loads(before["results.json"])["metric_card"]


def test_a_failed_re_run_never_turns_an_earlier_score_into_null(finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    with ScriptedServer([Scripted(ALL_YES)]) as server:
        first = judge(run, server.url)
    assert first.returncode == 0, first.stderr[-2000:]
    assert judge_scores(run) == [100.0, 100.0]
    scored = files(run)

    # The cache is gone and the server is down: exit 1, and the scores stay.
    shutil.rmtree(run / "cache" / "judge", ignore_errors=True)
    down = judge(run, f"http://127.0.0.1:{free_port()}/v1")
    assert down.returncode == 1 and files(run) == scored

    # The server answers the first question and fails the second: the second keeps its earlier score.
    shutil.rmtree(run / "cache" / "judge", ignore_errors=True)
    with ScriptedServer([Scripted(ALL_YES), SERVER_ERROR]) as server:
        partial = judge(run, server.url)
        assert len(server.times) == 2
    assert partial.returncode == 0, partial.stderr[-2000:]
    assert judge_scores(run) == [100.0, 100.0]
    results = json.loads((run / "results.json").read_text())
    overall = results["results"][results["benchmark"]["name"]]
    assert overall["judge"] == 100.0 and overall["judge_n"] == 2 and overall["judge_n_failed"] == 0
    lines = [json.loads(x) for x in (run / "judge.jsonl").read_text().splitlines()]
    assert [x["score"] for x in lines] == [100.0, 100.0] and all(x["failure"] is None for x in lines)


def test_a_judge_reply_cut_short_is_a_recorded_failure_not_a_score(finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    cut = Scripted(chat_reply("1. yes\n2. yes\n3. yes\n4. yes\n5. yes\n6. yes\n7. yes\n8. y", "length"))
    with ScriptedServer([Scripted(ALL_YES), cut]) as server:
        done = judge(run, server.url)
    assert done.returncode == 0 and "incomplete" in done.stderr
    lines = [json.loads(x) for x in (run / "judge.jsonl").read_text().splitlines()]
    assert lines[0]["score"] == 100.0 and lines[1]["score"] is None
    assert lines[1]["failure"].startswith("request failed (incomplete): finish_reason 'length'")
    assert lines[1]["reply"].endswith("8. y")


@pytest.mark.slow  # a resumed 2-case evaluate: ≈ 30 s on 2 loaded cores
def test_nan_features_fail_their_sample_where_they_arise_and_the_run_goes_on(finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    first = json.loads((run / "samples.jsonl").read_text().splitlines()[0])
    (path,) = (run / "features").glob(f"{first['render_sha256']}.*.npz")
    with np.load(path) as z:
        feats = {k: z[k] for k in z.files}
    feats["clip"][0, 0] = np.nan  # a feature cache entry (or an encoder) gone bad
    np.savez(path, **feats)
    done = run_cli(evaluate_cmd(run, *ARGS, "--resume"))
    assert done.returncode == 0, done.stderr[-3000:]
    samples = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]
    assert samples[0]["status"] == "failed" and samples[0]["failure"] == "non_finite_features"
    assert "clip features of this render hold NaN" in samples[0]["failure_detail"]
    assert samples[1]["status"] == "ok"
    results = json.loads((run / "results.json").read_text())
    overall = results["results"][results["benchmark"]["name"]]
    assert results["failures"] == {"non_finite_features": 1} and overall["n"] == 1
    assert all(np.isfinite(v) for v in overall.values() if isinstance(v, float))


@pytest.mark.slow  # a resumed 2-case evaluate: ≈ 30 s on 2 loaded cores
def test_evaluate_judge_with_no_answer_writes_the_results_without_the_judge_and_exits_1(finished_run,
                                                                                          tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "results.json").unlink()
    done = run_cli(evaluate_cmd(run, *ARGS, "--resume", "--judge", f"http://127.0.0.1:{free_port()}/v1",
                                "--judge-model", "m", "--judge-retries", "0", "--judge-timeout", "20"))
    assert done.returncode == 1, done.stderr[-2000:]
    assert "no judge answer for any of 2 samples" in done.stderr
    results = json.loads((run / "results.json").read_text())
    assert "judge" not in results["metric_card"] and "judge" not in next(iter(results["results"].values()))
    assert not (run / "judge.jsonl").exists() and judge_scores(run) == [None, None]
