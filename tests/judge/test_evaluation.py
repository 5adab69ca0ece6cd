"""The evaluation judge's pieces: per-case requests, scores from answers, failures, per-category
summary with the protocol's bootstrap CI, the metric card."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mme3dr.judge import CachedReply, Decoding, JudgeConfig, ResponseCache, load_template, request_key
from mme3dr.judge.evaluation import (
    JUDGE_DECODING,
    JUDGE_VIEWS,
    CaseJudgement,
    JudgeCase,
    case_request,
    judge_card,
    judge_cases,
    summarise,
    view_paths,
)
from mme3dr.metrics.bootstrap import bootstrap_ci


def render_dir(tmp_path, n=24, seed=0):
    """A render directory laid out like the render cache: 000.png … (RGBA)."""
    rng = np.random.default_rng(seed)
    d = tmp_path / f"render{seed}"
    d.mkdir()
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (32, 32, 4), dtype=np.uint8)).save(d / f"{i:03d}.png")
    return d


def test_view_selection_and_missing_views(tmp_path):
    d = render_dir(tmp_path)
    assert [p.name for p in view_paths(d)] == [f"{i:03d}.png" for i in range(0, 24, 3)]
    (d / "021.png").unlink()
    with pytest.raises(FileNotFoundError, match="021.png"):
        view_paths(d)


def test_case_request_asks_the_derived_checklist_over_eight_views(tmp_path):
    prompt = "A blue toy car with four black wheels."
    case = JudgeCase("c1", 0, "mechanical", prompt, view_paths(render_dir(tmp_path)))
    request, items = case_request(case, load_template("eval-checklist"), JUDGE_DECODING)
    assert len(request.images) == len(JUDGE_VIEWS) == 8
    assert request.variables["n_items"] == len(items) == 5
    assert request.variables["checklist"].startswith("1. Is the object recognisably a blue toy car?")


def test_scores_from_cached_replies_and_failures_from_the_real_server(served_vlm, proxy, tmp_path):
    config = JudgeConfig(proxy.url, served_vlm.model, profile="transformers", retries=0)
    template, cache = load_template("eval-checklist"), ResponseCache(tmp_path / "cache")
    decoding = Decoding(max_tokens=8, seed=0)
    cases = [JudgeCase(f"c{k}", 0, cat, prompt, view_paths(render_dir(tmp_path, seed=k)))
             for k, (cat, prompt) in enumerate([("spatial", "A wooden table with four legs."),
                                                ("spatial", "A white chess pawn."),
                                                ("biological", "A yellow duck with an orange beak.")])]
    # c0: 3 questions, answers yes/no/yes → 66.67; c1: 2 questions, yes/yes → 100; c2 goes to the server.
    for case, reply in zip(cases[:2], ["1. yes\n2. no\n3. yes", "1. yes\n2. Yes."], strict=True):
        request, items = case_request(case, template, decoding)
        cache.put(request_key(config, request), CachedReply(reply, "stop"))
    out = judge_cases(cases, config, cache, template, decoding)
    assert proxy.count() == 1
    assert out[0].score == pytest.approx(200 / 3) and out[0].answers == [1.0, 0.0, 1.0] and out[0].cached
    assert out[1].score == 100.0
    assert out[2].score is None and out[2].failure.startswith("request failed (incomplete)")
    assert out[2].reply is not None  # the cut reply is kept for the record

    summary = summarise(out)
    low, high = bootstrap_ci(np.array([200 / 3, 100.0]))
    assert summary["spatial"] == pytest.approx({"judge": (200 / 3 + 100) / 2, "judge_ci95_low": low,
                                                "judge_ci95_high": high, "judge_n": 2, "judge_n_failed": 0})
    assert summary["biological"] == {"judge": None, "judge_ci95_low": None, "judge_ci95_high": None,
                                     "judge_n": 0, "judge_n_failed": 1}
    assert summary[""]["judge_n"] == 2 and summary[""]["judge_n_failed"] == 1


def test_summary_of_one_score_and_the_card():
    one = [CaseJudgement("a", 0, "knowledge", ["q"], score=50.0, answers=[0.5])]
    assert summarise(one)["knowledge"]["judge_ci95_low"] == 50.0
    template = load_template("eval-checklist")
    card = judge_card(JudgeConfig("http://x/v1", "judge-model"), template, JUDGE_DECODING)
    assert card["model"] == "judge-model" and card["views"] == list(JUDGE_VIEWS)
    assert card["template"]["sha256"] == load_template("eval-checklist").sha256
    assert card["checklist_rules"] == "checklist-rules-v1"
