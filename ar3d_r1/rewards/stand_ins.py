"""Tiny stand-ins of the paper's reward models, built offline: for tests and ``ar3d-r1 train --dry-run``.

- :func:`build_tiny_vlm`: a tiny random Qwen2.5-VL (2 text layers, hidden 16, a 2-layer vision tower; a
  ByteLevel BPE trained here on judge-reply wording), from the same builders as the tiny policy
  (:mod:`ar3d_r1.policy.tiny`; design.md §5).
- :class:`ServedModel`: ``transformers serve DIR --device cpu`` on a free loopback port, as a child
  process: a real OpenAI-compatible server, spoken to through the real client (``mme3dr.judge``).
- :func:`build_tiny_hps`: a tiny random open_clip model (``mme3dr-tiny-clip``) saved as HPS v2.1 saves
  its checkpoint (``{"state_dict": ...}`` in half precision), so ``HPSReward`` loads it through the real
  weights resolution.
- :func:`reward_stand_ins`: all of these for a dry run: the built models, a few captions, an endpoints
  file naming the served model for every endpoint, and the server, stopped on exit.

A random model's replies are random text: they reach the client and fail to parse, so every served
reward is a recorded failure (NaN + reason) and the config's ``malformed_reward`` rule scores it. Nothing
here writes a reply or a score in place of the server's.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

#: What the tiny reward VLM's BPE is trained on (reply wording, so judge phrases tokenise compactly).
JUDGE_CORPUS = ["Alignment Score (1-5): 4", "Coherence Score (1-5): 3.5", "Category Match: yes",
                "1. yes 2. no", "a red chair with four legs", "You are a helpful assistant."]

#: The dry run's captions (in the TRELLIS caption style of the paper's training set, which is not
#: released; paper-facts.md "Training set-up").
DRY_RUN_CAPTIONS = (
    "A wooden table with four legs and a rectangular top.",
    "A white chess pawn.",
    "An office chair with five legs.",
    "A stylised low-poly frog.",
)


def build_tiny_vlm(out_dir: str | Path, seed: int = 0) -> Path:
    """Write a tiny random Qwen2.5-VL (model, tokenizer, processor, chat template) to ``out_dir``; return it.

    Images are kept between 56² and 4·56² px (a handful of vision tokens each). The global torch RNG is
    left as it was; the same ``seed`` gives the same weights.
    """
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from ar3d_r1.policy.tiny import build_bpe_tokenizer, tiny_processor, tiny_qwen2_5_vl_config

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = build_bpe_tokenizer(JUDGE_CORPUS * 8, vocab_size=400)
    config = tiny_qwen2_5_vl_config(tok, hidden_size=16, num_layers=2, vision_depth=2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(out)
    tiny_processor(tok, max_pixels=56 * 56 * 4).save_pretrained(out)
    return out


def build_tiny_hps(weights_dir: str | Path, seed: int = 0) -> Path:
    """Write a random ``mme3dr-tiny-clip`` checkpoint in HPS v2.1's format to
    ``<weights_dir>/hps-v2.1/HPS_v2.1_compressed.pt``; returns ``weights_dir``. Load it with
    ``hps_from_options({"weights_dir": weights_dir, "arch": "mme3dr-tiny-clip"})``."""
    import torch

    from ar3d_r1.rewards.hps import HPS_V21
    from mme3dr.features.smoke import tiny_clip_model

    state = {k: v.half() for k, v in tiny_clip_model(seed=seed).state_dict().items()}
    path = Path(weights_dir) / HPS_V21.key / HPS_V21.files[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state, "epoch": 0}, path)
    return Path(weights_dir)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServedModel:
    """``transformers serve`` on loopback as a child process; ``url`` is its root, ``model`` its id (the
    served directory's path, which ``transformers serve`` requires requests to name).

    Raises RuntimeError with the server's log tail when it exits early or does not answer ``/health``
    within ``startup_s``. :meth:`close` stops it (terminate, then kill after 15 s).
    """

    def __init__(self, model_dir: str | Path, log_path: str | Path, startup_s: float = 180.0,
                 extra_args: list[str] | tuple[str, ...] = ()):
        self.model, self.port = str(model_dir), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, "-c", "from transformers.cli.transformers import main; main()", "serve",
               self.model, "--host", "127.0.0.1", "--port", str(self.port), "--device", "cpu",
               "--default-seed", "0", *extra_args]
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (held by the child process until close())
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + startup_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.close()
                raise RuntimeError(f"transformers serve exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.close()
        raise RuntimeError(
            f"transformers serve did not answer /health in {startup_s:g} s:\n{self.log_tail()}")

    def log_tail(self, n: int = 4000) -> str:
        return self.log_path.read_bytes()[-n:].decode("utf-8", "replace") if self.log_path.exists() else ""

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self._log.close()


@dataclass
class RewardStandIns:
    """What :func:`reward_stand_ins` made: the endpoints file and captions file to train with, and the
    running server."""

    reward_servers: Path
    prompts_file: Path
    server: ServedModel


def stand_in_endpoints(url: str, model: str, hps_weights: str | Path, cache_dir: str | Path) -> dict:
    """An endpoints mapping (``ar3d_r1.rewards.endpoints`` format) that sends every served reward to
    ``model`` at ``url`` (profile ``transformers``, greedy, 16 new tokens) and loads the tiny HPS."""
    body = {"base_url": url, "model": model, "profile": "transformers", "concurrency": 4,
            "timeout_s": 120, "retries": 1, "backoff_s": 0.1, "image_format": "png",
            "decoding": {"temperature": 0.0, "max_tokens": 16, "seed": 0}}
    return {"version": 1, "cache_dir": str(cache_dir),
            "hps": {"weights_dir": str(hps_weights), "device": "cpu", "arch": "mme3dr-tiny-clip"},
            "endpoints": {name: dict(body) for name in ("unifiedreward_think", "unifiedreward2", "qwen_vl")}}


@contextmanager
def reward_stand_ins(root: str | Path, seed: int = 0, startup_s: float = 180.0) -> Iterator[RewardStandIns]:
    """Build the tiny reward VLM and tiny HPS under ``root``, write ``captions.txt``
    (:data:`DRY_RUN_CAPTIONS`) and ``reward_servers.yaml``, start ``transformers serve`` on the VLM;
    yield, then stop the server.

    The response cache is ``root/reward-replies``, emptied first, so every question reaches the server.
    """
    import shutil

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    vlm = build_tiny_vlm(root / "reward-vlm", seed=seed)
    hps = build_tiny_hps(root / "hps-weights", seed=seed)
    cache = root / "reward-replies"
    shutil.rmtree(cache, ignore_errors=True)
    captions = root / "captions.txt"
    captions.write_text("\n".join(DRY_RUN_CAPTIONS) + "\n", encoding="utf-8")
    server = ServedModel(vlm, root / "reward-vlm-serve.log", startup_s=startup_s)
    try:
        servers = root / "reward_servers.yaml"
        servers.write_text(yaml.safe_dump(stand_in_endpoints(server.url, server.model, hps, cache),
                                          sort_keys=False), encoding="utf-8")
        yield RewardStandIns(servers, captions, server)
    finally:
        server.close()
