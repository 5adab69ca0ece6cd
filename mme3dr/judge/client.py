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
from dataclasses import asdict, dataclass, field

from mme3dr.judge.cache import CachedReply, ResponseCache, cache_key
from mme3dr.judge.images import EncodedImage, encode_image
from mme3dr.judge.parsers import Parsed, parse_reply
from mme3dr.judge.replies import ReplyProblem, decode_reply, incomplete_reason, reply_from_data, retry_after_s
from mme3dr.judge.templates import PromptTemplate

#: Chat-completions fields of the OpenAI API that every compatible server must accept.
STANDARD_FIELDS = frozenset({
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "n", "seed", "stop",
    "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs", "response_format", "logit_bias",
})

#: Extra sampling fields each named server profile accepts on top of STANDARD_FIELDS.
PROFILES: dict[str, frozenset[str]] = {
    "openai": frozenset(),
    "transformers": frozenset(),  # `transformers serve` rejects anything else with HTTP 422
    "vllm": frozenset({"top_k", "min_p", "repetition_penalty", "min_tokens", "skip_special_tokens",
                       "spaces_between_special_tokens", "chat_template_kwargs", "mm_processor_kwargs",
                       "structured_outputs", "guided_choice", "guided_regex", "guided_json"}),
}

FAILURE_REASONS = ("timeout", "connection", "server_error", "rate_limited", "client_error", "bad_response",
                   "too_large", "no_content", "incomplete")
#: Largest reply body read (bytes). A judge reply of 256 tokens is ~2 kB and a rollout completion a few
#: 100 kB; a larger body is refused unread (``too_large``), never cached or written to ``judge.jsonl``.
MAX_REPLY_BYTES = 2 * 1024**2


@dataclass(frozen=True)
class Decoding:
    """Decoding settings sent with every request, and part of the cache key.

    ``extra`` holds non-standard fields (e.g. ``{"top_k": 1}``); they are sent only when the server
    profile allows each one, else :meth:`body` raises ``ValueError`` before anything is sent.
    """

    temperature: float = 0.0
    max_tokens: int = 512
    top_p: float | None = None
    seed: int | None = 0
    extra: dict = field(default_factory=dict)

    def body(self, profile: str) -> dict:
        """The sampling part of the request body for ``profile``."""
        if profile not in PROFILES:
            raise ValueError(f"unknown server profile {profile!r}; known: {sorted(PROFILES)}")
        allowed = STANDARD_FIELDS | PROFILES[profile]
        refused = sorted(k for k in self.extra if k not in allowed)
        if refused:
            raise ValueError(
                f"decoding fields {refused} are not standard OpenAI fields and server profile {profile!r} "
                f"does not allow them (profiles that do: "
                f"{[p for p, extra in PROFILES.items() if set(refused) <= extra] or 'none'})"
            )
        out = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        if self.top_p is not None:
            out["top_p"] = self.top_p
        if self.seed is not None:
            out["seed"] = self.seed
        return {**out, **self.extra}

    def card(self) -> dict:
        return asdict(self)


def url_problem(url: object) -> str | None:
    """Why ``url`` is no usable server URL (``"must be ..., got ..."``), or None: it must parse, use the
    http or https scheme, name a host, and any port must be in 1-65535."""
    from urllib.parse import urlsplit

    if not isinstance(url, str) or not url.strip():
        return f"must be an http(s) URL such as http://127.0.0.1:8000/v1, got {url!r}"
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError when out of 0-65535 or not a number
    except ValueError as exc:
        return f"must be a parseable http(s) URL, got {url!r} ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        return f"must use http:// or https://, got {url!r}"
    if not parts.hostname:
        return f"must name a host (http://HOST:PORT/v1), got {url!r}"
    if port == 0:
        return f"must have a port in 1-65535, got {url!r}"
    return None


@dataclass(frozen=True)
class JudgeConfig:
    """Where and how to ask. ``base_url`` is the server root or its ``/v1``; ``model`` the served id."""

    base_url: str
    model: str
    profile: str = "openai"
    concurrency: int = 4
    timeout_s: float = 120.0
    connect_timeout_s: float = 10.0
    retries: int = 3
    backoff_s: float = 0.5
    backoff_max_s: float = 8.0
    api_key_env: str | None = "OPENAI_API_KEY"
    max_reply_bytes: int = MAX_REPLY_BYTES
    retry_after_max_s: float = 60.0

    def __post_init__(self) -> None:
        """Refuse values the client cannot work with (ValueError naming the field): ``base_url`` an
        http(s) URL with a host and a port in 1-65535 (:func:`url_problem`), ``concurrency`` and
        ``retries`` integers >= 1 and >= 0, timeouts > 0, backoffs >= 0, ``max_reply_bytes`` >= 1."""
        problem = url_problem(self.base_url)
        if problem:
            raise ValueError(f"JudgeConfig.base_url {problem}")
        for name, low, strict, kind in (("concurrency", 1, False, int), ("retries", 0, False, int),
                                        ("max_reply_bytes", 1, False, int),
                                        ("retry_after_max_s", 0, False, (int, float)),
                                        ("timeout_s", 0, True, (int, float)),
                                        ("connect_timeout_s", 0, True, (int, float)),
                                        ("backoff_s", 0, False, (int, float)),
                                        ("backoff_max_s", 0, False, (int, float))):
            value = getattr(self, name)
            typed = not isinstance(value, bool) and isinstance(value, kind) and value == value  # not NaN
            if not typed or value < low or (strict and value == low):
                raise ValueError(f"JudgeConfig.{name} must be {'an integer' if kind is int else 'a number'} "
                                 f"{'>' if strict else '>='} {low}, got {value!r}")

    @property
    def api_root(self) -> str:
        root = self.base_url.rstrip("/")
        return root if root.endswith("/v1") else root + "/v1"


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
