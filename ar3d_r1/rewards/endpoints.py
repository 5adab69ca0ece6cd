"""The reward-server endpoints file the trainer reads (YAML), loaded and checked.

Format (``ar3d_r1/rewards/reward_endpoints.yaml`` is the paper set-up; docs/rewards.md has the vLLM
commands that serve it)::

    version: 1
    cache_dir: ~/.cache/ar3d_r1/reward-replies   # response cache; null: no cache
    hps: {weights_dir: null, device: cuda}        # HPS v2.1 runs in process (keys: HPS_OPTIONS)
    endpoints:
      unifiedreward_think:                        # names: unifiedreward_think, unifiedreward2, qwen_vl
        base_url: http://127.0.0.1:8001/v1
        model: CodeGoat24/UnifiedReward-Think-qwen-7b   # the id the server serves
        profile: vllm                             # openai | transformers | vllm (extra fields allowed)
        concurrency: 32
        timeout_s: 300
        retries: 3
        image_format: jpeg                        # png | jpeg
        decoding: {temperature: 0.0, max_tokens: 2048, seed: 0}
        templates: {unifiedreward-think-geometry: 1}   # optional version pins

Every mistake is reported at load time with the file, the endpoint and the key (unknown keys too, so a
typo is not silently ignored): each value's type and range (``concurrency`` an integer >= 1, ``retries``
>= 0, ``timeout_s`` a number > 0, ``decoding`` a mapping, ``templates`` shipped template versions,
``hps.device`` a torch device string, ...), and decoding fields a profile does not allow, before any
training. :func:`check_endpoints` then asks each server for ``/v1/models`` (a short fixed timeout, not
the endpoint's request timeout) and fails if the model is not served.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import yaml

from mme3dr.judge import PROFILES, Decoding, JudgeClient, JudgeConfig, JudgeRequestError
from mme3dr.judge.images import FORMATS

ENDPOINT_NAMES = ("unifiedreward_think", "unifiedreward2", "qwen_vl")
#: Keys of the ``hps`` block (:func:`ar3d_r1.rewards.hps.hps_from_options`): ``weights_dir``, ``device``
#: (``cuda`` means each process's own GPU), ``batch_size`` and ``arch`` (the open_clip architecture of the
#: checkpoint; ``ViT-H-14`` unless a tiny stand-in is meant).
HPS_OPTIONS = ("weights_dir", "device", "batch_size", "arch")
_JUDGE_KEYS = {f.name for f in fields(JudgeConfig)}
_DECODING_KEYS = {f.name for f in fields(Decoding)} - {"extra"}


class EndpointsError(ValueError):
    """The endpoints file is invalid; the message names the file and the key."""


@dataclass(frozen=True)
class Endpoint:
    """One served reward model: where (``judge``), how to sample (``decoding``), image format, and
    optional template version pins ``{template name: version}``."""

    judge: JudgeConfig
    decoding: Decoding = field(default_factory=Decoding)
    image_format: str = "png"
    templates: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RewardEndpoints:
    """The loaded file: ``endpoints`` by name, ``cache_dir`` (or None), ``hps`` options, ``source``."""

    endpoints: dict[str, Endpoint]
    cache_dir: Path | None = None
    hps: dict = field(default_factory=dict)
    source: str = "<dict>"

    def __getitem__(self, name: str) -> Endpoint:
        try:
            return self.endpoints[name]
        except KeyError:
            known = sorted(self.endpoints)
            raise KeyError(f"{self.source} has no endpoint {name!r}; it has {known}") from None


#: Type and range of every scalar an endpoint may set: ``(kind, lower bound, bound included)``; kind
#: ``int`` (not bool), ``number`` (int or float), ``str``; ``optional`` keys may also be null.
_SCALARS = {
    "base_url": ("str", None, True), "model": ("str", None, True), "profile": ("str", None, True),
    "api_key_env": ("str", None, True), "concurrency": ("int", 1, True), "retries": ("int", 0, True),
    "timeout_s": ("number", 0, False), "connect_timeout_s": ("number", 0, False),
    "backoff_s": ("number", 0, True), "backoff_max_s": ("number", 0, True),
    "temperature": ("number", 0, True), "max_tokens": ("int", 1, True), "top_p": ("number", 0, False),
    "seed": ("int", None, True), "batch_size": ("int", 1, True), "weights_dir": ("str", None, True),
    "device": ("str", None, True), "arch": ("str", None, True),
}
_OPTIONAL = {"api_key_env", "top_p", "seed", "weights_dir", "arch"}
_AT_MOST = {"top_p": 1}


def _scalar(where: str, key: str, value):
    """``value`` of ``key`` (``decoding.max_tokens`` is checked as ``max_tokens``) checked against
    :data:`_SCALARS`; returns it, or raises EndpointsError naming ``where.key``."""
    short = key.rsplit(".", 1)[-1]
    kind, low, inclusive = _SCALARS[short]
    high = _AT_MOST.get(short)
    if value is None and short in _OPTIONAL:
        return None
    ok = not isinstance(value, bool) and {"int": isinstance(value, int),
                                          "number": isinstance(value, int | float),
                                          "str": isinstance(value, str) and value != ""}[kind]
    if ok and low is not None:
        ok = value >= low if inclusive else value > low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        what = {"int": "an integer", "number": "a number", "str": "a non-empty string"}[kind]
        what += f" {'>=' if inclusive else '>'} {low}" if low is not None else ""
        what += f" and <= {high}" if high is not None else ""
        raise EndpointsError(f"{where}.{key} must be {what}, got {value!r}")
    return value


def _mapping(name: str, value) -> dict:
    """``value`` if it is a mapping (None: empty), else EndpointsError naming ``name``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise EndpointsError(f"{name} must be a mapping, got {value!r}")
    return value


def _templates(where: str, raw) -> dict[str, int]:
    """``{template name: version}`` pins, each a shipped template and version."""
    from mme3dr.judge import available_templates

    known, pins = available_templates(), {}
    for name, version in _mapping(f"{where}.templates", raw).items():
        if name not in known:
            raise EndpointsError(f"{where}.templates: no prompt template {name!r}; shipped: {sorted(known)}")
        if isinstance(version, bool) or not isinstance(version, int) or version not in known[name]:
            raise EndpointsError(f"{where}.templates.{name} must be one of the shipped versions "
                                 f"{known[name]}, got {version!r}")
        pins[str(name)] = version
    return pins


def _endpoint(name: str, raw, source: str) -> Endpoint:
    where = f"{source}: endpoints.{name}"
    raw = dict(_mapping(where, raw))
    decoding_raw = _mapping(f"{where}.decoding", raw.pop("decoding", None))
    image_format = raw.pop("image_format", "png")
    templates = _templates(where, raw.pop("templates", None))
    unknown = set(raw) - _JUDGE_KEYS
    if unknown:
        raise EndpointsError(f"{where} has unknown keys {sorted(unknown)}; "
                             f"allowed: {sorted(_JUDGE_KEYS | {'decoding', 'image_format', 'templates'})}")
    for key in ("base_url", "model"):
        if not raw.get(key):
            raise EndpointsError(f"{where}.{key} is required")
    for key, value in raw.items():
        _scalar(where, key, value)
    if not raw["base_url"].startswith(("http://", "https://")):
        raise EndpointsError(f"{where}.base_url must start with http:// or https://")
    if raw.get("profile", "openai") not in PROFILES:
        raise EndpointsError(f"{where}.profile must be one of {sorted(PROFILES)}")
    if image_format not in FORMATS:
        raise EndpointsError(f"{where}.image_format must be one of {sorted(FORMATS)}")
    standard = {k: _scalar(where, f"decoding.{k}", v) for k, v in decoding_raw.items() if k in _DECODING_KEYS}
    extra = {k: v for k, v in decoding_raw.items() if k not in _DECODING_KEYS}
    decoding = Decoding(**standard, extra=extra)
    try:
        judge = JudgeConfig(**raw)
    except ValueError as exc:  # an unusable base_url (or a value out of range), named with its entry
        raise EndpointsError(f"{where}: {exc}") from None
    try:
        decoding.body(judge.profile)
    except ValueError as exc:
        raise EndpointsError(f"{where}.decoding: {exc}") from None
    return Endpoint(judge, decoding, image_format, templates)


def _hps(source: str, raw) -> dict:
    """The ``hps`` block, each value checked; ``device`` must parse as a torch device (``cuda``,
    ``cuda:1``, ``cpu``); whether CUDA is there is checked when HPS loads."""
    hps = _mapping(f"{source}: hps", raw)
    unknown = sorted(set(hps) - set(HPS_OPTIONS))
    if unknown:
        raise EndpointsError(f"{source}: hps has unknown keys {unknown}; allowed: {list(HPS_OPTIONS)}")
    for key, value in hps.items():
        _scalar(f"{source}: hps", key, value)
    if hps.get("device") is not None:
        import torch  # lazy: only a file that names a device pays for it

        try:
            torch.device(hps["device"])
        except RuntimeError as exc:
            raise EndpointsError(f"{source}: hps.device {hps['device']!r} is not a torch device "
                                 f"({str(exc).splitlines()[0]}); use cuda, cuda:N or cpu") from None
    return dict(hps)


def endpoints_from_dict(data: dict, source: str = "<dict>") -> RewardEndpoints:
    """Validate a parsed endpoints mapping (see the module docstring): every key, and every value's type
    and range.

    Raises:
        EndpointsError: the first mistake, naming ``source``, the endpoint and the key.
    """
    if not isinstance(data, dict):
        raise EndpointsError(f"{source}: the top level must be a mapping")
    unknown = set(data) - {"version", "cache_dir", "hps", "endpoints"}
    if unknown:
        raise EndpointsError(f"{source}: unknown top-level keys {sorted(unknown)}")
    if data.get("version", 1) != 1:
        raise EndpointsError(f"{source}: version {data.get('version')} is not supported (expected 1)")
    raw = _mapping(f"{source}: endpoints", data.get("endpoints"))
    bad = sorted(set(raw) - set(ENDPOINT_NAMES))
    if bad:
        raise EndpointsError(f"{source}: unknown endpoint names {bad}; known: {list(ENDPOINT_NAMES)}")
    endpoints = {name: _endpoint(name, body, source) for name, body in raw.items()}
    cache = data.get("cache_dir")
    if cache is not None and not isinstance(cache, str):
        raise EndpointsError(f"{source}: cache_dir must be a path (a string) or null, got {cache!r}")
    cache_dir = Path(cache).expanduser() if cache else None
    return RewardEndpoints(endpoints, cache_dir, _hps(source, data.get("hps")), source)


def load_endpoints(path: str | Path) -> RewardEndpoints:
    """Read and validate an endpoints YAML file.

    Raises:
        FileNotFoundError: no such file.
        EndpointsError: a directory, not UTF-8, invalid YAML or contents (the message names the key).
    """
    path = Path(path)
    if path.is_dir():
        raise EndpointsError(f"{path} is a directory, not an endpoints YAML file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such endpoints file (ar3d_r1/rewards/reward_endpoints.yaml is "
                                "the paper set-up)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise EndpointsError(f"{path}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise EndpointsError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    return endpoints_from_dict(data, str(path))


#: The ``/v1/models`` check's own limits. Not the endpoint's: with ``timeout_s`` 300 and ``retries`` 3 a
#: listener that accepts and never replies would hold the trainer silently for 20 minutes.
CHECK_TIMEOUT_S = 10.0
CHECK_RETRIES = 1


def check_endpoints(endpoints: RewardEndpoints, timeout_s: float = CHECK_TIMEOUT_S,
                    retries: int = CHECK_RETRIES) -> dict[str, str | None]:
    """Ask every server which models it serves: ``{name: None}`` if the configured model is served,
    else ``{name: problem}`` (unreachable, no reply within ``timeout_s`` on any of ``1 + retries``
    attempts, or the model id is not in ``/v1/models``). All endpoints are asked at once, so the check
    takes at most about ``(1 + retries) × timeout_s`` (plus a backoff of at most 1 s)."""

    async def one(ep: Endpoint) -> str | None:
        judge = replace(ep.judge, timeout_s=timeout_s, retries=retries,
                        connect_timeout_s=min(ep.judge.connect_timeout_s, timeout_s),
                        backoff_s=min(ep.judge.backoff_s, 1.0))
        try:
            async with JudgeClient(judge) as client:
                served = await client.list_models()
        except JudgeRequestError as exc:
            return f"{ep.judge.api_root} unreachable: {exc}"
        return None if ep.judge.model in served else f"{ep.judge.model!r} is not served (served: {served})"

    async def run():
        names = list(endpoints.endpoints)
        found = await asyncio.gather(*(one(endpoints.endpoints[n]) for n in names))
        return dict(zip(names, found, strict=True))

    return asyncio.run(run())
