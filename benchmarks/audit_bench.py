"""Cost of the frame audit against the evaluation's render time (issue 24: under 10 %).

Runs, each in a fresh process as a user would:

1. ``mme3dr evaluate --model MODEL --benchmark BENCH --profile smoke`` cold (empty run folder and render
   cache) at the protocol's 512 px; evaluate runs the audit after scoring and records its seconds in
   ``results.json`` (``timing.audit``);
2. ``mme3dr audit RUN --json`` on the finished run (the stand-alone command: process start, imports and
   the OpenGL context included).

The baseline is the evaluation's render time measured in the same run: ``timing.render_references +
timing.render_generated`` from results.json. Prints both audit costs and their ratios to it.

    python benchmarks/audit_bench.py                      # the demo, primitives
    python benchmarks/audit_bench.py --model oracle --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-c", "from mme3dr.cli import main; main()"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="primitives")
    ap.add_argument("--benchmark", default="demo")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--work", type=Path, default=None, help="Scratch folder (default: a temporary one).")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="mme3dr-audit-bench-"))
    run = work / "run"
    shutil.rmtree(run, ignore_errors=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [*CLI, "evaluate", "--model", args.model, "--benchmark", args.benchmark, "--profile", "smoke",
           "--workers", str(args.workers), "--out", str(run), "--cache-dir", str(run / "cache"),
           "--no-report"]
    subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
    results = json.loads((run / "results.json").read_text())
    timing, audit = results["timing"], results["frame_audit"]
    render = timing["render_references"] + timing["render_generated"]
    t0 = time.perf_counter()
    proc = subprocess.run([*CLI, "audit", str(run), "--json"], check=True, env=env, capture_output=True,
                          text=True)
    standalone = time.perf_counter() - t0
    print(f"{args.model} on {args.benchmark}: {audit['n']} samples audited, flagged={audit['flagged']}")
    print(f"evaluation render time (references + generated): {render:.2f} s")
    inside = timing["audit"]
    print(f"audit inside evaluate: {inside:.2f} s = {inside / render:.1%} of the render time")
    print(f"`mme3dr audit --json` process (start-up + imports included): {standalone:.2f} s = "
          f"{standalone / render:.1%}; it printed {proc.stdout.strip()}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
