"""The evaluation judge end to end (Must-show 5): ``mme3dr evaluate --judge`` on the demo benchmark
against the real test server writes judge scores per sample and per category; a judge run killed
mid-way resumes (``mme3dr judge``) without asking any cached question again; CLIP/KD/FD unchanged.

The tiny random server's replies are garbage, so its samples are recorded judge failures. The spatial
samples get hand-written replies placed in the run's response cache under the exact keys the client
computes, so the scoring path is proven on real replies too (those questions never reach the server).
Marked slow (CI runs it with ``-m slow``); tests/judge/test_evaluation.py covers the pieces quickly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
from evaluate_support import FAST, evaluate_cmd, run_cli

from mme3dr.harness.judging import run_cases
from mme3dr.judge import CachedReply, JudgeConfig, ResponseCache, load_template, request_key
from mme3dr.judge.evaluation import JUDGE_DECODING, case_request
from mme3dr.metrics.bootstrap import bootstrap_ci
from mme3dr.results import read_samples, samples_digest

ARGS = ["--model", "primitives", "--benchmark", "demo", "--limit", "6", *FAST, "--no-report"]
UNTOUCHED = ("clip", "clip_ci95_low", "clip_ci95_high", "kd_incep", "kd_dinov2", "fd_incep", "fd_dinov2",
             "reference_clip", "n", "n_failed")


def judge_args(proxy, served_vlm) -> list[str]:
    return ["--judge", proxy.url, "--judge-model", served_vlm.model, "--judge-profile", "transformers",
            "--judge-concurrency", "1", "--judge-retries", "0"]


@pytest.mark.slow  # two evaluate runs of 6 demo cases: ≈ 2.5 min on 2 shared cores
def test_evaluate_judge_writes_scores_and_a_killed_judge_resumes_without_re_asking(served_vlm, proxy,
                                                                                   tmp_path):
    run = tmp_path / "run"
    first = run_cli(evaluate_cmd(run, *ARGS))
    assert first.returncode == 0, first.stderr[-3000:]
    before = json.loads((run / "results.json").read_text())

    # Hand-written replies for the spatial samples (the first answer "no", the rest "yes").
    cases, missing = run_cases(run)
    assert not missing and len(cases) == 6
    config = JudgeConfig(proxy.url, served_vlm.model, profile="transformers")
    template, cache = load_template("eval-checklist"), ResponseCache(run / "cache" / "judge")
    expected = {}
    for case in cases:
        if case.category == "spatial":
            request, items = case_request(case, template, JUDGE_DECODING)
            answers = ["no"] + ["yes"] * (len(items) - 1)
            reply = "\n".join(f"{i}. {a}" for i, a in enumerate(answers, 1))
            cache.put(request_key(config, request), CachedReply(reply, "stop"))
            expected[case.case_id] = 100.0 * (len(items) - 1) / len(items)
    assert len(expected) == 3 and len(cache) == 3

    # `evaluate --resume --judge`, killed while the judge is asking the server (each request delayed).
    proxy.delay_s = 1.5
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(evaluate_cmd(run, *ARGS, "--resume", *judge_args(proxy, served_vlm)), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    try:
        while len(cache) < 4:  # one server answer has been cached
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "the judge never answered"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    answered_at_kill = len(cache)
    assert answered_at_kill < 6
    assert "judge" not in json.loads((run / "results.json").read_text())["metric_card"]

    # `mme3dr judge` finishes: only the questions not in the cache reach the server.
    proxy.delay_s = 0.0
    sent_before = proxy.count()
    done = run_cli([*evaluate_cmd(run)[:3], "judge", str(run), *judge_args(proxy, served_vlm)])
    assert done.returncode == 0, done.stderr[-3000:]
    assert proxy.count() - sent_before == 6 - answered_at_kill
    assert len(cache) == 6

    after = json.loads((run / "results.json").read_text())
    samples = {s.case_id: s for s in read_samples(run / "samples.jsonl")}
    for case_id, score in expected.items():
        assert abs(samples[case_id].metrics["judge"] - score) < 1e-6
    mechanical = [s for s in samples.values() if s.category == "mechanical"]
    assert len(mechanical) == 3 and all(s.metrics["judge"] is None for s in mechanical)

    task = after["benchmark"]["name"]
    spatial = np.array(sorted(expected.values()))
    low, high = bootstrap_ci(np.array([expected[c] for c in sorted(expected)]))
    row = after["results"][f"{task}/spatial"]
    assert abs(row["judge"] - spatial.mean()) < 1e-9 and row["judge_n"] == 3 and row["judge_n_failed"] == 0
    assert (abs(row["judge_ci95_low"] - low) < 1e-9) and (abs(row["judge_ci95_high"] - high) < 1e-9)
    mech = after["results"][f"{task}/mechanical"]
    assert mech["judge"] is None and mech["judge_n"] == 0 and mech["judge_n_failed"] == 3
    overall = after["results"][task]
    assert abs(overall["judge"] - spatial.mean()) < 1e-9 and overall["judge_n_failed"] == 3
    assert after["higher_is_better"][task]["judge"] is True

    card = after["metric_card"]["judge"]
    assert card["model"] == served_vlm.model and card["template"]["sha256"] == template.sha256
    assert card["decoding"] == {"temperature": 0.0, "max_tokens": 256, "top_p": None, "seed": 0, "extra": {}}
    # The judge changes nothing else: CLIP, KD, FD and the rest of the card are as before.
    for key, values in before["results"].items():
        assert {k: after["results"][key].get(k) for k in UNTOUCHED if k in values} == \
               {k: values[k] for k in UNTOUCHED if k in values}
    assert {k: v for k, v in after["metric_card"].items() if k != "judge"} == before["metric_card"]
    assert after["samples_sha256"] == samples_digest(list(samples.values()))
    lines = [json.loads(x) for x in (run / "judge.jsonl").read_text().splitlines()]
    failed = [x for x in lines if x["failure"]]
    # the tiny random model is cut at max_tokens: a recorded failure that keeps the raw reply
    assert len(failed) == 3 and all(x["failure"].startswith("request failed (incomplete)") and x["reply"]
                                    for x in failed)


def test_judge_needs_a_finished_run_and_both_judge_options(tmp_path):
    cli = evaluate_cmd(tmp_path)[:3]
    done = run_cli([*cli, "judge", str(tmp_path / "nothing"), "--judge", "http://127.0.0.1:9/v1",
                    "--judge-model", "m"])
    assert done.returncode == 2 and "results.json not found" in done.stderr
    assert "mme3dr evaluate --out" in done.stderr
    half = run_cli(evaluate_cmd(tmp_path / "run", *ARGS, "--judge", "http://127.0.0.1:9/v1"))
    assert half.returncode != 0 and "--judge and --judge-model go together" in half.stderr
    assert not (tmp_path / "run").exists()
