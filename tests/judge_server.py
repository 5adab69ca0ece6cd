"""A real OpenAI-compatible server for the judge tests and the judge benchmark.

- :func:`build_tiny_vlm` writes a tiny random Qwen2.5-VL directory offline (design.md §5), and
  :class:`ServedModel` runs ``transformers serve DIR --device cpu`` on a free loopback port: both are
  library code (``ar3d_r1.rewards.stand_ins``, which the paper preset's dry run also serves), re-exported
  here for the tests.
- :class:`CountingProxy` sits in front of it on loopback, counts the requests that reach the server
  (so a test can prove a cached question sent nothing) and can answer the next N requests with an
  HTTP error itself (a 5xx the server would not produce on demand).
- :class:`ScriptedServer` is a real loopback HTTP server that answers each request with the next
  scripted reply, byte for byte: the hostile replies a real model server will not produce on demand
  (an HTTP-date ``Retry-After``, a body that trickles in, an error object in an HTTP 200, ``content:
  null`` with the text in ``reasoning_content``, a 50 MB body, a redirect, ...).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ar3d_r1.rewards.stand_ins import ServedModel, build_tiny_vlm, free_port

__all__ = ["CountingProxy", "Scripted", "ScriptedServer", "ServedModel", "build_tiny_vlm", "chat_reply",
           "free_port"]


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


def chat_reply(content: str | None = "1. yes", finish_reason: str | None = "stop", **message) -> dict:
    """A ``/chat/completions`` reply object with one choice."""
    return {"id": "x", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "finish_reason": finish_reason,
                         "message": {"role": "assistant", "content": content, **message}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


@dataclass
class Scripted:
    """One scripted reply: ``status``, ``body`` (bytes, or a JSON-able value), ``headers``; ``chunks``
    splits the body into that many writes ``chunk_delay_s`` apart (a trickling body)."""

    body: object = field(default_factory=chat_reply)
    status: int = 200
    headers: dict = field(default_factory=dict)
    chunks: int = 1
    chunk_delay_s: float = 0.0
    content_type: str | None = "application/json"
    content_length: bool = True  # False: no Content-Length, the body ends when the connection closes


class ScriptedServer:
    """A loopback HTTP/1.1 server answering request k with ``script[k]`` (the last one repeats).

    ``times`` holds the monotonic arrival time of each request, ``paths`` its path.
    """

    def __init__(self, script: list[Scripted]):
        server = self
        self.script, self.times, self.paths = list(script), [], []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.times.append(time.monotonic())
                server.paths.append(self.path)
                k = len(server.times) - 1
                reply = server.script[min(k, len(server.script) - 1)]
                body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                if reply.content_type:
                    self.send_header("Content-Type", reply.content_type)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                if reply.content_length:
                    self.send_header("Content-Length", str(len(body)))
                else:
                    self.close_connection = True
                self.end_headers()
                step = max(1, -(-len(body) // reply.chunks))
                try:
                    for i in range(0, len(body), step):
                        self.wfile.write(body[i:i + step])
                        self.wfile.flush()
                        if reply.chunk_delay_s:
                            time.sleep(reply.chunk_delay_s)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up: expected
                    pass

            do_GET = do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
