"""The OpenAI-compatible chat-completions client shared by the evaluation judge and the reward models.

Why httpx (the ``httpx2`` distribution) and not the ``openai`` SDK:

- **The request body must be exactly ours.** Only standard OpenAI fields are sent unless a named
  server profile allows more (``transformers serve`` answers HTTP 422 to any other field; vLLM takes
  ``top_k`` etc.). We build the JSON body ourselves anyway, to hash it for the cache; the SDK would
  only wrap it (non-standard fields go through its ``extra_body`` escape hatch).
- **Every attempt is ours to see.** A failure must say what happened on each try (5xx body, refused
  connection, timeout); the SDK retries inside ``create()`` and raises only the last error.
- **Light and fast to import.** ``import httpx2`` takes ~0.13 s here, ``import openai`` ~1.0 s (its
  pydantic models); the judge is imported by the CLI and by every reward worker. httpx2 is already a
  dependency of ``huggingface_hub``, which the project installs for its encoders.

Concurrency: one :class:`asyncio.Semaphore` of ``concurrency`` slots per client, and an HTTP
connection pool of the same size. Retries: on a refused/broken connection, a timeout, HTTP 429 and
5xx, up to ``retries`` more attempts, sleeping ``min(backoff_max_s, backoff_s·2^k)`` before retry
``k``, or exactly the server's ``Retry-After`` (seconds or an HTTP date; one longer than
``retry_after_max_s`` fails at once instead of retrying inside the server's window). Other 4xx and
redirects (never followed: the body and the API key would go elsewhere) fail at once: asking again
would get the same answer. Failures are returned as :class:`RequestFailure` values with the reason
and every attempt's detail, never swallowed into a score.

What counts as a reply (``mme3dr.judge.replies``): ``timeout_s`` bounds each whole attempt, body
included (httpx's read timeout restarts with every chunk, so a trickling body would never time out);
a body over ``max_reply_bytes`` is dropped unread (``too_large``); an HTTP 200 must be a JSON object
(``Content-Type`` JSON), and one holding an ``error`` object is a server error keeping its message.
An answer is one choice whose message holds text and whose ``finish_reason`` is ``"stop"``:
``content: null`` with the text in ``reasoning_content`` is ``no_content``, a reply cut at
``max_tokens`` (``"length"``) is ``incomplete`` (its text is kept in the result, never parsed).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field

from mme3dr.judge.cache import CachedReply, ResponseCache, cache_key
from mme3dr.judge.images import EncodedImage, encode_image
from mme3dr.judge.parsers import Parsed, parse_reply
from mme3dr.judge.replies import ReplyProblem, decode_reply, incomplete_reason, reply_from_data, retry_after_s
from mme3dr.judge.settings import (  # noqa: F401 - re-exported: the client's public names
    MAX_REPLY_BYTES,
    PROFILES,
    STANDARD_FIELDS,
    Decoding,
    JudgeConfig,
    url_problem,
)
from mme3dr.judge.templates import PromptTemplate

FAILURE_REASONS = ("timeout", "connection", "server_error", "rate_limited", "client_error", "bad_response",
                   "too_large", "no_content", "incomplete")


@dataclass(frozen=True)
class RequestFailure:
    """A request that got no usable reply: ``reason`` (one of FAILURE_REASONS), ``detail`` (last
    attempt), ``attempts`` made and the per-attempt ``history``."""

    reason: str
    detail: str
    attempts: int
    history: tuple[str, ...] = ()


class JudgeRequestError(Exception):
    """Raised by :meth:`JudgeClient.complete`; carries the :class:`RequestFailure`."""

    def __init__(self, failure: RequestFailure):
        super().__init__(f"{failure.reason} after {failure.attempts} attempt(s): {failure.detail}")
        self.failure = failure


@dataclass(frozen=True)
class JudgeRequest:
    """One question: a template, its images (in order) and variables, and the decoding settings.

    ``images`` may hold :class:`EncodedImage` values or anything :func:`encode_image` takes (arrays
    ``(H, W, 3|4) uint8``, PIL images, paths, PNG/JPEG bytes); the latter are encoded as PNG here.
    """

    template: PromptTemplate
    images: tuple[EncodedImage, ...]
    variables: dict
    decoding: Decoding = field(default_factory=Decoding)

    def __post_init__(self):
        encoded = tuple(im if isinstance(im, EncodedImage) else encode_image(im, "png") for im in self.images)
        object.__setattr__(self, "images", encoded)


@dataclass(frozen=True)
class JudgeResult:
    """The outcome of one question. Exactly one of ``parsed`` / ``failure`` is set; ``reply`` is the raw
    text when the server answered (kept in a parse failure and in an ``incomplete`` failure too)."""

    template_id: str
    template_sha256: str
    model: str
    key: str
    image_sha256s: tuple[str, ...]
    reply: str | None
    parsed: Parsed | None
    failure: RequestFailure | None
    cached: bool
    seconds: float

    @property
    def ok(self) -> bool:
        return self.parsed is not None and self.parsed.ok


class JudgeClient:
    """Async client; use as ``async with JudgeClient(config, cache) as client: ...``.

    A question already in flight is not sent again: a second ``ask`` with the same cache key waits for
    the first one's answer. ``stats`` counts ``sent`` (HTTP attempts), ``cache_hits`` (answers that
    needed no request: from the cache or a shared in-flight one) and ``retries``.
    ``transport`` is an optional ``httpx2`` transport (for a proxy or a socket path).
    """

    def __init__(self, config: JudgeConfig, cache: ResponseCache | None = None, transport=None):
        if config.profile not in PROFILES:
            raise ValueError(f"unknown server profile {config.profile!r}; known: {sorted(PROFILES)}")
        if config.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.config, self.cache, self._transport = config, cache, transport
        self.stats = {"sent": 0, "cache_hits": 0, "retries": 0}
        self._http = None
        self._slots: asyncio.Semaphore | None = None
        self._inflight: dict[str, asyncio.Future] = {}

    async def __aenter__(self) -> JudgeClient:
        import httpx2  # lazy: `import mme3dr.judge` stays cheap

        cfg = self.config
        key = os.environ.get(cfg.api_key_env or "", "") or "EMPTY"
        self._http = httpx2.AsyncClient(
            base_url=cfg.api_root,
            timeout=httpx2.Timeout(cfg.timeout_s, connect=cfg.connect_timeout_s),
            limits=httpx2.Limits(max_connections=cfg.concurrency, max_keepalive_connections=cfg.concurrency),
            headers={"Authorization": f"Bearer {key}"},
            transport=self._transport,
        )
        self._slots = asyncio.Semaphore(cfg.concurrency)
        return self

    async def __aexit__(self, *exc) -> None:
        await self._http.aclose()
        self._http = None

    async def list_models(self) -> list[str]:
        """Ids from ``GET /v1/models`` (raises :class:`JudgeRequestError` on failure)."""
        data = await self._send("GET", "/models", None)
        return [m["id"] for m in data.get("data", [])]

    async def post(self, path: str, body: dict) -> dict:
        """POST ``body`` as JSON to ``path`` under the API root (e.g. ``"/completions"``) with this client's
        retries; returns the decoded JSON reply, raises :class:`JudgeRequestError` on failure."""
        return await self._send("POST", path, body)

    async def complete(self, body: dict) -> CachedReply:
        """POST ``/chat/completions`` with ``body`` (model added) and return its one choice's message.

        Raises :class:`JudgeRequestError`: no usable reply, or a reply with no text (``bad_response``:
        no or several choices; ``no_content``: null/empty content, e.g. all of it in
        ``reasoning_content``). A reply cut short is returned (its ``finish_reason`` says so)."""
        data = await self._send("POST", "/chat/completions", {"model": self.config.model, **body})
        try:
            return reply_from_data(data)
        except ReplyProblem as exc:
            raise JudgeRequestError(RequestFailure(exc.reason, exc.detail, 1)) from None

    async def ask(self, request: JudgeRequest) -> JudgeResult:
        """Ask one question (from the cache when it holds the key). Never raises for a server problem."""
        t0 = time.perf_counter()
        template = request.template
        sampling = request.decoding.body(self.config.profile)  # ValueError here: a caller bug, raised
        hashes = tuple(im.sha256 for im in request.images)
        key = request_key(self.config, request)
        reply = self.cache.get(key) if self.cache else None
        cached, failure = reply is not None, None
        if cached:
            self.stats["cache_hits"] += 1
        elif key in self._inflight:  # the same question is already being asked: share its answer
            reply, failure = await asyncio.shield(self._inflight[key])
            cached = reply is not None
            self.stats["cache_hits"] += cached
        else:
            pending = self._inflight[key] = asyncio.get_running_loop().create_future()
            body = {"messages": template.messages(list(request.images), request.variables), **sampling}
            try:
                reply = await self.complete(body)
            except JudgeRequestError as exc:
                failure = exc.failure
            except BaseException:  # cancelled (or a bug): the waiters see it too
                pending.cancel()
                raise
            finally:
                del self._inflight[key]
            pending.set_result((reply, failure))
            if reply is not None and self.cache is not None:
                self.cache.put(key, reply, {"template": template.id, "model": self.config.model})
        cut = incomplete_reason(reply, sampling.get("max_tokens")) if reply is not None else None
        if cut is not None:  # the server said it did not finish: the text is kept, never parsed
            failure = RequestFailure("incomplete", cut, 1)
        parsed = parse_reply(template.parser, reply.content, request.variables) if reply and not cut else None
        return JudgeResult(template.id, template.sha256, self.config.model, key, hashes,
                           reply.content if reply else None, parsed, failure, cached,
                           time.perf_counter() - t0)

    async def ask_all(self, requests: list[JudgeRequest]) -> list[JudgeResult]:
        """Ask every question concurrently (at most ``concurrency`` in flight); results in input order."""
        return list(await asyncio.gather(*(self.ask(r) for r in requests)))

    async def _send(self, method: str, path: str, body: dict | None) -> dict:
        cfg, history = self.config, []
        # at least one attempt whatever the config says (JudgeConfig refuses retries < 0), so the failure
        # below always has a reason
        reason, detail = "connection", "no attempt was made"
        for attempt in range(max(cfg.retries, 0) + 1):
            wait = min(cfg.backoff_max_s, cfg.backoff_s * 2**attempt)
            async with self._slots:
                self.stats["sent"] += 1
                try:
                    return decode_reply(*await self._attempt(method, path, body))
                except ReplyProblem as exc:
                    reason, detail, retry = exc.reason, exc.detail, exc.retry
                    asked = retry_after_s(exc.retry_after)
                    if retry and asked is not None and asked > cfg.retry_after_max_s:
                        detail += (f" (Retry-After {asked:.0f} s is longer than retry_after_max_s "
                                   f"{cfg.retry_after_max_s:g} s: not retried)")
                        retry = False
                    history.append(detail)
                    if not retry:
                        raise JudgeRequestError(RequestFailure(reason, detail, attempt + 1, tuple(history))) \
                            from None
                    wait = wait if asked is None else asked
            if attempt < cfg.retries:
                self.stats["retries"] += 1
                await asyncio.sleep(wait)
        raise JudgeRequestError(RequestFailure(reason, detail, max(cfg.retries, 0) + 1, tuple(history)))

    async def _attempt(self, method: str, path: str, body: dict | None) -> tuple[int, dict, bytes]:
        """One HTTP exchange, whole body read, within ``timeout_s`` in all and ``max_reply_bytes``;
        raises :class:`ReplyProblem` (timeout, connection, too_large)."""
        import httpx2

        cfg = self.config
        try:
            return await asyncio.wait_for(self._read(method, path, body), cfg.timeout_s)
        except (asyncio.TimeoutError, httpx2.TimeoutException) as exc:
            raise ReplyProblem("timeout", f"{type(exc).__name__}: no complete reply within timeout_s "
                                          f"{cfg.timeout_s:g} s", retry=True) from None
        except httpx2.TransportError as exc:
            raise ReplyProblem("connection", f"{type(exc).__name__}: {exc} ({cfg.api_root})", retry=True) \
                from None

    async def _read(self, method: str, path: str, body: dict | None) -> tuple[int, dict, bytes]:
        cap = self.config.max_reply_bytes
        async with self._http.stream(method, path, json=body) as resp:
            headers = {k.lower(): v for k, v in resp.headers.items()}
            declared = headers.get("content-length", "")
            if declared.isdigit() and int(declared) > cap:
                raise ReplyProblem("too_large", f"HTTP {resp.status_code} reply of {int(declared):,} bytes "
                                                f"(Content-Length); at most max_reply_bytes {cap:,} are read")
            chunks, size = [], 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > cap:
                    raise ReplyProblem("too_large", f"HTTP {resp.status_code} reply longer than "
                                                    f"max_reply_bytes {cap:,}; dropped unread")
                chunks.append(chunk)
            return resp.status_code, headers, b"".join(chunks)


def request_key(config: JudgeConfig, request: JudgeRequest) -> str:
    """The response-cache key of ``request`` asked of ``config``'s model (see ``mme3dr.judge.cache``)."""
    return cache_key(config.model, request.template.sha256, request.template.render_text(request.variables),
                     [im.sha256 for im in request.images], request.decoding.body(config.profile))


def ask_all_sync(config: JudgeConfig, requests: list[JudgeRequest], cache: ResponseCache | None = None
                 ) -> list[JudgeResult]:
    """Blocking wrapper for synchronous callers (reward callables, the CLI).

    Runs its own event loop; from inside a running loop it runs in a worker thread instead.
    """
    async def run():
        async with JudgeClient(config, cache) as client:
            return await client.ask_all(requests)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run())
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()
