"""Generator adapters' cost (issue 23, Must show 3).

1. ``demo``: ``mme3dr evaluate --benchmark demo --profile smoke`` (15 cases, a fresh process each, as a
   user runs it) with each adapter's tiny offline instance, and with ``primitives`` as the baseline
   measured in the same run: the ``cmd:`` example run by ``--python`` (default ``/usr/bin/python3``), the
   tiny ``ShapEPipeline`` (``steps=2,grid_size=32``) and the fixed-OBJ LLaMA-Mesh stand-in. Target: each
   under 120 s on 2 cores.
2. ``overhead``: the ``cmd:`` adapter's cost per batch over the program's own run time. For each of
   ``--batches`` batches of ``--batch-size`` requests, the example generator is run directly
   (``subprocess.run`` with the same ``--requests``/``--out-dir`` arguments) and through
   ``CommandModel.generate`` (request file, process group, log files, output checks, report), alternately;
   the overhead is the difference of the medians. Target: under 0.2 s per batch.

    python benchmarks/adapters_bench.py --work /tmp/adapters-bench            # both
    python benchmarks/adapters_bench.py --work /tmp/adapters-bench --only overhead
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "cmd_generator" / "generate.py"


def demo_runs(work: Path, python: str) -> dict[str, tuple[str, str]]:
    """``{label: (--model, --model-args)}``, building the tiny stand-ins into ``work``."""
    from mme3dr.models.stand_ins import build_fixed_obj_llama_mesh, build_tiny_shap_e

    shap = build_tiny_shap_e(work / "tiny-shap-e")
    llama = build_fixed_obj_llama_mesh(work / "fixed-llama-mesh")
    return {
        "primitives (baseline)": ("primitives", ""),
        "cmd: example": (f"cmd:{python} {EXAMPLE}", ""),
        "shap-e tiny": ("shap-e", f"checkpoint={shap},steps=2,grid_size=32"),
        "llama-mesh fixed-OBJ": ("llama-mesh", f"checkpoint={llama}"),
    }


def run_demo(work: Path, python: str) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    base = None
    print(f"{'adapter':24s} {'wall s':>8s} {'generate s':>11s} {'ok':>6s} {'vs baseline':>12s}")
    for label, (model, args) in demo_runs(work, python).items():
        out = work / ("run-" + label.split()[0].strip(":"))
        cmd = [sys.executable, "-c", "from mme3dr.cli import main; main()", "evaluate", "--model", model,
               "--benchmark", "demo", "--profile", "smoke", "--out", str(out), "--overwrite", "--no-report"]
        if args:
            cmd += ["--model-args", args]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            print(f"{label}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
            continue
        results = json.loads((out / "results.json").read_text())
        samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
        ok = sum(1 for s in samples if s.get("failure") is None)
        base = base or wall
        print(f"{label:24s} {wall:8.1f} {results['timing'].get('generate', float('nan')):11.1f} "
              f"{ok:3d}/{len(samples):<2d} {wall / base:11.2f}x  {'< 120 s' if wall < 120 else '>= 120 s'}")


def run_overhead(work: Path, python: str, batches: int, batch_size: int) -> None:
    from mme3dr.models.command import CommandModel
    from mme3dr.models.protocol import GenerationRequest

    model = CommandModel(f"{python} {EXAMPLE}", batch_size=batch_size)
    direct, wrapped = [], []
    for b in range(batches):
        requests = []
        for i in range(batch_size):
            d = work / "overhead" / "work" / f"b{b:03d}-{i}__0"
            d.mkdir(parents=True, exist_ok=True)
            requests.append(GenerationRequest(f"b{b:03d}-{i}", "a red ball on a blue box", b * 100 + i, 0, d))
        # The program on its own, with the very arguments the adapter passes.
        own = work / "overhead" / f"direct-{b:03d}"
        (own / "out").mkdir(parents=True, exist_ok=True)
        lines = [json.dumps({"id": f"{r.case_id}_0", "prompt": r.prompt, "seed": r.seed, "case_id": r.case_id,
                             "sample_index": 0}) for r in requests]
        (own / "requests.jsonl").write_text("\n".join(lines) + "\n")
        t0 = time.perf_counter()
        subprocess.run([python, str(EXAMPLE), "--requests", str(own / "requests.jsonl"), "--out-dir",
                        str(own / "out")], check=True, capture_output=True)
        direct.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        assets = model.generate(requests)
        wrapped.append(time.perf_counter() - t0)
        assert all(Path(a.path).is_file() and not a.meta for a in assets), assets
    d, w = statistics.median(direct), statistics.median(wrapped)
    print(f"cmd: overhead, {batches} batches of {batch_size}: program alone median {d * 1000:.1f} ms, "
          f"through the adapter {w * 1000:.1f} ms, overhead {(w - d) * 1000:.1f} ms per batch "
          f"({'< 200 ms' if w - d < 0.2 else '>= 200 ms'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--python", default="/usr/bin/python3", help="interpreter of the cmd: example")
    parser.add_argument("--only", choices=("demo", "overhead"))
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    if args.only in (None, "overhead"):
        run_overhead(args.work, args.python, args.batches, args.batch_size)
    if args.only in (None, "demo"):
        run_demo(args.work, args.python)


if __name__ == "__main__":
    main()
