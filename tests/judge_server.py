"""A real OpenAI-compatible server for the judge tests and the judge benchmark.

- :func:`build_tiny_vlm` writes a tiny random Qwen2.5-VL directory offline (design.md §5), and
  :class:`ServedModel` runs ``transformers serve DIR --device cpu`` on a free loopback port: both are
  library code (``ar3d_r1.rewards.stand_ins``, which the paper preset's dry run also serves), re-exported
  here for the tests.
- :class:`CountingProxy` sits in front of it on loopback, counts the requests that reach the server
  (so a test can prove a cached question sent nothing) and can answer the next N requests with an
  HTTP error itself (a 5xx the server would not produce on demand).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ar3d_r1.rewards.stand_ins import ServedModel, build_tiny_vlm, free_port

__all__ = ["CountingProxy", "ServedModel", "build_tiny_vlm", "free_port"]


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
