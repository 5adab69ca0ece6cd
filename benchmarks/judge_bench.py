"""Judge client throughput: requests/s at concurrency 1 (baseline) and 8 against the test server.

Builds the tests' tiny random Qwen2.5-VL (ar3d_r1.rewards.stand_ins), serves it with ``transformers serve
--device cpu`` on loopback, and sends the same N distinct requests (one 64 px PNG view each, the
category-match template, 8 new tokens; no response cache) at each concurrency in this run. Prints
seconds, requests/s and the ratio to concurrency 1; then the same requests again through a warm
response cache (what a resumed run pays per question).

    python benchmarks/judge_bench.py --n 48
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from ar3d_r1.rewards.stand_ins import ServedModel, build_tiny_vlm
from mme3dr.judge import Decoding, JudgeConfig, JudgeRequest, ResponseCache, ask_all_sync, load_template


def requests(n: int, seed: int) -> list[JudgeRequest]:
    rng = np.random.default_rng(seed)
    template, decoding = load_template("qwen-category-match"), Decoding(max_tokens=8)
    images = [(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),) for _ in range(n)]
    return [JudgeRequest(template, im, {"prompt": "a chair"}, decoding) for im in images]


def timed(config: JudgeConfig, reqs: list[JudgeRequest], cache=None) -> float:
    t0 = time.perf_counter()
    results = ask_all_sync(config, reqs, cache)
    seconds = time.perf_counter() - t0
    failed = [r.failure for r in results if r.failure is not None]
    assert not failed, failed[:2]
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=48, help="requests per concurrency level")
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--continuous-batching", action="store_true", help="serve with continuous batching")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_vlm(Path(tmp) / "model")
        extra = ["--continuous-batching"] if args.continuous_batching else []
        server = ServedModel(model, Path(tmp) / "serve.log", extra_args=extra)
        try:
            base = None
            warm = JudgeConfig(server.url, server.model, profile="transformers", concurrency=1)
            timed(warm, requests(4, seed=99))  # first requests load kernels; not timed
            for level in args.levels:
                config = JudgeConfig(server.url, server.model, profile="transformers", concurrency=level)
                seconds = timed(config, requests(args.n, seed=level))
                rate = args.n / seconds
                base = base or rate
                print(f"concurrency {level:2d}: {args.n} requests in {seconds:6.2f} s = {rate:6.2f} req/s "
                      f"(x{rate / base:.2f} vs concurrency {args.levels[0]})")
            cache = ResponseCache(Path(tmp) / "cache")
            config = JudgeConfig(server.url, server.model, profile="transformers", concurrency=8)
            reqs = requests(args.n, seed=7)
            timed(config, reqs, cache)
            seconds = timed(config, reqs, cache)
            print(f"cached       : {args.n} requests in {seconds:6.3f} s = {args.n / seconds:8.1f} req/s "
                  "(nothing sent)")
        finally:
            server.close()


if __name__ == "__main__":
    main()
