"""The paper's task (``task vlm``, ar3d_r1/rewards/vlm_task.py): captions files; R_high / R_low through the
real reward callables and client, with hand-written replies placed in the response cache under the exact
keys the client computes (so real replies parse and the server sees nothing), equal to a hand computation;
failures as NaN + reason; down servers named; and one trainer step against the real served tiny VLM."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

pytest.importorskip("torch")
pytest.importorskip("open_clip")

from ar3d_r1.rewards.endpoints import EndpointsError, endpoints_from_dict  # noqa: E402
from ar3d_r1.rewards.stand_ins import build_tiny_hps, free_port, stand_in_endpoints  # noqa: E402
from ar3d_r1.rewards.tasks import resolve_failures  # noqa: E402
from ar3d_r1.rewards.vlm_task import RewardServerError, VLMTask, load_captions  # noqa: E402
from ar3d_r1.rollout.hi_grpo import Rollout, StepOutcome  # noqa: E402
from mme3dr.judge import CachedReply, ResponseCache, request_key  # noqa: E402

CAPTIONS = ["A wooden table with four legs and a rectangular top.", "A white chess pawn.",
            "A stylised low-poly frog.", "An office chair with five legs."]


@pytest.fixture(scope="module")
def hps_dir(tmp_path_factory):
    return build_tiny_hps(tmp_path_factory.mktemp("tiny-hps"), seed=3)


def endpoints(url: str, model: str, hps_dir, cache_dir):
    return endpoints_from_dict(stand_in_endpoints(url, model, hps_dir, cache_dir), "<test>")


def grid(lo: tuple[int, int, int], hi: tuple[int, int, int], bump_lo: tuple[int, int, int],
         bump_hi: tuple[int, int, int], r: int = 16) -> np.ndarray:
    """A box with a smaller box stuck to it: no symmetry, so its 6 reward views all differ (identical
    views would be one request key, hence one reply)."""
    g = np.zeros((r, r, r), dtype=bool)
    for a, b in ((lo, hi), (bump_lo, bump_hi)):
        g[a[0]:b[0], a[1]:b[1], a[2]:b[2]] = True
    return g


def outcome(g: np.ndarray | None, failure: str | None = None) -> StepOutcome:
    return StepOutcome(prompt_ids=[1], completion_ids=[2], plan="", failure=failure, grid=g)


# ---------------------------------------------------------------- captions files
def test_captions_from_txt_jsonl_and_csv(tmp_path):
    (tmp_path / "a.txt").write_text("# training captions\nA red chair.\n\n  A frog.  \n", "utf-8")
    jsonl = '"A red chair."\n{"caption": "A frog.", "id": 3}\n\n{"text": "A cup."}\n'
    (tmp_path / "b.jsonl").write_text(jsonl, "utf-8")
    (tmp_path / "c.csv").write_text('id,caption\n1,A red chair.\n2,"A frog, low-poly."\n', "utf-8")
    assert load_captions(tmp_path / "a.txt") == ["A red chair.", "A frog."]
    assert load_captions(tmp_path / "b.jsonl") == ["A red chair.", "A frog.", "A cup."]
    assert load_captions(tmp_path / "c.csv") == ["A red chair.", "A frog, low-poly."]


def test_csv_captions_keep_quoted_newlines_and_match_the_column_in_any_case(tmp_path):
    (tmp_path / "c.csv").write_bytes(b'id,Caption\r\n1,"A chair,\nwith arms."\r\n2,A frog.\r\n3,\r\n')
    with pytest.raises(ValueError, match=r"c\.csv:5: empty 'Caption'"):  # the line (row 4 spans two)
        load_captions(tmp_path / "c.csv")
    (tmp_path / "d.csv").write_bytes(b'TEXT,id\n"A chair,\nwith arms.",1\nA frog.,2\n')
    assert load_captions(tmp_path / "d.csv") == ["A chair,\nwith arms.", "A frog."]


def test_a_directory_or_non_utf8_captions_file_is_named(tmp_path):
    with pytest.raises(IsADirectoryError, match=f"prompts_file {tmp_path} is a directory"):
        load_captions(tmp_path)
    (tmp_path / "x.txt").write_bytes(b"A chair.\nA caf\xe9 table.\n")
    with pytest.raises(ValueError, match=r"x\.txt:2: not UTF-8 \(byte 0xe9 at offset 14\)"):
        load_captions(tmp_path / "x.txt")


@pytest.mark.parametrize(("name", "text", "match"), [
    ("x.yaml", "- a", r"must be \.txt"),
    ("x.jsonl", '{"caption": "a"}\n{"name": "b"}\n', r"x\.jsonl:2: no caption"),
    ("x.jsonl", "{oops\n", r"x\.jsonl:1: not JSON"),
    ("x.csv", "id,name\n1,a\n", r"no caption column .* the header has \['id', 'name'\]"),
    ("x.csv", "caption\na\n \n", r"x\.csv:3: empty 'caption'"),
    ("x.txt", "# only a comment\n\n", "no captions"),
])
def test_bad_captions_files_are_named(tmp_path, name, text, match):
    (tmp_path / name).write_text(text, "utf-8")
    with pytest.raises(ValueError, match=match):
        load_captions(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_captions(tmp_path / "missing.txt")


# ---------------------------------------------------------------- endpoints
def test_a_down_server_is_named_before_anything_runs(hps_dir, tmp_path):
    eps = endpoints(f"http://127.0.0.1:{free_port()}", "m", hps_dir, tmp_path / "cache")
    with pytest.raises(RewardServerError, match=r"qwen_vl: http://127\.0\.0\.1:\d+/v1 unreachable.*"
                                                 r"unifiedreward2: .*unifiedreward_think: "):
        VLMTask(eps, CAPTIONS, 32)


def test_a_missing_endpoint_is_named(hps_dir, tmp_path):
    data = stand_in_endpoints("http://127.0.0.1:1", "m", hps_dir, tmp_path)
    del data["endpoints"]["unifiedreward2"]
    with pytest.raises(EndpointsError, match=r"no endpoints \['unifiedreward2'\], which task 'vlm' needs"):
        VLMTask(endpoints_from_dict(data), CAPTIONS, 32)


# ---------------------------------------------------------------- scoring
def put(reward, prompt: str, views: np.ndarray, replies: list[str], cache: ResponseCache) -> None:
    """Store ``replies`` (one per request of this sample) under the keys the client will compute."""
    (requests,) = reward.requests([prompt], [views])
    for req, text in zip(requests, replies, strict=True):
        cache.put(request_key(reward.endpoint.judge, req), CachedReply(text, "stop"))


def think(*scores) -> list[str]:
    return [f"<think>view {k}</think><answer>Geometric Alignment Score (1-5): {s}</answer>"
            for k, s in enumerate(scores)]


def unified(*triples) -> list[str]:
    return [f"Alignment Score (1-5): {a}\nCoherence Score (1-5): {c}\nStyle Score (1-5): {s}"
            for a, c, s in triples]


def consistency(c, m, t) -> list[str]:
    return [f"Colour Consistency: {c}\nMaterial Consistency: {m}\nTexture Consistency: {t}"]


def test_score_gives_the_paper_ensembles_of_parsed_replies_and_nan_with_reasons(served_vlm, proxy, hps_dir,
                                                                               tmp_path):
    eps = endpoints(proxy.url, served_vlm.model, hps_dir, tmp_path / "cache")
    task = VLMTask(eps, CAPTIONS, render_size=32)
    assert [p.text for p in task.prompts] == CAPTIONS
    m1 = [grid((4, 2, 4), (12, 14, 12), (12, 2, 4), (15, 5, 6)),
          grid((2, 6, 2), (14, 10, 14), (2, 10, 2), (5, 14, 4)),
          grid((6, 1, 6), (10, 15, 10), (10, 12, 6), (14, 15, 7)), None]
    m2 = [grid((3, 3, 3), (13, 13, 13), (1, 3, 5), (3, 6, 12)),
          grid((5, 2, 5), (11, 14, 11), (5, 14, 8), (11, 16, 11)),
          grid((1, 7, 4), (15, 9, 12), (1, 9, 4), (4, 13, 6)),
          grid((4, 4, 4), (8, 12, 8), (8, 4, 4), (12, 6, 8))]
    rollout = Rollout(CAPTIONS, [outcome(g, None if g is not None else "no_end") for g in m1],
                      [outcome(g) for g in m2])
    v1 = {i: task.render(g) for i, g in enumerate(m1) if g is not None}
    v2 = {i: task.render(g) for i, g in enumerate(m2)}
    assert all(len({v.tobytes() for v in views}) == 6 for views in (*v1.values(), *v2.values()))
    cache = ResponseCache(tmp_path / "cache")
    s1, s2 = task.step1, task.step2
    # step 1: rows 0-2 have M1 (row 3's segment was malformed: it asks nothing)
    put(s1["unified_think"], CAPTIONS[0], v1[0], think(2, 3.5, 4, 1, 2, 3), cache)
    put(s1["unified_think"], CAPTIONS[1], v1[1], think(1, 1, 1, 1, 5, 1), cache)
    put(s1["unified_think"], CAPTIONS[2], v1[2], think(3, 3, 3, 3, 3, 3), cache)
    for i, answer in enumerate(["yes", "no", "perhaps"]):  # row 2's reply does not parse
        put(s1["category"], CAPTIONS[i], v1[i], [f"Category Match: {answer}"], cache)
    # step 2: every row has M2; row 2's view 3 is out of range
    rows_u = [[(3, 4, 2), (5, 2, 2), (4, 4, 3.5), (1, 1, 1), (2, 3, 3), (4, 3.5, 2)], [(2, 2, 2)] * 6,
              [(3, 3, 3)] * 3 + [(9, 3, 3)] + [(3, 3, 3)] * 2, [(1, 2, 3)] * 6]
    cons = [(0.9, 0.6, 0.3), (1, 1, 1), (0.5, 0.5, 0.5), (0, 0.5, 1)]
    parts = [["1. exists: yes, completeness: 0.5\n2. exists: no, completeness: 0"],
             ["1. exists: yes, completeness: 1"], ["1. exists: yes, completeness: 1"],
             ["1. exists: yes, completeness: 0.8"]]
    for i in range(4):
        put(s2["unified2"], CAPTIONS[i], v2[i], unified(*rows_u[i]), cache)
        put(s2["consistency"], CAPTIONS[i], v2[i], consistency(*cons[i]), cache)
        put(s2["parts"], CAPTIONS[i], v2[i], parts[i], cache)

    scores = task.score(rollout)
    assert proxy.count() == 0, "every question was answered from the cache"

    hps1 = {i: float(task.hps([CAPTIONS[i]], [v]).values["hps"][0]) for i, v in v1.items()}
    hps2 = {i: float(task.hps([CAPTIONS[i]], [v]).values["hps"][0]) for i, v in v2.items()}
    # R_high = HPS + max-over-views geometric alignment + category match
    np.testing.assert_allclose(scores.r_high[:2], [hps1[0] + 4 + 1, hps1[1] + 5 + 0], rtol=0, atol=1e-6)
    # R_low = HPS + (alignment + coherence + style)/3 + (colour + material + texture)/3 + (exist + complete)/2
    want_low = [hps2[0] + (5 + 4 + 3.5) / 3 + (0.9 + 0.6 + 0.3) / 3 + (0.5 + 0.25) / 2,
                hps2[1] + 6 / 3 + 3 / 3 + 2 / 2, np.nan, hps2[3] + 6 / 3 + 1.5 / 3 + 1.8 / 2]
    np.testing.assert_allclose(scores.r_low, want_low, rtol=0, atol=1e-6)

    assert np.isnan(scores.r_high[2]) and np.isnan(scores.r_high[3])
    assert scores.failures1[:2] == [None, None] and scores.failures2[0] is None
    assert scores.failures1[2].startswith("category: unparsed reply")
    assert scores.failures1[3] == "no shape (no_end)"
    assert "unified2: view 3: unparsed reply (alignment=9 is out of range [1, 5])" in scores.failures2[2]
    np.testing.assert_array_equal(resolve_failures(scores.r_high, 2, "zero")[0][2:], [0.0, 0.0])

    assert scores.dimensions["step1/geometric_alignment"] == pytest.approx((4 + 5 + 3) / 3)
    assert scores.dimensions["step1/hps"] == pytest.approx(np.mean(list(hps1.values())), abs=1e-6)
    assert scores.stats == {
        "requests/step1/sent": 0, "requests/step1/cached": 21, "requests/step1/unparsed": 1,
        "requests/step1/failed": 0, "samples/step1/failed": 2,
        "requests/step2/sent": 0, "requests/step2/cached": 32, "requests/step2/unparsed": 1,
        "requests/step2/failed": 0, "samples/step2/failed": 1}
    assert task.load_state_dict(task.state_dict()) is None


# ---------------------------------------------------------------- the trainer
def test_trainer_steps_with_task_vlm_against_the_served_tiny_vlm(served_vlm, proxy, hps_dir, tmp_path):
    import torch

    from ar3d_r1.cli.train import build_trainer
    from ar3d_r1.config import preset
    from ar3d_r1.policy.tiny import build_tiny_policy
    from ar3d_r1.policy.vqvae import VQVAE3D, VQVAEConfig, save_vqvae

    torch.manual_seed(0)
    save_vqvae(VQVAE3D(VQVAEConfig.tiny()), tmp_path / "vqvae")
    build_tiny_policy(tmp_path / "policy", codebook_size=256, seed=0)
    servers = tmp_path / "servers.yaml"
    servers.write_text(yaml.safe_dump(stand_in_endpoints(proxy.url, served_vlm.model, hps_dir,
                                                         tmp_path / "replies")), "utf-8")
    (tmp_path / "captions.txt").write_text("\n".join(CAPTIONS[:2]) + "\n", "utf-8")
    out = tmp_path / "run"
    cfg = preset("paper", policy=str(tmp_path / "policy"), vqvae=str(tmp_path / "vqvae"), output_dir=str(out),
                 reward_servers=str(servers), prompts_file=str(tmp_path / "captions.txt"), num_generations=2,
                 per_device_train_batch_size=1, gradient_accumulation_steps=2, max_steps=1, max_plan_tokens=4,
                 render_size=32, constrain=True, top_k=64, save_steps=0, threads=1,
                 dynamic_sampling="off")  # all-zero groups would leave no tokens to train on
    trainer = build_trainer(cfg)
    assert proxy.count("/v1/models") == 3  # each endpoint checked once, before the policy loaded
    trainer.train()
    (rec,) = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    asked = {s: rec[f"requests/{s}/sent"] + rec[f"requests/{s}/cached"] for s in ("step1", "step2")}
    shaped = {s: 2 - rec[f"{s}/malformed"] * 2 for s in ("step1", "step2")}
    # 6 per-view UnifiedReward-Think + 1 category (step 1); 6 UnifiedReward-2.0 + consistency + parts (step 2)
    assert asked == {"step1": 7 * shaped["step1"], "step2": 8 * shaped["step2"]} and asked["step1"] > 0
    assert proxy.count() == rec["requests/step1/sent"] + rec["requests/step2/sent"] > 0
    # a random VLM's replies are cut at max_tokens, so none is parsed: every sample is a failure, scored 0
    # by malformed_reward "zero"
    assert rec["requests/step1/unparsed"] == asked["step1"] and rec["samples/step1/failed"] == 2
    assert rec["reward/r_high"] == 0.0 and rec["reward/r_low"] == 0.0
    assert rec["reward/step1/geometric_alignment"] is None and -1 <= rec["reward/step1/hps"] <= 1
    failures = json.loads((out / "reward_failures.jsonl").read_text().splitlines()[0])
    assert failures["step"] == 1 and len(failures["step1"]) == 2
    assert all("request failed (incomplete" in reason for reason in failures["step1"].values())
    assert rec["step1/tokens"] > 0 and (out / "final" / "model.safetensors").is_file()


def test_task_vlm_without_its_files_is_refused(tmp_path):
    import typer

    from ar3d_r1.cli.train import build_trainer
    from ar3d_r1.config import preset

    with pytest.raises(typer.BadParameter, match="task 'vlm' needs --reward_servers"):
        build_trainer(preset("paper", output_dir=str(tmp_path)))
    with pytest.raises(typer.BadParameter, match="task 'vlm' needs --prompts_file"):
        build_trainer(preset("paper", output_dir=str(tmp_path), reward_servers=str(tmp_path / "x.yaml")))
    with pytest.raises(typer.BadParameter, match="x.yaml"):
        build_trainer(preset("paper", output_dir=str(tmp_path), reward_servers=str(tmp_path / "x.yaml"),
                             prompts_file="p.txt"))


def test_captions_from_the_authors_json_list_format(tmp_path):
    """3DGen-R1's data/sampled_prompt.json: a JSON list of {"prompt", "task_type", "category"} objects (our
    own captions here, in that format); strings in the list work too; mistakes name the item."""
    import json

    items = [{"prompt": "A blue stool.", "task_type": "3d_generation", "category": "furniture"},
             {"prompt": " A paper boat. ", "task_type": "3d_generation", "category": "toys"}, "A kettle."]
    (tmp_path / "p.json").write_text(json.dumps(items), "utf-8")
    assert load_captions(tmp_path / "p.json") == ["A blue stool.", "A paper boat.", "A kettle."]
    (tmp_path / "bad.json").write_text(json.dumps([items[0], {"task_type": "3d_generation"}]), "utf-8")
    with pytest.raises(ValueError, match=r"bad\.json: item 1: no caption"):
        load_captions(tmp_path / "bad.json")
    (tmp_path / "obj.json").write_text(json.dumps({"prompt": "x"}), "utf-8")
    with pytest.raises(ValueError, match=r"obj\.json: a \.json prompts_file is a JSON list"):
        load_captions(tmp_path / "obj.json")
    (tmp_path / "broken.json").write_text('[{"prompt": "x"},\n', "utf-8")
    with pytest.raises(ValueError, match=r"broken\.json:2: not JSON"):
        load_captions(tmp_path / "broken.json")
    from ar3d_r1.rewards.vlm_task import MAX_CAPTION_CHARS

    (tmp_path / "long.json").write_text(json.dumps([items[0], {"prompt": "x" * (MAX_CAPTION_CHARS + 1)}]))
    with pytest.raises(ValueError, match=r"long\.json: item 1: a caption of 2,001 characters; the most is "):
        load_captions(tmp_path / "long.json")


def test_an_unclosed_csv_quote_is_named_not_merged_into_one_caption(tmp_path):
    rows = [f"{i},A chair number {i}." for i in range(1, 1002)]
    rows[2] = '3,"A chair number 3.'  # never closed: the 999 rows after it would be one caption
    (tmp_path / "a.csv").write_text("id,caption\n" + "\n".join(rows) + "\n", "utf-8")
    with pytest.raises(ValueError) as info:
        load_captions(tmp_path / "a.csv")
    assert str(info.value) == (f"{tmp_path / 'a.csv'}:4: a quote opened on this line is never closed (the "
                               "rest of the file would be one caption); close it")
    rows[500] = '501,A chair number 501."'  # a later quote closes it: 499 lines would be one caption
    (tmp_path / "b.csv").write_text("id,caption\n" + "\n".join(rows) + "\n", "utf-8")
    with pytest.raises(ValueError, match=r"b\.csv:4: a quoted field opened on this line runs to line 502 "
                                         r"\(499 lines\): an unclosed quote\?"):
        load_captions(tmp_path / "b.csv")


@pytest.mark.parametrize(("name", "line"), [
    ("a.txt", "{caption}"), ("b.jsonl", '{{"caption": "{caption}"}}'), ("c.csv", '"{caption}"')])
def test_a_caption_longer_than_the_cap_is_refused_with_its_line(tmp_path, name, line):
    from ar3d_r1.rewards.vlm_task import MAX_CAPTION_CHARS

    head = "caption\n" if name.endswith(".csv") else ""
    fine, long = "A chair." * 10, "x" * (MAX_CAPTION_CHARS + 1)
    (tmp_path / name).write_text(head + "\n".join(line.format(caption=c) for c in (fine, long)) + "\n")
    number = 3 if head else 2
    with pytest.raises(ValueError, match=fr"{name}:{number}: a caption of 2,001 characters; the most is "):
        load_captions(tmp_path / name)
