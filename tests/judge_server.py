"""A real OpenAI-compatible server for the judge tests and the judge benchmark.

- :func:`build_tiny_vlm` writes a tiny random Qwen2.5-VL directory offline (design.md §5): a
  ByteLevel BPE tokenizer trained here with ``tokenizers``, ``Qwen2_5_VLConfig`` with 2 layers and
  hidden size 16, a Qwen2-VL image processor limited to small images, and a Qwen-style chat template.
  (Issue 15's ``ar3d_r1.policy.tiny.build_tiny_policy`` builds a similar model; the two could share one
  builder once both are on main.)
- :class:`ServedModel` runs ``transformers serve DIR --device cpu`` on a free loopback port.
- :class:`CountingProxy` sits in front of it on loopback, counts the requests that reach the server
  (so a test can prove a cached question sent nothing) and can answer the next N requests with an
  HTTP error itself (a 5xx the server would not produce on demand).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
           "<|image_pad|>", "<|video_pad|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant."
    "<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part or 'image_url' in part %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif 'text' in part %}{{ part['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_CORPUS = ["Alignment Score (1-5): 4", "Coherence Score (1-5): 3.5", "Category Match: yes",
           "1. yes 2. no", "a red chair with four legs", "You are a helpful assistant."]


def build_tiny_vlm(out_dir: Path, seed: int = 0) -> Path:
    """Write a tiny random Qwen2.5-VL (model, tokenizer, processor, chat template) to ``out_dir``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(_CORPUS * 8, trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    ids = {t: bpe.token_to_id(t) for t in SPECIAL}
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>",
                                        pad_token="<|endoftext|>", additional_special_tokens=SPECIAL[1:])
    # 56² px is 4 merged patches: images cost the tiny model almost nothing.
    images = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=56 * 56 * 4)
    processor = Qwen2_5_VLProcessor(image_processor=images, tokenizer=tokenizer,
                                    video_processor=Qwen2VLVideoProcessor(), chat_template=CHAT_TEMPLATE)
    config = Qwen2_5_VLConfig(
        text_config=dict(vocab_size=bpe.get_vocab_size(), hidden_size=16, intermediate_size=32,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=4096,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                          "mrope_section": [2, 1, 1]},
                         bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"],
                         pad_token_id=ids["<|endoftext|>"]),
        vision_config=dict(depth=2, hidden_size=16, intermediate_size=32, num_heads=2, out_hidden_size=16,
                           fullatt_block_indexes=[1], window_size=112, patch_size=14, spatial_merge_size=2,
                           temporal_patch_size=2),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServedModel:
    """``transformers serve`` on loopback as a child process; ``url`` is its root, ``model`` its id."""

    def __init__(self, model_dir: Path, log_path: Path, startup_s: float = 180.0,
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


class CountingProxy:
    """A loopback HTTP proxy to ``upstream`` that counts forwarded requests per path.

    ``fail_next(n, status)`` makes the proxy itself answer the next ``n`` requests with ``status``
    (nothing is forwarded or counted for them); ``failed`` counts those answers.
    """

    def __init__(self, upstream: str):
        host, port = upstream.removeprefix("http://").split(":")
        proxy = self
        self.counts: dict[str, int] = {}
        self.failed = 0
        self.delay_s = 0.0  # sleep before forwarding each request (to kill a run mid-way)
        self._fail: list[int] = []
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with proxy._lock:
                    injected = proxy._fail.pop(0) if proxy._fail else None
                    if injected is not None:
                        proxy.failed += 1
                    else:
                        proxy.counts[self.path] = proxy.counts.get(self.path, 0) + 1
                if proxy.delay_s and injected is None:
                    time.sleep(proxy.delay_s)
                if injected is not None:
                    payload = json.dumps({"error": f"injected HTTP {injected} by the test proxy"}).encode()
                    self.send_response(injected)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(host, int(port), timeout=600)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def count(self, path: str = "/v1/chat/completions") -> int:
        with self._lock:
            return self.counts.get(path, 0)

    def fail_next(self, n: int, status: int = 503) -> None:
        with self._lock:
            self._fail = [status] * n

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
