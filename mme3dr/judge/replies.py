"""What makes a chat-completions reply an answer: the checks :class:`~mme3dr.judge.client.JudgeClient`
applies to every reply, and the ``Retry-After`` header's two spellings.

An HTTP exchange is a reply only as :func:`decode_reply` says: an HTTP 200 with a JSON
``Content-Type`` and a JSON object body that is not an error object (an HTTP 200 ``{"error": ...}``
is a server error keeping its message); a redirect is refused (not followed); 429 and 5xx are
retried. A reply is an answer only when the server says it finished and it holds text:

- exactly one choice (the client never asks for ``n`` > 1; several choices are not "the" answer);
- ``message.content`` a non-empty string. vLLM with a reasoning parser can put the whole reply in
  ``reasoning_content`` and send ``content: null`` (vLLM issue 39103): that is ``no_content``, saying
  where the text went;
- ``finish_reason`` ``"stop"`` (or TGI's ``"eos_token"``/``"stop_sequence"``). ``"length"`` (cut at
  ``max_tokens``), ``"content_filter"``, a tool call or a missing value is ``incomplete``: the text is
  kept for the record but never parsed into a score.

Light module: standard library only.
"""

from __future__ import annotations

import email.utils
import json
import math
import time

from mme3dr.judge.cache import CachedReply

#: ``finish_reason`` values that say the model ended its answer itself: the OpenAI API's ``"stop"``
#: (vLLM, ``transformers serve``), and Text Generation Inference's ``"eos_token"`` / ``"stop_sequence"``.
COMPLETE = frozenset({"stop", "eos_token", "stop_sequence"})


class ReplyProblem(Exception):
    """A reply that is not an answer: ``reason`` (a ``FAILURE_REASONS`` value), ``detail``; ``retry``
    when asking again may help; ``retry_after`` the server's ``Retry-After`` header, if any."""

    def __init__(self, reason: str, detail: str, *, retry: bool = False, retry_after: str | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.retry, self.retry_after = reason, detail, retry, retry_after


def decode_reply(status: int, headers: dict, raw: bytes) -> dict:
    """The JSON object of an HTTP 200, else :class:`ReplyProblem` saying what came instead."""
    text = raw[:300].decode("utf-8", "replace")
    if status == 200:
        kind = headers.get("content-type", "")
        if "json" not in kind.lower():
            raise ReplyProblem("bad_response", f"HTTP 200 with Content-Type {kind or 'none'!r}, not JSON: "
                                               f"{text[:200]!r}")
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            raise ReplyProblem("bad_response", f"HTTP 200 but not JSON: {text[:200]!r}") from None
        if not isinstance(data, dict):
            raise ReplyProblem("bad_response", f"HTTP 200 with a JSON {type(data).__name__}, not an object: "
                                               f"{text[:200]!r}")
        if data.get("error") is not None and "choices" not in data:
            error = data["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            raise ReplyProblem("server_error", f"HTTP 200 with an error object: {str(message)[:300]}",
                               retry=True, retry_after=headers.get("retry-after"))
        return data
    if 300 <= status < 400:
        raise ReplyProblem("client_error", f"HTTP {status} redirect to {headers.get('location', '?')!r}: "
                                           "redirects are not followed (the request and its API key would "
                                           "go elsewhere); give the final URL")
    detail = f"HTTP {status}: {text}"
    if status == 429 or status >= 500:
        raise ReplyProblem("rate_limited" if status == 429 else "server_error", detail, retry=True,
                           retry_after=headers.get("retry-after"))
    raise ReplyProblem("client_error", detail)


def reply_from_data(data: dict) -> CachedReply:
    """The one choice's message of a decoded ``/chat/completions`` reply.

    Raises:
        ReplyProblem: ``bad_response`` (no ``choices`` list, several choices, no ``message`` object),
            ``no_content`` (content null, empty or not text; says how much text is in
            ``reasoning_content`` when the server put it there).
    """
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ReplyProblem("bad_response", f"no choices in the reply (keys: {sorted(data)[:10]})")
    if len(choices) > 1:
        raise ReplyProblem("bad_response", f"the reply has {len(choices)} choices; one was asked for")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        raise ReplyProblem("bad_response", "the reply's choice has no message object")
    content = message.get("content")
    if not isinstance(content, str) or not content.strip():
        what = ("null" if content is None
                else "empty" if isinstance(content, str) else f"a {type(content).__name__}")
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        if isinstance(reasoning, str) and reasoning.strip():
            raise ReplyProblem("no_content", f"message content is {what} and all {len(reasoning):,} "
                                             "characters of the reply are in reasoning_content (the server's "
                                             "reasoning parser took it: serve without one, or raise "
                                             "max_tokens so the answer follows the reasoning)")
        raise ReplyProblem("no_content", f"message content is {what} (finish_reason "
                                         f"{choice.get('finish_reason')!r})")
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else None
    finish = choice.get("finish_reason")
    return CachedReply(content, finish if isinstance(finish, str) else None, usage)


def incomplete_reason(reply: CachedReply, max_tokens: int | None = None) -> str | None:
    """Why ``reply`` is not a finished answer, or None when its ``finish_reason`` is in :data:`COMPLETE`."""
    if reply.finish_reason in COMPLETE:
        return None
    if reply.finish_reason == "length":
        return (f"finish_reason 'length': the reply was cut at max_tokens {max_tokens} before the model "
                "finished; raise max_tokens")
    return f"finish_reason {reply.finish_reason!r}: the server does not say the answer is complete"


def retry_after_s(header: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date (RFC 9110 §10.2.3);
    None when absent or unreadable. A date in the past is 0."""
    if not header:
        return None
    header = header.strip()
    try:
        value = float(header)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None or when.tzinfo is None:
            return None
        value = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, value) if math.isfinite(value) else None
