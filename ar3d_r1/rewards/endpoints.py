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

Every mistake is reported at load time with the file and the key (unknown keys too, so a typo is not
silently ignored); decoding fields a profile does not allow are refused here, before any training.
:func:`check_endpoints` then asks each server for ``/v1/models`` and fails if the model is not served.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, fields
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


def _endpoint(name: str, raw: dict, where: str) -> Endpoint:
    if not isinstance(raw, dict):
        raise EndpointsError(f"{where}: endpoints.{name} must be a mapping")
    raw = dict(raw)
    decoding_raw = raw.pop("decoding", {}) or {}
    image_format = raw.pop("image_format", "png")
    templates = raw.pop("templates", {}) or {}
    unknown = set(raw) - _JUDGE_KEYS
    if unknown:
        raise EndpointsError(f"{where}: endpoints.{name} has unknown keys {sorted(unknown)}; "
                             f"allowed: {sorted(_JUDGE_KEYS | {'decoding', 'image_format', 'templates'})}")
    for key in ("base_url", "model"):
        if not raw.get(key):
            raise EndpointsError(f"{where}: endpoints.{name}.{key} is required")
    if not str(raw["base_url"]).startswith(("http://", "https://")):
        raise EndpointsError(f"{where}: endpoints.{name}.base_url must start with http:// or https://")
    if raw.get("profile", "openai") not in PROFILES:
        raise EndpointsError(f"{where}: endpoints.{name}.profile must be one of {sorted(PROFILES)}")
    if image_format not in FORMATS:
        raise EndpointsError(f"{where}: endpoints.{name}.image_format must be one of {sorted(FORMATS)}")
    standard = {k: v for k, v in decoding_raw.items() if k in _DECODING_KEYS}
    extra = {k: v for k, v in decoding_raw.items() if k not in _DECODING_KEYS}
    decoding = Decoding(**standard, extra=extra)
    judge = JudgeConfig(**raw)
    try:
        decoding.body(judge.profile)
    except ValueError as exc:
        raise EndpointsError(f"{where}: endpoints.{name}.decoding: {exc}") from None
    return Endpoint(judge, decoding, image_format, {str(k): int(v) for k, v in templates.items()})


def endpoints_from_dict(data: dict, source: str = "<dict>") -> RewardEndpoints:
    """Validate a parsed endpoints mapping (see the module docstring)."""
    if not isinstance(data, dict):
        raise EndpointsError(f"{source}: the top level must be a mapping")
    unknown = set(data) - {"version", "cache_dir", "hps", "endpoints"}
    if unknown:
        raise EndpointsError(f"{source}: unknown top-level keys {sorted(unknown)}")
    if data.get("version", 1) != 1:
        raise EndpointsError(f"{source}: version {data.get('version')} is not supported (expected 1)")
    raw = data.get("endpoints") or {}
    bad = sorted(set(raw) - set(ENDPOINT_NAMES))
    if bad:
        raise EndpointsError(f"{source}: unknown endpoint names {bad}; known: {list(ENDPOINT_NAMES)}")
    endpoints = {name: _endpoint(name, body, source) for name, body in raw.items()}
    cache = data.get("cache_dir")
    cache_dir = Path(cache).expanduser() if cache else None
    hps = data.get("hps") or {}
    if not isinstance(hps, dict) or set(hps) - set(HPS_OPTIONS):
        bad = sorted(set(hps) - set(HPS_OPTIONS)) if isinstance(hps, dict) else hps
        raise EndpointsError(f"{source}: hps must be a mapping with keys from {list(HPS_OPTIONS)}; got {bad}")
    return RewardEndpoints(endpoints, cache_dir, dict(hps), source)


def load_endpoints(path: str | Path) -> RewardEndpoints:
    """Read and validate an endpoints YAML file.

    Raises:
        FileNotFoundError: no such file.
        EndpointsError: invalid YAML or contents (the message names the key).
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise EndpointsError(f"{path}: not valid YAML: {exc}") from None
    return endpoints_from_dict(data, str(path))


def check_endpoints(endpoints: RewardEndpoints) -> dict[str, str | None]:
    """Ask every server which models it serves: ``{name: None}`` if the configured model is served,
    else ``{name: problem}`` (unreachable, or the model id is not in ``/v1/models``)."""

    async def one(ep: Endpoint) -> str | None:
        try:
            async with JudgeClient(ep.judge) as client:
                served = await client.list_models()
        except JudgeRequestError as exc:
            return f"{ep.judge.api_root} unreachable: {exc}"
        return None if ep.judge.model in served else f"{ep.judge.model!r} is not served (served: {served})"

    async def run():
        names = list(endpoints.endpoints)
        found = await asyncio.gather(*(one(endpoints.endpoints[n]) for n in names))
        return dict(zip(names, found, strict=True))

    return asyncio.run(run())
