"""Shared pieces of the evaluate tests: running the CLI in a subprocess, test adapters, comparisons.

The CLI runs in a fresh process on purpose: it is what users run, a SIGKILL test needs a process to
kill, and torch must be imported before OpenGL in a process (see mme3dr.harness.evaluate), which a long pytest
session that also runs the renderer tests cannot promise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

#: Small, fast settings shared by every run that is compared with another (same config = same results).
FAST = ["--profile", "smoke", "--render-size", "64"]

ADAPTERS = textwrap.dedent(
    '''
    """Adapters that misbehave on purpose (evaluate tests)."""
    import os, time
    from pathlib import Path

    from mme3dr.models.primitives import PrimitivesModel
    from mme3dr.models.protocol import Asset, ModelInfo


    class SlowLogged(PrimitivesModel):
        """Primitives, but each request is logged and sleeps $SLOW_DELAY seconds (resume test)."""

        info = ModelInfo(name="slow-logged", deterministic=True)
        max_batch_size = 1

        def generate_one(self, request):
            with open(os.environ["ADAPTER_LOG"], "a") as f:
                f.write(f"{request.case_id}\\n")
            time.sleep(float(os.environ.get("SLOW_DELAY", "0")))
            return super().generate_one(request)


    class Misbehaving(PrimitivesModel):
        """demo-000 raises, demo-001 hangs, demo-002 writes garbage, demo-003 answers twice."""

        info = ModelInfo(name="misbehaving")
        max_batch_size = 1

        def generate(self, requests):
            (r,) = requests
            if r.case_id == "demo-000":
                raise RuntimeError("CUDA out of memory (simulated)")
            if r.case_id == "demo-001":
                time.sleep(60)
            if r.case_id == "demo-002":
                p = r.output_path("glb")
                p.write_bytes(b"glTF this is not a mesh")
                return [Asset(path=p)]
            assets = super().generate(requests)
            return assets * 2 if r.case_id == "demo-003" else assets


    class AlwaysRaises(PrimitivesModel):
        info = ModelInfo(name="always-raises")

        def generate(self, requests):
            raise ValueError("no GPU")
    '''
)


def write_adapters(directory: Path) -> Path:
    path = Path(directory) / "test_adapters.py"
    path.write_text(ADAPTERS)
    return path


CLI = [sys.executable, "-c", "from mme3dr.cli import main; main()"]


def evaluate_cmd(out: Path, *args: str) -> list[str]:
    return [*CLI, "evaluate", "--out", str(out), *args]


def run_cli(args: list[str], *, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "100", **(env or {})}
    return subprocess.run(args, capture_output=True, text=True, env=full_env, timeout=timeout)


def stable_results(run: Path) -> dict:
    """results.json without the volatile keys (``VOLATILE_RESULT_KEYS``: date, execution, timing, the
    frame audit) and ``git_hash``.

    ``git_hash`` is dropped only because the test runs share a working tree in which HEAD may move
    between the two runs being compared (unrelated commits); it is the same code either way.
    """
    from mme3dr.results import VOLATILE_RESULT_KEYS, strip_volatile

    return strip_volatile(json.loads((run / "results.json").read_text()), (*VOLATILE_RESULT_KEYS, "git_hash"))


def stable_samples(run: Path) -> list[dict]:
    from mme3dr.results import VOLATILE_SAMPLE_KEYS, strip_volatile

    return [strip_volatile(json.loads(line), VOLATILE_SAMPLE_KEYS)
            for line in (run / "samples.jsonl").read_text().splitlines()]


def stable_bytes(run: Path) -> bytes:
    """Canonical bytes of results + samples with volatile keys removed (for byte-for-byte comparisons)."""
    doc = {"results": stable_results(run), "samples": stable_samples(run)}
    return json.dumps(doc, sort_keys=True, indent=1).encode()


def differences(a, b, path: str = "") -> list[str]:
    """Paths where two JSON values differ (for readable assertion messages)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in differences(a.get(k), b.get(k), f"{path}/{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        pairs = enumerate(zip(a, b, strict=True))
        return [d for i, (x, y) in pairs for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def assert_same_run(a: Path, b: Path) -> None:
    """Byte-identical results and samples once volatile keys are removed; the message lists what differs."""
    diff = differences({"results": stable_results(a), "samples": stable_samples(a)},
                       {"results": stable_results(b), "samples": stable_samples(b)})
    assert stable_bytes(a) == stable_bytes(b), "runs differ at:\n" + "\n".join(diff[:20])
