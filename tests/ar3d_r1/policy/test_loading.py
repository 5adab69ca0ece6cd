"""Policy loading and the tiny builders: the real Qwen2.5-VL class from a local dir; offline errors."""

from __future__ import annotations

import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from ar3d_r1.policy.generation import (  # noqa: E402
    SEMANTIC_INSTRUCTION,
    VISUAL_INSTRUCTION,
    SamplingConfig,
    build_messages,
    generate_turn,
)
from ar3d_r1.policy.loading import PolicyNotFoundError, load_policy  # noqa: E402
from ar3d_r1.policy.mesh_tokens import MeshVocab  # noqa: E402
from ar3d_r1.policy.tiny import build_tiny_policy  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_policy(tmp_path_factory.mktemp("policy"), codebook_size=64, seed=0)


def test_tiny_policy_builds_in_seconds_and_loads_as_the_real_class(tmp_path, tiny_dir):
    from transformers import Qwen2_5_VLForConditionalGeneration

    t0 = time.perf_counter()
    again = build_tiny_policy(tmp_path / "again", codebook_size=64, seed=0)
    assert time.perf_counter() - t0 < 30  # seconds, not minutes, even on a busy 2-core machine
    model, processor = load_policy(tiny_dir)
    assert isinstance(model, Qwen2_5_VLForConditionalGeneration) and not model.training
    assert model.config.text_config.num_hidden_layers == 2 and model.config.text_config.hidden_size == 16
    vocab = MeshVocab.from_tokenizer(processor.tokenizer, 64)
    assert model.get_input_embeddings().weight.shape[0] == len(processor.tokenizer) > max(vocab.all_ids)
    twin, _ = load_policy(again)  # the same seed gives the same weights
    for a, b in zip(model.state_dict().values(), twin.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_missing_files_are_named(tmp_path, tiny_dir):
    (tmp_path / "config.json").write_text((tiny_dir / "config.json").read_text())
    with pytest.raises(PolicyNotFoundError) as err:
        load_policy(tmp_path)
    msg = str(err.value)
    assert "model.safetensors" in msg and "tokenizer.json" in msg and "hf download" in msg


def test_hub_id_offline_names_the_files_and_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(PolicyNotFoundError) as err:
        load_policy("yejunliang23/ShapeLLM-7B-omni")
    msg = str(err.value)
    assert "offline" in msg and "config.json" in msg and "hf download yejunliang23/ShapeLLM-7B-omni" in msg


def test_two_step_messages_carry_the_plan_and_the_instructions():
    wrapped = "Please generate a 3D mesh based on the prompt I provided: a red chair"
    assert build_messages("a red chair", 0) == [{"role": "user", "content": wrapped}]
    (first,) = build_messages("a red chair", 1)
    assert first["content"] == f"{SEMANTIC_INSTRUCTION}\n{wrapped}"
    (second,) = build_messages("a red chair", 2, plan="four legs, one back")
    assert second["content"] == f"{wrapped}\nfour legs, one back\n{VISUAL_INSTRUCTION}"
    with pytest.raises(ValueError, match="plan"):
        build_messages("x", 2)


def test_constrained_turn_is_a_well_formed_segment_and_the_seed_reproduces(tiny_dir):
    model, processor = load_policy(tiny_dir)
    vocab = MeshVocab.from_tokenizer(processor.tokenizer, 64)
    sampling = SamplingConfig(max_new_tokens=24)
    msgs = build_messages("a tall box", 1)
    a = generate_turn(model, processor, msgs, vocab, 8, sampling=sampling, seed=7, constrain=True)
    b = generate_turn(model, processor, msgs, vocab, 8, sampling=sampling, seed=7, constrain=True)
    assert a.error is None and a.codes.shape == (8,) and a.codes.dtype == np.int64
    assert a.token_ids == b.token_ids
    # The segment sits where the grammar forces it: the last N + 2 tokens before eos.
    end = a.token_ids.index(vocab.end_id)
    assert a.token_ids[end - 9] == vocab.start_id
    free = generate_turn(model, processor, msgs, vocab, 8, sampling=SamplingConfig(max_new_tokens=6), seed=7)
    assert free.codes is None and free.error.reason in ("no_start", "no_end", "too_short")
