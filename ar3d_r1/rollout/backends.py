"""Rollout generation behind one interface: HF ``generate`` in process (default) or a served engine.

A backend turns token-id prompts into sampled completions (token ids), one per prompt, each drawn with
its own seed::

    backend.generate(prompt_ids: list[list[int]], settings: SamplingSettings, seeds: list[int])
        -> list[list[int]]      # each cut after its first stop token (kept), or at max_new_tokens
    backend.sync_weights(model)  # make the engine sample from the policy's current weights

**Per-sample seeds.** A completion depends only on its prompt, the weights and its seed, never on
which other prompts share the batch or on which process drew it. This is what lets a group of G samples
be split over processes and still equal a one-process run (:mod:`ar3d_r1.engine.distributed`), and what
makes a resumed run draw the samples the uninterrupted one drew. vLLM does the same: a request's
``seed`` gives it a private generator. In process, :class:`SeededSampler` samples by the Gumbel-max trick
(argmax(log p + g), g ~ Gumbel(0, 1) i.i.d., is a draw from softmax; Gumbel 1954, as used by vLLM's
sampler in its exponential-race form) with one ``torch.Generator`` per row.

Backends:

- :class:`HFGenerateBackend`: ``model.generate`` on the policy itself; weights are always in sync.
- :class:`CompletionsBackend`: ``POST /v1/completions`` of an OpenAI-compatible server through the
  project's HTTP client (:class:`mme3dr.judge.JudgeClient`: concurrency, timeouts, retries with reasons).
  Profile ``"vllm"``: token-id prompts (``"prompt": [ids]``), ``top_k``, ``stop_token_ids`` and
  ``return_token_ids`` (completion ids come back exactly; vLLM >= 0.10.2). Profile ``"transformers"``
  (``transformers serve``, used by the tests): it takes text prompts only and returns text only, so the
  prompt ids are decoded (refused unless they re-encode to exactly the same ids) and the completion text
  is re-encoded; sampling settings go as a ``generation_config`` JSON (it answers HTTP 422 to ``top_k``).
  Weight synchronisation to a vLLM server: :class:`VLLMWeightSync` (docs/training.md, "At scale").
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingSettings:
    """What every backend samples with: ``temperature`` > 0, ``top_k`` (0: off), ``top_p`` (1: off),
    ``max_new_tokens``, and ``stop_ids`` (generation stops after the first of them, which is kept)."""

    max_new_tokens: int
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    stop_ids: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0 for sampling, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


def sample_seed(seed: int, step: int, turn: int, row: int) -> int:
    """The seed of one sample: run ``seed``, optimizer ``step``, rollout ``turn`` (1 or 2) and its row in
    the global batch; 63-bit, from sha256 so nearby inputs give unrelated streams."""
    digest = hashlib.sha256(f"{seed}:{step}:{turn}:{row}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def cut_at_stop(ids: list[int], stops) -> list[int]:
    """``ids`` up to and including the first stop id (all of them when none occurs)."""
    stop_set = set(stops)
    return ids[: next((j + 1 for j, t in enumerate(ids) if t in stop_set), len(ids))]


class SeededSampler:
    """A logits processor that samples each row from its own generator (Gumbel-max; module docstring).

    Put it last, after the temperature / top-k / top-p warpers, and decode greedily: the argmax of the
    warped scores plus Gumbel noise is a draw from their softmax (``-inf`` entries are never drawn).
    ``seeds``: one int per row of the batch.
    """

    def __init__(self, seeds: list[int]) -> None:
        self.seeds = [int(s) for s in seeds]
        self.generators: list[torch.Generator] | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.generators is None:
            if scores.shape[0] != len(self.seeds):
                raise ValueError(f"{scores.shape[0]} rows but {len(self.seeds)} seeds")
            self.generators = [torch.Generator(device=scores.device).manual_seed(s) for s in self.seeds]
        u = torch.stack([torch.rand(scores.shape[1], generator=g, device=scores.device, dtype=torch.float64)
                         for g in self.generators])
        gumbel = -torch.log(-torch.log(u.clamp_min(1e-300)))
        return scores.double() + gumbel


class HFGenerateBackend:
    """``model.generate`` with per-row seeds; ``pad_id`` left-pads the batch; ``eos_id`` (the
    tokenizer's) closes a grammar-constrained completion."""

    name = "hf"

    def __init__(self, model, pad_id: int, eos_id: int | None = None) -> None:
        self.model, self.pad_id, self.eos_id = model, int(pad_id), eos_id

    def sync_weights(self, model) -> None:
        self.model = model  # generation runs on the policy object itself

    @torch.no_grad()
    def generate(self, prompt_ids: list[list[int]], settings: SamplingSettings, seeds: list[int], *,
                 grammar=None) -> list[list[int]]:
        """``grammar``: ``(vocab, n_tokens)`` to sample through the mesh grammar
        (:class:`ar3d_r1.policy.generation.MeshGrammarLogitsProcessor`, applied before the warpers)."""
        from transformers import (
            GenerationConfig,
            LogitsProcessorList,
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        if len(seeds) != len(prompt_ids):
            raise ValueError(f"{len(prompt_ids)} prompts but {len(seeds)} seeds")
        if not prompt_ids:
            return []
        width = max(len(p) for p in prompt_ids)
        ids = torch.full((len(prompt_ids), width), self.pad_id, dtype=torch.long)
        att = torch.zeros_like(ids)
        for i, p in enumerate(prompt_ids):
            ids[i, width - len(p):] = torch.as_tensor(p)
            att[i, width - len(p):] = 1
        warpers = []
        if grammar is not None:
            from ar3d_r1.policy.generation import MeshGrammarLogitsProcessor

            vocab, n_tokens = grammar
            eos = self.eos_id if self.eos_id is not None else min(set(settings.stop_ids) - {vocab.end_id})
            warpers.append(MeshGrammarLogitsProcessor(vocab, n_tokens, width, settings.max_new_tokens, eos))
        warpers.append(TemperatureLogitsWarper(settings.temperature))
        if settings.top_k:
            warpers.append(TopKLogitsWarper(settings.top_k))
        if settings.top_p < 1.0:
            warpers.append(TopPLogitsWarper(settings.top_p))
        processors = LogitsProcessorList([*warpers, SeededSampler(seeds)])
        gen = GenerationConfig(do_sample=False, max_new_tokens=settings.max_new_tokens,
                               eos_token_id=list(settings.stop_ids) or None, pad_token_id=self.pad_id)
        device = self.model.device
        out = self.model.generate(input_ids=ids.to(device), attention_mask=att.to(device),
                                  generation_config=gen, logits_processor=processors)
        return [cut_at_stop(row, settings.stop_ids) for row in out[:, width:].tolist()]


class CompletionsBackend:
    """``POST /v1/completions`` of an OpenAI-compatible server (module docstring), one request a sample.

    ``config``: a :class:`mme3dr.judge.JudgeConfig` (``base_url``, served ``model``, ``profile``
    ``"vllm"`` or ``"transformers"``, concurrency, timeouts, retries). ``tokenizer``: the policy's (for
    the ``transformers`` profile's text round trip). A request that fails after its retries raises
    :class:`mme3dr.judge.JudgeRequestError` with the reason of every attempt: a rollout cannot go on with
    a hole in its batch. ``transformers serve`` seeds its one global generator per request, so its
    concurrency must be 1 for the seeds to mean anything.
    """

    name = "completions"

    def __init__(self, config, tokenizer) -> None:
        if config.profile not in ("vllm", "transformers"):
            raise ValueError(
                f"rollout server profile must be 'vllm' or 'transformers', got {config.profile!r}")
        self.config, self.tokenizer = config, tokenizer
        self.weight_sync = None  # a VLLMWeightSync, when the trainer should push weights to the server
        self.last_bodies: list[dict] = []  # the request bodies of the last generate() (logged, tested)

    def sync_weights(self, model) -> None:
        if self.weight_sync is None:
            raise RuntimeError(
                "the rollout server samples from the weights it loaded, and this backend has no weight sync: "
                "set backend.weight_sync = VLLMWeightSync(url) (a vLLM server started with "
                "--weight-transfer-config, docs/training.md 'At scale'), or use the 'hf' backend")
        self.weight_sync.push(model)

    def request_body(self, prompt: list[int], settings: SamplingSettings, seed: int) -> dict:
        """The JSON body (without ``model``) for one sample, as sent."""
        if self.config.profile == "vllm":
            return {"prompt": list(prompt), "max_tokens": settings.max_new_tokens,
                    "temperature": settings.temperature, "top_p": settings.top_p,
                    "top_k": settings.top_k or -1, "seed": seed, "stop_token_ids": list(settings.stop_ids),
                    "return_token_ids": True, "skip_special_tokens": False}
        text = self.tokenizer.decode(prompt, skip_special_tokens=False)
        again = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if list(again) != list(prompt):
            raise ValueError(
                "this prompt does not survive the text round trip that `transformers serve` needs (its "
                "/v1/completions takes text only): decode + encode gives other ids; use a vLLM server "
                "(profile 'vllm', token-id prompts)")
        gen = {"do_sample": True, "temperature": settings.temperature, "top_k": settings.top_k or None,
               "top_p": settings.top_p, "max_new_tokens": settings.max_new_tokens,
               "eos_token_id": list(settings.stop_ids), "pad_token_id": self.tokenizer.pad_token_id}
        return {"prompt": text, "max_tokens": settings.max_new_tokens, "seed": seed,
                "generation_config": json.dumps(gen)}

    def completion_ids(self, reply: dict, settings: SamplingSettings) -> list[int]:
        """The sampled ids of a reply: vLLM's ``token_ids`` (with the stop id it reports as
        ``stop_reason`` when absent), or the re-encoded text plus the stop token for ``transformers``."""
        choice = reply["choices"][0]
        if self.config.profile == "vllm":
            ids = [int(t) for t in choice["token_ids"]]
            stop = choice.get("stop_reason")
            stopped = choice.get("finish_reason") == "stop" and isinstance(stop, int)
            if stopped and (not ids or ids[-1] != stop):
                ids.append(stop)
            return cut_at_stop(ids, settings.stop_ids)
        ids = list(self.tokenizer(choice["text"], add_special_tokens=False)["input_ids"])
        if choice.get("finish_reason") == "stop" and not (ids and ids[-1] in settings.stop_ids):
            # the server decodes with skip_special_tokens: a special stop (eos) is dropped from the text
            specials = [s for s in settings.stop_ids if s in self.tokenizer.all_special_ids]
            if specials:
                ids.append(specials[0])
        return cut_at_stop(ids, settings.stop_ids)

    def generate(self, prompt_ids: list[list[int]], settings: SamplingSettings, seeds: list[int], *,
                 grammar=None) -> list[list[int]]:
        from mme3dr.judge import JudgeClient

        if grammar is not None:
            raise ValueError("grammar-constrained sampling (config.constrain) runs in process only: use "
                             "rollout_backend 'hf'")
        if len(seeds) != len(prompt_ids):
            raise ValueError(f"{len(prompt_ids)} prompts but {len(seeds)} seeds")
        bodies = [self.request_body(p, settings, s) for p, s in zip(prompt_ids, seeds, strict=True)]
        self.last_bodies = bodies

        async def run():
            async with JudgeClient(self.config) as client:
                return await asyncio.gather(*(client.post("/completions", {"model": self.config.model, **b})
                                              for b in bodies))

        replies = _run_sync(run())
        return [self.completion_ids(r, settings) for r in replies]


def _run_sync(coro):
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


class VLLMWeightSync:
    """Push the policy's weights into a running vLLM server, with trl 1.16's client (trl is in the
    ``dev`` extra; install it in the training environment for this).

    The server must be started with ``VLLM_SERVER_DEV_MODE=1 vllm serve DIR --weight-transfer-config
    '{"backend": "nccl"}'``. :meth:`push` joins vLLM's NCCL weight-transfer group once
    (``POST /init_weight_transfer_engine``; the trainer is rank 0, the vLLM workers follow), then per
    sync: ``/start_weight_update``, ``/update_weights`` with every parameter's (name, dtype, shape) while
    the tensors are broadcast over NCCL, ``/finish_weight_update``, and ``/reset_prefix_cache`` (cached
    KV blocks were computed by the old weights). Needs a CUDA device on the trainer's main process; not
    exercised by this repository's CPU tests (no vLLM here), see docs/training.md.
    """

    def __init__(self, base_url: str, *, device: str = "cuda:0", group_port: int = 51216) -> None:
        self.base_url, self.device, self.group_port = base_url, device, group_port
        self.client = None

    def push(self, model) -> None:
        from trl.generation.vllm_client import VLLMClient  # lazy: trl is optional

        if self.client is None:
            self.client = VLLMClient(base_url=self.base_url, group_port=self.group_port)
            self.client.init_communicator(device=self.device)
        with self.client.weight_update():
            self.client.update_model_params(model)
        self.client.reset_prefix_cache()


def make_backend(config, model, tokenizer):
    """The backend a :class:`ar3d_r1.config.HiGRPOConfig` asks for: ``rollout_backend`` ``"hf"`` (the
    policy itself) or ``"server"`` (``rollout_url``, ``rollout_model``, ``rollout_profile``; a vLLM server
    gets a :class:`VLLMWeightSync` when ``rollout_weight_sync``)."""
    if config.rollout_backend == "hf":
        return HFGenerateBackend(model, tokenizer.pad_token_id, tokenizer.eos_token_id)
    if not (config.rollout_url and config.rollout_model):
        raise ValueError("rollout_backend 'server' needs --rollout_url (the server root) and --rollout_model "
                         "(the id it serves, as GET /v1/models lists it)")
    from mme3dr.judge import JudgeConfig

    serial = config.rollout_profile == "transformers"  # one global generator there: seeds need order
    backend = CompletionsBackend(JudgeConfig(config.rollout_url, config.rollout_model,
                                             profile=config.rollout_profile, concurrency=1 if serial else 16,
                                             timeout_s=600.0), tokenizer)
    if config.rollout_weight_sync and config.rollout_profile == "vllm":
        backend.weight_sync = VLLMWeightSync(config.rollout_url)
    return backend
