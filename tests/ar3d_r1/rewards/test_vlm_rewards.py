"""The served reward callables through the real client: against the real tiny server (its replies are
garbage, so every sample is a recorded failure), and with hand-written replies placed in the response
cache under the exact keys the client computes (so the full path parses real replies and the server
sees nothing)."""

from __future__ import annotations

import numpy as np
import pytest

from ar3d_r1.rewards import (
    CategoryMatch,
    Consistency,
    Endpoint,
    PartCompleteness,
    UnifiedReward2,
    UnifiedThinkGeometry,
    merge,
    r_high,
    r_low,
)
from mme3dr.judge import CachedReply, Decoding, JudgeConfig, ResponseCache, request_key

PROMPTS = ["A wooden table with four legs and a rectangular top.", "A white chess pawn."]


def views(seed: int, n: int = 6) -> np.ndarray:
    """``(n, 48, 48, 4) uint8`` distinct RGBA views."""
    rng = np.random.default_rng(seed)
    out = rng.integers(0, 256, (n, 48, 48, 4), dtype=np.uint8)
    out[..., 3] = 255
    return out


VIEWS = [views(0), views(1)]


def endpoint(url: str, model: str, image_format: str = "png") -> Endpoint:
    judge = JudgeConfig(url, model, profile="transformers", concurrency=4, retries=1, backoff_s=0.01)
    return Endpoint(judge, Decoding(max_tokens=6), image_format)


def prefill(reward, replies: list[list[str]], cache: ResponseCache) -> None:
    """Store ``replies[i][k]`` for sample i's k-th request under the key the client will compute."""
    for reqs, texts in zip(reward.requests(PROMPTS, VIEWS), replies, strict=True):
        for req, text in zip(reqs, texts, strict=True):
            cache.put(request_key(reward.endpoint.judge, req), CachedReply(text, "stop"))


def test_garbage_from_the_real_server_is_a_failure_per_sample_never_a_score(served_vlm, proxy, tmp_path):
    reward = UnifiedReward2(endpoint(proxy.url, served_vlm.model, "jpeg"), ResponseCache(tmp_path))
    batch = reward(PROMPTS, VIEWS)
    assert proxy.count() == 2 * 6  # one request per view
    assert all(np.isnan(v).all() for v in batch.values.values())
    assert all(f.startswith("unified2: view 0: request failed (incomplete") for f in batch.failures)
    assert batch.meta["unified2"]["template"]["name"] == "unifiedreward2-pointwise"
    joint = CategoryMatch(endpoint(proxy.url, served_vlm.model), ResponseCache(tmp_path))
    assert joint(PROMPTS, VIEWS).failures[0].startswith("category: request failed (incomplete")
    assert proxy.count() == 2 * 6 + 2  # one request per sample with all six views


def test_unreachable_server_failure_names_the_request_problem(tmp_path):
    from judge_server import free_port

    reward = CategoryMatch(endpoint(f"http://127.0.0.1:{free_port()}", "m"))
    batch = reward(PROMPTS[:1], VIEWS[:1])
    assert "request failed (connection, 2 attempt(s))" in batch.failures[0]
    assert np.isnan(batch.values["category_match"][0])


def test_parsed_replies_give_the_paper_dimensions(served_vlm, proxy, tmp_path):
    cache = ResponseCache(tmp_path)
    ep = endpoint(proxy.url, served_vlm.model)
    think, unified = UnifiedThinkGeometry(ep, cache), UnifiedReward2(ep, cache)
    category, consistency = CategoryMatch(ep, cache), Consistency(ep, cache)
    parts = PartCompleteness(ep, cache)

    geo = [f"<think>v{k}</think><answer>Geometric Alignment Score (1-5): {s}</answer>"
           for k, s in enumerate([2, 3.5, 4, 1, 2, 3])]
    prefill(think, [geo, geo[::-1]], cache)
    u = [f"Alignment Score (1-5): {a}\nCoherence Score (1-5): {c}\nStyle Score (1-5): {s}"
         for a, c, s in [(3, 4, 2), (5, 2, 2), (4, 4, 3.5), (1, 1, 1), (2, 3, 3), (4, 3.5, 2)]]
    bad = u[:5] + ["Alignment Score (1-5): 9\nCoherence Score (1-5): 3\nStyle Score (1-5): 3"]
    prefill(unified, [u, bad], cache)
    prefill(category, [["Category Match: yes"], ["Category Match: no"]], cache)
    prefill(consistency, [["Colour Consistency: 0.9\nMaterial Consistency: 0.6\nTexture Consistency: 0.3"],
                          ["Colour Consistency: 1\nMaterial Consistency: 1\nTexture Consistency: 1"]], cache)
    # Table: parts "4 legs" and "rectangular top"; pawn: no parts named, so the object itself.
    prefill(parts, [["1. exists: yes, completeness: 0.5\n2. exists: no, completeness: 0"],
                    ["1. exists: yes, completeness: 1"]], cache)

    step1 = merge(think(PROMPTS, VIEWS), category(PROMPTS, VIEWS))
    step2 = merge(unified(PROMPTS, VIEWS), consistency(PROMPTS, VIEWS), parts(PROMPTS, VIEWS))
    assert proxy.count() == 0, "every question was in the cache"

    np.testing.assert_array_equal(step1.values["geometric_alignment"], [4, 4])  # max over views
    np.testing.assert_array_equal(step1.values["category_match"], [1, 0])
    # Per-dimension max over views for sample 0; sample 1 has one out-of-range view → failure.
    assert [step2.values[d][0] for d in ("alignment", "coherence", "style")] == [5, 4, 3.5]
    assert np.isnan(step2.values["alignment"][1])
    assert "unified2: view 5: unparsed reply (alignment=9 is out of range [1, 5])" in step2.failures[1]
    appearance = [step2.values[d][0] for d in ("colour", "material", "texture")]
    np.testing.assert_allclose(appearance, [0.9, 0.6, 0.3])
    np.testing.assert_allclose(step2.values["part_existence"], [0.5, 1.0])
    np.testing.assert_allclose(step2.values["part_completeness"], [0.25, 1.0])
    assert parts.variables(PROMPTS[0])["parts"] == "1. 4 legs\n2. rectangular top"

    hps = {"hps": np.array([0.3, 0.2])}
    high = r_high({**step1.values, **hps})
    np.testing.assert_allclose(high, [0.3 + 4 + 1, 0.2 + 4 + 0])
    low = r_low({**step2.values, **hps})
    # 0.3 + (5 + 4 + 3.5)/3 + (0.9 + 0.6 + 0.3)/3 + (0.5 + 0.25)/2
    assert low[0] == pytest.approx(0.3 + 12.5 / 3 + 0.6 + 0.375, abs=1e-12) and np.isnan(low[1])


def test_prompt_and_view_counts_must_match(served_vlm):
    with pytest.raises(ValueError, match="1 prompts but 2 view sets"):
        CategoryMatch(endpoint(served_vlm.url, served_vlm.model))(PROMPTS[:1], VIEWS)
