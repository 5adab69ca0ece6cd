"""Mesh tokens (Must show 4): ids read from a real tokenizer, 1024 codes round-trip, each malformed kind."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from ar3d_r1.policy.mesh_tokens import (  # noqa: E402
    MESH_TOKEN_REASONS,
    MeshTokenError,
    MeshVocab,
    add_mesh_tokens,
    format_mesh_segment,
    mesh_segment_span,
    parse_mesh_segment,
    parse_mesh_text,
)
from ar3d_r1.policy.tiny import build_tiny_tokenizer  # noqa: E402

N, K = 1024, 8192


@pytest.fixture(scope="module")
def paper_vocab():
    """A trained BPE tokenizer holding the paper's 8192 mesh tokens."""
    return build_tiny_tokenizer(K)


def test_ids_are_read_back_from_the_tokenizer(paper_vocab):
    tok, vocab = paper_vocab
    assert vocab.codebook_size == K
    assert tok.convert_ids_to_tokens(vocab.start_id) == "<mesh-start>"
    assert tok.convert_ids_to_tokens(vocab.end_id) == "<mesh-end>"
    assert tok.convert_ids_to_tokens(list(vocab.code_ids[:3])) == ["<mesh0>", "<mesh1>", "<mesh2>"]
    assert tok.convert_ids_to_tokens(vocab.code_ids[-1]) == f"<mesh{K - 1}>"
    assert MeshVocab.from_tokenizer(tok, K) == vocab
    assert add_mesh_tokens(tok, K) == vocab  # idempotent: nothing is added twice
    with pytest.raises(ValueError, match="lacks 1 of"):
        MeshVocab.from_tokenizer(tok, K + 1)


def test_1024_codes_round_trip_through_text_and_ids(paper_vocab):
    tok, vocab = paper_vocab
    codes = np.random.default_rng(0).integers(0, K, N)
    codes[:2] = (0, K - 1)
    text = "The object is a chair. " + format_mesh_segment(codes) + "<|im_end|>"
    ids = tok(text)["input_ids"]
    # Every mesh token is one id: reasoning + start + 1024 codes + end + eos.
    start, end = mesh_segment_span(ids, vocab)
    assert end - start == N + 1
    np.testing.assert_array_equal(parse_mesh_segment(ids, vocab, N), codes)
    np.testing.assert_array_equal(parse_mesh_text(tok.decode(ids), N, K), codes)
    assert tok.decode(ids, skip_special_tokens=True).count("<mesh") == N + 2


def _ids(vocab, codes, *, start=True, end=True, before=(), inside=None, after=()):
    body = vocab.codes_to_ids(codes)
    if inside is not None:
        body.insert(len(body) // 2, inside)
    return [*before, *([vocab.start_id] if start else []), *body, *([vocab.end_id] if end else []), *after]


@pytest.mark.parametrize("reason", MESH_TOKEN_REASONS)
def test_each_malformed_kind_has_its_own_reason(paper_vocab, reason):
    tok, vocab = paper_vocab
    text_id = tok("cube")["input_ids"][0]
    codes = list(range(N))
    ids = {
        "no_start": _ids(vocab, codes, start=False),
        "no_end": _ids(vocab, codes, end=False),
        "stray_text": _ids(vocab, codes[:-1], inside=text_id),
        "too_short": _ids(vocab, codes[:-1]),
        "too_long": _ids(vocab, [*codes, 5]),
        "multiple_segments": _ids(vocab, codes, after=(vocab.start_id,)),
    }[reason]
    with pytest.raises(MeshTokenError) as err:
        parse_mesh_segment(ids, vocab, N)
    assert err.value.reason == reason
    text = tok.decode(ids)
    with pytest.raises(MeshTokenError) as err:
        parse_mesh_text(text, N, K)
    assert err.value.reason == reason


def test_reasoning_before_and_eos_after_the_segment_are_allowed(paper_vocab):
    tok, vocab = paper_vocab
    before = tok("a plan")["input_ids"]
    ids = _ids(vocab, range(N), before=before, after=(tok.eos_token_id, tok.pad_token_id))
    np.testing.assert_array_equal(parse_mesh_segment(ids, vocab, N), np.arange(N))


def test_padding_by_repetition_is_only_an_explicit_option(paper_vocab):
    _, vocab = paper_vocab
    short = _ids(vocab, [7, 9, 11])
    with pytest.raises(MeshTokenError, match="too_short"):
        parse_mesh_segment(short, vocab, 6)
    np.testing.assert_array_equal(parse_mesh_segment(short, vocab, 6, pad="repeat"), [7, 9, 11, 11, 11, 11])
    truncated = _ids(vocab, [3, 4], end=False)  # max_new_tokens ran out
    with pytest.raises(MeshTokenError, match="no_end"):
        parse_mesh_segment(truncated, vocab, 4)
    np.testing.assert_array_equal(parse_mesh_segment(truncated, vocab, 4, pad="repeat"), [3, 4, 4, 4])
    with pytest.raises(MeshTokenError, match="too_short"):  # nothing to repeat
        parse_mesh_segment(_ids(vocab, []), vocab, 4, pad="repeat")


def test_small_vocab_from_a_fresh_tokenizer():
    tok, vocab = build_tiny_tokenizer(16)
    assert len(set(vocab.all_ids)) == 18 and max(vocab.all_ids) == len(tok) - 1
    assert format_mesh_segment([1, 15]) == "<mesh-start><mesh1><mesh15><mesh-end>"
    with pytest.raises(MeshTokenError, match="stray_text"):  # <mesh16> is not in a K = 16 codebook
        parse_mesh_text("<mesh-start><mesh16><mesh-end>", 1, 16)
