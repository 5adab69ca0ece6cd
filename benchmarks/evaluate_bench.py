"""Wall time of `mme3dr evaluate` per stage, cold and cached (issue 5, Must show 7).

Builds a synthetic MME-3DR v1 set-up in --work (deterministic, ~50k-face vertex-coloured meshes):
a Toys4K mesh folder laid out like the real data (``<category>/<name>/<name>.glb``) with a TRELLIS-style
``Toys4k.csv``, and a folder of "generated" assets named by case id for the ``folder`` adapter. Then it
runs, each in a fresh process as a user would:

1. cold: ``mme3dr evaluate --model folder:GEN --benchmark mme3dr-v1 --profile smoke`` into an empty
   run directory and render cache;
2. cached: the same command again with ``--resume`` (every sample, render and feature is found).

and prints the per-stage seconds that each run records in results.json (``timing``), plus the process
wall time. ``--cases N`` runs the first N cases (a documented subset; the run is then marked
``--limit N``), for machines where the full run does not fit.

    python benchmarks/evaluate_bench.py --cases 249 --workers 2
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath

import numpy as np
import trimesh


def torus_mesh(k: int, faces: int) -> trimesh.Trimesh:
    """A deterministic, vertex-coloured torus of about ``faces`` triangles, shaped by ``k``."""
    minor = 100
    major = max(3, faces // (2 * minor))
    mesh = trimesh.creation.torus(major_radius=1.0, minor_radius=0.25 + 0.02 * (k % 7),
                                  major_sections=major, minor_sections=minor)
    mesh.apply_scale([1.0, 0.6 + 0.05 * (k % 9), 1.0])
    rng = np.random.default_rng(k)
    colour = np.append(rng.integers(40, 230, size=3), 255).astype(np.uint8)
    colours = np.tile(colour, (len(mesh.vertices), 1))
    mesh.visual = trimesh.visual.ColorVisuals(mesh=mesh, vertex_colors=colours)
    return mesh


def build(work: Path, n: int, faces: int) -> tuple[Path, Path, Path]:
    """The first ``n`` cases' meshes (made once per face count, kept across runs) and their captions CSV
    (rewritten every time: it decides which cases the run has)."""
    from mme3dr.benchmark.manifest import load_manifest

    toys, gen = work / f"toys4k-{faces}", work / f"generated-{faces}"
    captions = work / f"Toys4k-{n}.csv"
    gen.mkdir(parents=True, exist_ok=True)
    cases = load_manifest("mme3dr-v1").cases[:n]
    with open(captions, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sha256", "file_identifier", "captions"])
        for k, case in enumerate(cases):
            cat, name = PurePosixPath(case.file_identifier).parts[:2]
            writer.writerow([hashlib.sha256(name.encode()).hexdigest(), case.file_identifier,
                             json.dumps([f"A detailed toy {case.toys4k_category}, seen from all sides.",
                                         f"A toy {case.toys4k_category}.", case.toys4k_category])])
            ref, out = toys / cat / name / f"{name}.glb", gen / f"{case.case_id}.glb"
            for path, shape in ((ref, k), (out, k + 1000)):
                if not path.is_file():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_suffix(".tmp")
                    tmp.write_bytes(trimesh.exchange.gltf.export_glb(trimesh.Scene(torus_mesh(shape, faces))))
                    tmp.replace(path)
    return toys, gen, captions


def run(cmd: list[str]) -> tuple[float, float, float]:
    """Run one evaluate; (wall seconds, user CPU seconds, system CPU seconds) of it and its workers."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the run and every worker it waited for
    if proc.returncode != 0:
        sys.exit(f"evaluate failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=249, help="first N cases of mme3dr-v1 (249 = all)")
    ap.add_argument("--faces", type=int, default=50_000, help="triangles per mesh (default 50,000)")
    ap.add_argument("--workers", type=int, default=2, help="render worker processes (default 2)")
    ap.add_argument("--render-size", type=int, default=None, help="override the 512 px render size")
    ap.add_argument("--backend", choices=["auto", "egl"], default="auto",
                    help="renderer backend (moderngl on headless EGL, the only one)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/mme3dr-bench/evaluate"), help="scratch directory")
    args = ap.parse_args()

    t0 = time.perf_counter()
    toys, gen, captions = build(args.work, args.cases, args.faces)
    print(f"built {args.cases} reference + {args.cases} generated meshes of ~{args.faces:,} faces "
          f"in {time.perf_counter() - t0:.1f} s")
    out = args.work / f"run-{args.cases}"
    if out.exists():
        import shutil

        shutil.rmtree(out)
    cmd = [sys.executable, "-c", "from mme3dr.cli import main; main()", "evaluate",
           "--model", f"folder:{gen}", "--benchmark", "mme3dr-v1", "--profile", "smoke",
           "--toys4k", str(toys), "--toys4k-kind", "folder", "--captions", str(captions),
           "--workers", str(args.workers), "--out", str(out), "--no-report"]
    if args.cases < 249:
        cmd += ["--limit", str(args.cases)]
    if args.render_size:
        cmd += ["--render-size", str(args.render_size)]
    if args.backend != "auto":
        cmd += ["--backend", args.backend]
    rows = []
    load0 = os.getloadavg()[0]
    for label, extra in (("cold", []), ("cached (--resume)", ["--resume"])):
        wall, user, system = run(cmd + extra)
        res = json.loads((out / "results.json").read_text())
        rows.append((label, wall, res["timing"], res["execution"]["shards"][0]["counters"], user, system))
    stages = ["setup", "generate", "render_references", "render_generated", "features", "metrics"]
    print(f"load average (1 min) before the runs {load0:.1f}, after {os.getloadavg()[0]:.1f}")
    print(f"\n{args.cases} cases, {args.workers} render workers, smoke profile, "
          f"{args.render_size or 512} px, {os.cpu_count()} CPUs")
    print("| run | " + " | ".join(stages) + " | process wall |")
    print("|---|" + "---:|" * (len(stages) + 1))
    for label, wall, timing, *_ in rows:
        cells = " | ".join(f"{timing.get(s, 0):.1f} s" for s in stages)
        print(f"| {label} | {cells} | {wall:.1f} s |")
    cores = os.cpu_count() or 1
    for label, wall, _, counters, user, system in rows:
        print(f"{label}: {counters}")
        # How busy the cores were: CPU seconds of the run and its workers over (cores x wall).
        print(f"{label}: CPU {user:.1f} s user + {system:.1f} s system = "
              f"{(user + system) / (cores * wall):.0%} of {cores} cores over the wall time")
    cold, cached = rows[0][1], rows[1][1]
    print(f"cached / cold wall time: {cached / cold:.3f}")


if __name__ == "__main__":
    main()
