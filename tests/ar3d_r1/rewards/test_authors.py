"""Must-show 1 (rewards): the authors' released reward aggregation, re-derived in numpy in the test from
their formula (3DGen-R1 at 290cb73, reward_hps.py / reward_unified_3d.py / grpo_3d_trainer.py), against
our callables on hand-written per-view scores: replies read through the real client (placed in the
response cache under the keys it computes), one request that really fails (nothing listens on its
port), a sample without views, and a reward function that raises."""

from __future__ import annotations

import numpy as np
import pytest

from ar3d_r1.rewards.authors import MaxHPS, UnifiedReward2Sum, clamped_scores, sum_reward_columns
from ar3d_r1.rewards.endpoints import Endpoint
from mme3dr.judge import CachedReply, Decoding, JudgeConfig, ResponseCache, request_key

PROMPTS = ["A wooden table with four legs.", "A white chess pawn.", "A red mug.", "A low-poly frog."]


def views(seed: int, n: int = 6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = rng.integers(0, 256, (n, 32, 32, 4), dtype=np.uint8)
    out[..., 3] = 255
    return out


#: Hand-written replies per sample and view (sample 2 has no views). None: not cached, so the request
#: goes to a port where nothing listens and fails.
REPLIES = {
    0: ["Alignment Score (1-5): 3\nCoherence Score (1-5): 4\nStyle Score (1-5): 2",
        "Alignment Score (1-5): 9\nCoherence Score (1-5): 2\nStyle Score (1-5): 2",       # 9 -> 5
        "Alignment Score (1-5): 4.5\nCoherence Score (1-5): 0.5\nStyle Score (1-5): 3",   # 0.5 -> 1
        "Alignment Score (1-5): 2\nCoherence Score (1-5): 2",                             # no style -> 1
        "I cannot rate this.",                                                              # all missing
        "Alignment Score (1-5): 1\nCoherence Score (1-5): 1\nStyle Score (1-5): 1"],
    1: [None] + ["Alignment Score (1-5): 2\nCoherence Score (1-5): 2\nStyle Score (1-5): 2"] * 5,
    3: ["Alignment Score (1-5): 1\nCoherence Score (1-5): 1\nStyle Score (1-5): 1"] * 6,
}
#: Hand-written HPS cosines per view (sample 3's are all negative: their max starts from 0).
HPS_PER_VIEW = {0: [0.21, 0.25, 0.19, 0.3, 0.1, 0.22], 1: [0.05, 0.11, 0.02, 0.07, 0.09, 0.08],
                3: [-0.2, -0.1, -0.3, -0.05, -0.4, -0.15]}


def authors_unified(reply: str | None) -> float:
    """Their ``_extract_scores`` + weighted sum, independently: ``re.search`` each label, a missing one 0,
    clamp to [1, 5], sum with weights 1, 1, 1; a failed request is the empty reply."""
    import re

    total = 0.0
    for label in ("Alignment", "Coherence", "Style"):
        m = re.search(rf"{label} Score \(1-5\):\s*([0-9.]+)", reply or "")
        total += max(1.0, min(5.0, float(m.group(1)) if m else 0.0))
    return total


class StubHPS:
    """Per-view cosines from :data:`HPS_PER_VIEW`, keyed by the prompt (what ``HPSReward.scores`` returns)."""

    def scores(self, prompts, views):
        return np.array([HPS_PER_VIEW[PROMPTS.index(p)] for p in prompts])


class Raises:
    def __call__(self, prompts, views):
        raise RuntimeError("reward model crashed")


@pytest.fixture
def unified(tmp_path):
    from judge_server import free_port

    judge = JudgeConfig(f"http://127.0.0.1:{free_port()}", "m", profile="vllm", concurrency=2, retries=0,
                        backoff_s=0.01, timeout_s=5)
    reward = UnifiedReward2Sum(Endpoint(judge, Decoding(temperature=0.1, max_tokens=512, seed=None), "png"),
                               ResponseCache(tmp_path))
    rows = [i for i in REPLIES]
    for i, reqs in zip(rows, reward.requests([PROMPTS[i] for i in rows], [views(i) for i in rows]),
                       strict=True):
        for req, text in zip(reqs, REPLIES[i], strict=True):
            if text is not None:
                reward.cache.put(request_key(reward.endpoint.judge, req), CachedReply(text, "stop"))
    return reward


def expected(mode: str, raising: bool) -> np.ndarray:
    """The authors' total per sample, from their formula (numpy, in the test)."""
    out = []
    for i in range(len(PROMPTS)):
        if i not in REPLIES:  # no views: each reward function scores 0 (half-column) / NaN (ours)
            hps = unified = 0.0 if mode == "half-column" else np.nan
        else:
            hps = max([0.0, *HPS_PER_VIEW[i]])
            unified = max(authors_unified(r) for r in REPLIES[i])
        boom = (0.5 if mode == "half-column" else np.nan) if raising else 0.0
        out.append(hps + unified + boom)
    return np.array(out)


@pytest.mark.parametrize("mode", ["half-column", "zero"])
def test_summed_rewards_equal_the_authors_formula(unified, mode):
    functions = {"hps": MaxHPS(StubHPS()), "unified": unified, "boom": Raises()}
    sample_views = [views(i) if i in REPLIES else None for i in range(len(PROMPTS))]
    out = sum_reward_columns(functions, PROMPTS, sample_views, mode)
    np.testing.assert_allclose(out.total, expected(mode, raising=True), rtol=0, atol=1e-12)
    assert set(out.raised) == {"boom"} and "RuntimeError: reward model crashed" in out.raised["boom"]
    if mode == "half-column":
        np.testing.assert_array_equal(out.columns["boom"], 0.5)
        assert out.failures[2].startswith("no views (scored 0)")
    else:
        assert np.isnan(out.columns["boom"]).all() and out.failures[2].startswith("no views;")
    counts = out.meta["unified2_sum"]["counts"]
    assert counts == {"requests": 18, "cached": 17, "unparsed": 4, "failed": 1}
    # without the raising function: hand-checked numbers too (sample 0: max(3+4+2, 5+2+2, 4.5+1+3, ...))
    plain = sum_reward_columns({k: v for k, v in functions.items() if k != "boom"}, PROMPTS, sample_views,
                               "half-column")
    np.testing.assert_allclose(plain.total, [0.3 + 9.0, 0.11 + 6.0, 0.0, 0.0 + 3.0], atol=1e-12)


def test_clamped_scores_read_the_reply_leniently():
    from mme3dr.judge import load_template

    t = load_template("unifiedreward2-pointwise")
    assert clamped_scores(t, "Alignment Score (1-5): 7\nCoherence Score (1-5): -2") == {
        "alignment": 5.0, "coherence": 1.0, "style": 1.0}
    assert clamped_scores(t, "") == dict.fromkeys(("alignment", "coherence", "style"), 1.0)
    assert clamped_scores(t, None) == dict.fromkeys(("alignment", "coherence", "style"), 1.0)


def test_task_scores_the_final_mesh_counts_raises_and_logs(tmp_path):
    """HPSUnifiedTask over a rollout: the video6 renders of decoded grids, an empty outcome, HPS raising
    (its column 0.5, counted), UnifiedReward unreachable (every view 1 + 1 + 1)."""
    from judge_server import free_port

    from ar3d_r1.rewards.authors import HPSUnifiedTask
    from ar3d_r1.rewards.endpoints import endpoints_from_dict
    from ar3d_r1.rollout.hi_grpo import Rollout, StepOutcome

    body = {"base_url": f"http://127.0.0.1:{free_port()}", "model": "m", "profile": "vllm", "retries": 0,
            "timeout_s": 5, "decoding": {"temperature": 0.1, "max_tokens": 512, "seed": None}}
    endpoints = endpoints_from_dict({"version": 1, "cache_dir": None, "endpoints": {"unifiedreward2": body}})

    class HPSRaises:
        def scores(self, prompts, views):
            raise OSError("CUDA out of memory")

    task = HPSUnifiedTask(endpoints, PROMPTS[:2], 32, rig="video6", hps=HPSRaises(), check=False)
    grid = np.zeros((8, 8, 8), bool)
    grid[2:6, 2:6, 2:6] = True
    outs = [StepOutcome([1], [2], "r", grid=grid), StepOutcome([1], [2], "r", failure="too_short")]
    scores = task.score(Rollout(PROMPTS[:2], [StepOutcome([1], [2], "r")] * 2, outs))
    np.testing.assert_allclose(scores.r_low, [0.5 + 3.0, 0.5 + 0.0])  # the final mesh's reward
    np.testing.assert_array_equal(scores.r_high, [0.0, 0.0])
    assert scores.stats["rewards/raised/hps"] == 1.0 and scores.stats["rewards/raised/unified"] == 0.0
    assert scores.stats["samples/no_views"] == 1.0 and scores.stats["requests/unified/failed"] == 6.0
    assert scores.failures2[1] == "no shape (too_short)" and "hps raised" in scores.failures2[0]
    assert task.render.rig.name == "video6"
