"""The authors' reasoning-then-mesh rollout (ar3d_r1/rollout/one_step.py) on a random tiny policy: the two
prompts it builds, the mesh turn opened by the prompt's <mesh-start>, the reasoning prompt file, and the
frozen parameters of the 3dgen-r1 preset."""

from __future__ import annotations

import pytest
import torch

from ar3d_r1.policy.mesh_tokens import MeshVocab
from ar3d_r1.rollout.one_step import (
    REASONING_PROMPT,
    ReasoningPromptError,
    load_reasoning_prompt,
    parse_mesh_turn,
    reasoning_messages,
)

VOCAB = MeshVocab(start_id=100, end_id=101, code_ids=(10, 11, 12))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from ar3d_r1.policy.loading import load_policy
    from ar3d_r1.policy.tiny import build_tiny_policy
    from ar3d_r1.policy.vqvae import VQVAE3D, VQVAEConfig, load_vqvae, save_vqvae

    root = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    save_vqvae(VQVAE3D(VQVAEConfig.tiny()), root / "vqvae")
    build_tiny_policy(root / "policy", codebook_size=256, seed=0)
    vqvae = load_vqvae(root / "vqvae")
    model, processor = load_policy(root / "policy")
    return model, processor.tokenizer, vqvae, MeshVocab.from_tokenizer(processor.tokenizer, 256)


def test_both_turns_are_built_as_the_authors_trainer_builds_them(tiny, tmp_path):
    from ar3d_r1.config import preset
    from ar3d_r1.rollout.one_step import reasoning_then_mesh_rollout

    model, tok, vqvae, vocab = tiny
    template = tmp_path / "mine.txt"
    template.write_text("Plan the 3D model of '{}' before you build it.\n")
    cfg = preset("3dgen-r1", max_plan_tokens=6, max_mesh_tokens=0, constrain=True, top_k=0,
                 reasoning_prompt_file=str(template), reasoning_system_prompt="System words.")
    prompts = ["a chair", "a chair", "a cup", "a cup"]
    ro = reasoning_then_mesh_rollout(model, tok, vqvae, vocab, prompts, cfg, seed=3)
    assert ro.prompts == prompts and len(ro.step1) == len(ro.step2) == 4
    for p, think, mesh in zip(prompts, ro.step1, ro.step2, strict=True):
        first = tok.decode(think.prompt_ids)
        assert "System words." in first and f"Plan the 3D model of '{p}' before you build it." in first
        assert 1 <= len(think.completion_ids) <= 6 and think.codes is None
        assert think.plan == tok.decode(think.completion_ids, skip_special_tokens=True)
        assert mesh.prompt_ids[-1] == vocab.start_id  # <mesh-start> appended after the generation prompt
        assert tok.decode(mesh.prompt_ids[:-1]).count(f"{p}. {think.plan}") == 1
        # theirs: the chat template's text, tokenised (processing_class(text=...)), then the start id
        text = tok.apply_chat_template([{"role": "user", "content": f"{p}. {think.plan}"}],
                                       add_generation_prompt=True, tokenize=False)
        assert mesh.prompt_ids[:-1] == tok(text)["input_ids"]
        # the grammar continues the segment the prompt opened: N codes, then <mesh-end>
        n = vqvae.config.num_tokens
        assert mesh.failure is None and len(mesh.completion_ids) == n + 1
        assert mesh.completion_ids[-1] == vocab.end_id and mesh.codes.shape == (n,) and mesh.grid is not None


def test_the_mesh_turn_parses_the_segment_its_prompt_opened():
    ok = parse_mesh_turn([5, 100], [10, 11, 101], "r", VOCAB, n_tokens=2)
    assert ok.failure is None and ok.codes.tolist() == [0, 1] and ok.plan == "r"
    assert parse_mesh_turn([5, 100], [10, 101], "r", VOCAB, n_tokens=2).failure == "too_short"
    padded = parse_mesh_turn([5, 100], [12, 101], "r", VOCAB, n_tokens=3, pad="repeat")
    assert padded.codes.tolist() == [2, 2, 2]  # the authors' parser: repeat the last code
    assert parse_mesh_turn([5, 100], [10, 7, 101], "r", VOCAB, n_tokens=2).failure == "stray_text"


def test_reasoning_prompt_files(tmp_path):
    ours = load_reasoning_prompt("")
    assert ours == REASONING_PROMPT.read_text("utf-8") and ours.count("{}") == 1
    msgs = reasoning_messages("a frog", ours, "")
    assert msgs == [{"role": "user", "content": ours.format("a frog")}]
    for text in ("no placeholder", "{} and {}", "{} with {name}", "{0} named"):
        (tmp_path / "t.txt").write_text(text)
        with pytest.raises(ReasoningPromptError, match="needs exactly one"):
            load_reasoning_prompt(tmp_path / "t.txt")
    (tmp_path / "b.txt").write_bytes(b"caf\xe9 {}")
    with pytest.raises(ReasoningPromptError, match="not UTF-8"):
        load_reasoning_prompt(tmp_path / "b.txt")
    with pytest.raises(ReasoningPromptError, match="no such file"):
        load_reasoning_prompt(tmp_path / "none.txt")


def test_frozen_modules_freeze_the_vision_tower_and_lm_head(tiny):
    import copy

    from ar3d_r1.config import preset
    from ar3d_r1.policy.loading import freeze_parameters

    model = copy.deepcopy(tiny[0])
    frozen = freeze_parameters(model, preset("3dgen-r1").frozen_modules)
    names = {n for n, _ in model.named_parameters()}
    assert frozen and all(("visual" in n) or ("lm_head" in n) for n in frozen)
    assert {n for n in names if "visual" in n or "lm_head" in n} == set(frozen)
    assert all(p.requires_grad == (n not in frozen) for n, p in model.named_parameters())
    with pytest.raises(ValueError, match=r"frozen_modules \['vison'\] match no parameter"):
        freeze_parameters(copy.deepcopy(tiny[0]), "vison")
    assert freeze_parameters(copy.deepcopy(tiny[0]), "") == []


def test_segment_shares_of_a_mesh_turn_opened_by_its_prompt():
    from ar3d_r1.rollout.hi_grpo import segment_shares

    assert segment_shares([10, 11, 101, 1], VOCAB, opened=True) == {"plan": 0, "mesh": 3, "tail": 1}
    assert segment_shares([10, 11, 101, 1], VOCAB) == {"plan": 4, "mesh": 0, "tail": 0}
