"""Replies the judge client must check before calling them answers (issue 26, kind 4).

Each case runs against a real loopback HTTP server (``judge_server.ScriptedServer``) sending exactly
the bytes of the hostile reply, since ``transformers serve`` will not produce them on demand; the cut
reply (``finish_reason: "length"``) comes from the real ``transformers serve``.
"""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import json
import time

import numpy as np
import pytest
from judge_server import Scripted, ScriptedServer, chat_reply

from mme3dr.judge import (
    CachedReply,
    Decoding,
    JudgeClient,
    JudgeConfig,
    JudgeRequest,
    ResponseCache,
    encode_image,
    load_template,
)
from mme3dr.judge.replies import retry_after_s

VIEW = encode_image(np.full((8, 8, 3), 200, dtype=np.uint8), "png")


def config(url: str, **kw) -> JudgeConfig:
    base = dict(model="m", concurrency=1, timeout_s=10.0, connect_timeout_s=5.0, retries=0, backoff_s=0.01,
                backoff_max_s=0.05, profile="transformers")
    return JudgeConfig(base_url=url, **{**base, **kw})


def request(decoding=Decoding(max_tokens=8)) -> JudgeRequest:
    return JudgeRequest(load_template("qwen-category-match"), (VIEW,), {"prompt": "a chair"}, decoding)


def ask(cfg: JudgeConfig, cache: ResponseCache | None = None, n: int = 1):
    async def go():
        async with JudgeClient(cfg, cache) as client:
            return await client.ask_all([request()] * n), dict(client.stats)

    results, stats = asyncio.run(go())
    return results[0], stats


GOOD = chat_reply("Category Match (0-1): 1")


@pytest.mark.parametrize("finish", ["stop", "eos_token", "stop_sequence"])
def test_a_complete_answer_passes(finish):
    with ScriptedServer([Scripted(chat_reply("Category Match (0-1): 1", finish))]) as server:
        result, _ = ask(config(server.url))
    assert result.ok and result.failure is None and result.parsed.values == {"category_match": 1.0}


def test_null_content_with_the_text_in_reasoning_content_fails_saying_where_it_went(tmp_path):
    # vLLM issue 39103: a reasoning parser moved the whole reply out of `content`.
    body = chat_reply(None, reasoning_content="The object is a chair. Category Match (0-1): 1")
    cache = ResponseCache(tmp_path / "cache")
    with ScriptedServer([Scripted(body)]) as server:
        result, _ = ask(config(server.url), cache)
    assert not result.ok and result.failure.reason == "no_content"
    assert "null" in result.failure.detail and "reasoning_content" in result.failure.detail
    assert "46 characters" in result.failure.detail
    assert len(cache) == 0  # nothing to keep: asked again next time


@pytest.mark.parametrize("content", ["", "   ", [{"type": "text", "text": "1"}]])
def test_empty_or_non_text_content_is_no_content(content):
    with ScriptedServer([Scripted(chat_reply(content))]) as server:
        result, _ = ask(config(server.url))
    assert result.failure.reason == "no_content" and result.parsed is None


def test_an_http_200_error_object_keeps_the_servers_message_and_is_retried():
    # langfuse issue 1296: a gateway answers HTTP 200 with {"error": {...}}.
    error = {"error": {"message": "upstream model overloaded (id 7f3a)", "type": "server_error"}}
    with ScriptedServer([Scripted(error), Scripted(error)]) as server:
        result, stats = ask(config(server.url, retries=1))
    assert result.failure.reason == "server_error" and result.failure.attempts == 2
    assert "upstream model overloaded (id 7f3a)" in result.failure.detail
    assert "HTTP 200 with an error object" in result.failure.detail and stats["retries"] == 1
    quota = Scripted({"error": "quota exhausted", "object": "error"})
    with ScriptedServer([quota, Scripted(GOOD)]) as server:
        result, _ = ask(config(server.url, retries=1))
    assert result.ok, "the retry after an error object got the answer"


def test_retry_after_as_an_http_date_is_honoured():
    when = email.utils.formatdate(time.time() + 2, usegmt=True)  # whole seconds: 1 to 2 s from now
    script = [Scripted({"error": "slow down"}, status=429, headers={"Retry-After": when}), Scripted(GOOD)]
    with ScriptedServer(script) as server:
        result, stats = ask(config(server.url, retries=1, backoff_max_s=0.05))
        gap = server.times[1] - server.times[0]
    assert result.ok and stats["retries"] == 1
    assert gap >= 0.9, f"retried {gap:.2f} s later, inside the server's Retry-After window"


def test_retry_after_in_seconds_is_honoured_beyond_our_own_backoff_cap():
    script = [Scripted({"error": "busy"}, status=503, headers={"Retry-After": "1"}), Scripted(GOOD)]
    with ScriptedServer(script) as server:
        result, _ = ask(config(server.url, retries=1, backoff_max_s=0.05))
        gap = server.times[1] - server.times[0]
    assert result.ok and gap >= 0.95


def test_a_retry_after_longer_than_the_limit_fails_at_once_instead_of_retrying_inside_it():
    when = email.utils.formatdate(time.time() + 3600, usegmt=True)
    script = [Scripted({"error": "come back later"}, status=429, headers={"Retry-After": when})]
    with ScriptedServer(script) as server:
        t0 = time.monotonic()
        result, _ = ask(config(server.url, retries=3, retry_after_max_s=30))
        assert time.monotonic() - t0 < 5 and len(server.times) == 1
    assert result.failure.reason == "rate_limited" and result.failure.attempts == 1
    assert "Retry-After" in result.failure.detail and "not retried" in result.failure.detail


def test_retry_after_parsing():
    now = 1_000_000_000.0
    assert retry_after_s("7", now) == 7.0 and retry_after_s(" 0 ", now) == 0.0
    assert retry_after_s(email.utils.formatdate(now + 30, usegmt=True), now) == pytest.approx(30, abs=1)
    assert retry_after_s(email.utils.formatdate(now - 30, usegmt=True), now) == 0.0
    for bad in (None, "", "soon", "nan", "inf", "-inf"):
        assert retry_after_s(bad, now) in (None, 0.0)
    assert retry_after_s("-5", now) == 0.0


def test_timeout_bounds_the_whole_request_even_when_the_body_trickles_in():
    # httpx issue 1450: the read timeout restarts with every chunk; 40 chunks 0.1 s apart never trip it.
    slow = Scripted(GOOD, chunks=40, chunk_delay_s=0.1)
    with ScriptedServer([slow]) as server:
        t0 = time.monotonic()
        result, _ = ask(config(server.url, timeout_s=1.0))
        took = time.monotonic() - t0
    assert result.failure.reason == "timeout" and "1 s" in result.failure.detail
    assert took < 2.5, f"a 1 s timeout took {took:.1f} s"


@pytest.mark.parametrize("with_length", [True, False])
def test_a_50_mb_reply_is_refused_unread_and_neither_cached_nor_kept(tmp_path, with_length):
    huge = json.dumps(chat_reply("1" * 50_000_000)).encode()
    cache = ResponseCache(tmp_path / "cache")
    reply = Scripted(huge, headers={} if with_length else {"Connection": "close"})
    if not with_length:
        reply.content_length = False
    with ScriptedServer([reply]) as server:
        result, _ = ask(config(server.url), cache)
    assert result.failure.reason == "too_large" and result.reply is None
    assert "max_reply_bytes" in result.failure.detail and len(cache) == 0


def test_a_gzip_bomb_is_refused_by_its_decoded_size():
    # 50 MB of reply compressed to ~50 kB: the cap counts the bytes after decoding
    bomb = gzip.compress(json.dumps(chat_reply("1" * 50_000_000)).encode(), compresslevel=9)
    assert len(bomb) < 200_000
    with ScriptedServer([Scripted(bomb, headers={"Content-Encoding": "gzip"})]) as server:
        result, _ = ask(config(server.url))
    assert result.failure.reason == "too_large" and "max_reply_bytes" in result.failure.detail


def test_a_cache_entry_larger_than_any_reply_is_not_read(tmp_path):
    cache = ResponseCache(tmp_path / "cache", max_entry_bytes=1000)
    cache.put("ab" * 32, CachedReply("1" * 5000, "stop"))
    assert cache.get("ab" * 32) is None
    cache.put("cd" * 32, CachedReply("short", "stop"))
    assert cache.get("cd" * 32).content == "short"
    # a hand-edited or damaged entry without text is a miss, not a reply of None
    plain = ResponseCache(tmp_path / "plain")
    plain.path("ef" * 32).parent.mkdir(parents=True)
    for bad in ('{"content": null}', "[1, 2]", "[" * 100_000 + "]" * 100_000):
        plain.path("ef" * 32).write_text(bad)
        assert plain.get("ef" * 32) is None


def test_several_choices_are_not_an_answer():
    body = chat_reply("Category Match (0-1): 1")
    body["choices"].append({**body["choices"][0], "index": 1,
                            "message": {"role": "assistant", "content": "Category Match (0-1): 0"}})
    with ScriptedServer([Scripted(body)]) as server:
        result, _ = ask(config(server.url))
    assert result.failure.reason == "bad_response" and "2 choices" in result.failure.detail


@pytest.mark.parametrize(("reply", "words"), [
    (Scripted(b"<html>502 Bad Gateway</html>", content_type="text/html"), "Content-Type 'text/html'"),
    (Scripted(b'{"choices": [', content_type="application/json"), "not JSON"),
    (Scripted([chat_reply()]), "JSON list, not an object"),
    (Scripted({"id": "x", "choices": []}), "no choices"),
    (Scripted({"id": "x", "choices": ["1. yes"]}), "no message object"),
    (Scripted({"id": "x", "choices": [{"index": 0, "message": "1. yes"}]}), "no message object"),
    (Scripted(b"[" * 100_000 + b"]" * 100_000), "not JSON"),
])
def test_bodies_that_are_not_a_reply_object_are_bad_responses(reply, words):
    with ScriptedServer([reply]) as server:
        result, _ = ask(config(server.url, retries=2))
        assert len(server.times) == 1  # asking again would get the same
    assert result.failure.reason == "bad_response" and words in result.failure.detail


def test_a_redirect_is_not_followed_and_says_where_it_pointed():
    moved = Scripted(b"", status=307, headers={"Location": "http://203.0.113.9/v1/chat/completions"})
    with ScriptedServer([moved]) as server:
        result, _ = ask(config(server.url, retries=2))
        assert len(server.times) == 1
    assert result.failure.reason == "client_error" and result.failure.attempts == 1
    assert "redirect" in result.failure.detail and "203.0.113.9" in result.failure.detail


@pytest.mark.parametrize("finish", ["length", None, "content_filter", "tool_calls"])
def test_a_reply_the_server_did_not_finish_is_incomplete_keeping_its_text(finish):
    with ScriptedServer([Scripted(chat_reply("Category Match (0-1): 1", finish_reason=finish))]) as server:
        result, _ = ask(config(server.url))
    assert result.failure.reason == "incomplete" and result.parsed is None and not result.ok
    assert result.reply == "Category Match (0-1): 1"  # kept for the record, never scored
    assert repr(finish) in result.failure.detail


def test_the_real_server_cut_at_max_tokens_is_incomplete(served_vlm, proxy, tmp_path):
    cache = ResponseCache(tmp_path / "cache")
    cfg = config(proxy.url, model=served_vlm.model, timeout_s=120.0)
    result, _ = ask(cfg, cache)
    # 8 tokens of a tiny random model: cut at max_tokens, as the server says
    assert result.failure.reason == "incomplete" and "max_tokens 8" in result.failure.detail
    assert isinstance(result.reply, str) and result.parsed is None
    again, stats = ask(cfg, cache)  # cached with its finish_reason: the same failure, nothing sent
    assert stats["sent"] == 0 and again.failure.reason == "incomplete" and again.reply == result.reply


@pytest.mark.parametrize(("field", "value"), [("timeout_s", float("nan")), ("max_reply_bytes", 0),
                                             ("retry_after_max_s", -1), ("backoff_s", float("nan"))])
def test_config_refuses_nan_and_nonsense_limits(field, value):
    with pytest.raises(ValueError, match=rf"JudgeConfig\.{field} must be"):
        JudgeConfig(base_url="http://127.0.0.1:1", model="m", **{field: value})
