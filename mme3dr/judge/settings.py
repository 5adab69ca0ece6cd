"""The judge client's settings: where and how to ask (``JudgeConfig``), the decoding sent with every
request (``Decoding``), and which sampling fields each server profile accepts.

Light module (standard library only), so a config can be built and checked before anything runs: an
unusable server URL is refused when the config is made (:func:`url_problem`), not after an evaluation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["MAX_REPLY_BYTES", "PROFILES", "STANDARD_FIELDS", "Decoding", "JudgeConfig", "url_problem"]

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
