"""Rollout pieces: segment shares, malformed outcomes with reasons, packing, chunked log-probs."""

from __future__ import annotations

import pytest
import torch

from ar3d_r1.logprobs import completion_logprobs, pack_sequences
from ar3d_r1.policy.mesh_tokens import MeshVocab
from ar3d_r1.rollout.hi_grpo import parse_outcome, segment_shares

VOCAB = MeshVocab(start_id=100, end_id=101, code_ids=(10, 11, 12))


class WordTokenizer:
    eos_token_id, pad_token_id = 1, 0

    def decode(self, ids, skip_special_tokens=True):
        return " ".join(f"w{i}" for i in ids)


def test_segment_shares_count_plan_mesh_and_tail_tokens():
    assert segment_shares([5, 6, 100, 10, 11, 101, 1], VOCAB) == {"plan": 2, "mesh": 4, "tail": 1}
    assert segment_shares([5, 6, 7], VOCAB) == {"plan": 3, "mesh": 0, "tail": 0}
    assert segment_shares([5, 100, 10, 11], VOCAB) == {"plan": 1, "mesh": 3, "tail": 0}  # cut, no end


@pytest.mark.parametrize("completion, reason", [
    ([5, 100, 10, 11, 101, 1], None),
    ([5, 6, 1], "no_start"),
    ([5, 100, 10, 11], "no_end"),
    ([5, 100, 10, 7, 101, 1], "stray_text"),
    ([100, 10, 101, 1], "too_short"),
    ([100, 10, 11, 12, 101, 1], "too_long"),
])
def test_malformed_segments_are_kept_as_outcomes_with_reasons(completion, reason):
    out = parse_outcome([3, 4], completion, WordTokenizer(), VOCAB, n_tokens=2)
    assert out.failure == reason and out.completion_ids == completion
    assert (out.codes is None) == (reason is not None)
    if reason is None:
        assert out.codes.tolist() == [0, 1] and out.plan == "w5"


def test_pack_sequences_left_pads_prompts_right_pads_completions():
    ids, att, cmask = pack_sequences([[7, 8, 9], [7]], [[1], [4, 5, 1]], pad_id=0)
    assert ids.tolist() == [[7, 8, 9, 1, 0, 0], [0, 0, 7, 4, 5, 1]]
    assert att.tolist() == [[1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1]]
    assert cmask.tolist() == [[1, 0, 0], [1, 1, 1]]
    with pytest.raises(ValueError, match="empty"):
        pack_sequences([[1]], [[]], 0)


def test_chunked_logprobs_equal_full_log_softmax_values_and_gradients():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=50, hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1))
    ids = torch.randint(0, 50, (3, 9))
    att = torch.ones_like(ids)
    full = (model(input_ids=ids, attention_mask=att).logits[:, -5:-1] / 0.7).log_softmax(-1)
    expected = full.gather(-1, ids[:, -4:, None]).squeeze(-1)
    expected.sum().backward()
    ref_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    got = completion_logprobs(model, ids, att, 4, temperature=0.7, chunk=5)  # chunks straddle rows
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    got.sum().backward()
    for g, r in zip((p.grad for p in model.parameters()), ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=0, atol=1e-6)
