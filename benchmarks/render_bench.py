"""Rendering speed: our per-asset path against the bare moderngl floor and the pyrender path it replaced.

Measures, in one run, on a ~100k-face mesh at 512x512 with the 24 eval24 views (issue 12, Must show 4):
  (a) floor: bare moderngl draw + read-back of the already-uploaded protocol scene, per view;
  (b) ours: the whole per-asset path (hash, load, validate, normalise, upload, render 24 views, encode +
      write the PNGs, transforms.json and render.json into a fresh cache entry), per view;
  (c) the pyrender per-asset path it replaces (the last release's loader, scene and renderer, kept in
      benchmarks/pyrender_baseline/, with the same PNG/cache writing), at the same anti-aliasing:
      ``--aa 0`` compares with pyrender on OSMesa (no AA), ``--aa 4`` with pyrender on EGL (4x MSAA, and
      ours with 4x MSAA too). (c) runs in a child process: pyrender's PyOpenGL and moderngl's EGL context
      are kept apart. pyrender is not a dependency: ``pip install pyrender PyOpenGL==3.1.10`` for (c).
Targets: (b) <= 1.25 x (a); (c) / (b) >= 2.5 x. Also: seconds per asset on one core (LP_NUM_THREADS=1,
process CPU time, so other load on the machine does not count).

    python benchmarks/render_bench.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def make_mesh(directory: Path, seed: int, count: int = 160) -> Path:
    """A bumpy UV sphere with ~4 count^2 ~ 100k faces, written as binary PLY."""
    import numpy as np
    import trimesh

    mesh = trimesh.creation.uv_sphere(radius=0.5, count=[count, count])
    rng = np.random.default_rng(seed)
    theta = np.arctan2(mesh.vertices[:, 1], mesh.vertices[:, 0])
    bumps = 1.0 + 0.05 * np.sin(7 * theta + seed) * np.cos(5 * mesh.vertices[:, 2] * np.pi)
    mesh.vertices *= (bumps + 0.002 * rng.standard_normal(len(bumps)))[:, None]
    path = directory / f"bumpy_{seed}.ply"
    mesh.export(path)
    return path


def interleaved_medians(fns: dict, repeats: int) -> dict[str, tuple[float, float]]:
    """name -> (median wall seconds, median process CPU seconds) of ``fn()``, the measures run
    interleaved (one call of each per round) so a drift of the shared machine's speed hits all alike."""
    walls: dict[str, list[float]] = {k: [] for k in fns}
    cpus: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            walls[name].append(time.perf_counter() - t0)
            cpus[name].append(time.process_time() - c0)
    return {k: (statistics.median(walls[k]), statistics.median(cpus[k])) for k in fns}


def pyrender_child(asset: Path, aa: int, repeats: int, work: Path) -> dict:
    """(c): the last release's per-asset path, timed in this (child) process."""
    os.environ["PYOPENGL_PLATFORM"] = "egl" if aa else "osmesa"
    sys.path.insert(0, str(HERE))
    from pyrender_baseline.mesh import load_mesh
    from pyrender_baseline.renderer import get_renderer

    from mme3dr.hashing import file_sha256
    from mme3dr.render import eval24
    from mme3dr.render.cache import write_views

    rig = eval24()
    renderer = get_renderer(rig.width, rig.height, os.environ["PYOPENGL_PLATFORM"])
    caches = iter(range(10_000))

    def per_asset():
        out = work / f"pyrender{next(caches)}"
        out.mkdir(parents=True)
        sha = file_sha256(asset)
        mesh = load_mesh(asset, sha256=sha)
        result = renderer.render(mesh, rig, depth=False)
        write_views(out, result.rgba, rig)
        (out / "render.json").write_text(json.dumps({"asset_sha256": sha, "n_faces": mesh.n_faces}))

    scene, cam, light = renderer.build_scene(load_mesh(asset), rig)

    def floor():
        for c2w in rig.c2w:
            scene.set_pose(cam, c2w)
            scene.set_pose(light, c2w)
            renderer.draw(scene, depth=False)

    per_asset()
    floor()
    timed = interleaved_medians({"c": per_asset, "c_floor": floor}, repeats)
    return {"backend": renderer.backend, "gl": renderer.gl_renderer, **{k: list(v) for k, v in timed.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="repetitions per measurement (median)")
    parser.add_argument("--aa", type=int, default=0, choices=[0, 4], help="MSAA samples for (a)-(c)")
    parser.add_argument("--gl-threads", default="1", help="LP_NUM_THREADS for llvmpipe ('' = its default)")
    parser.add_argument("--pyrender-child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.gl_threads:
        os.environ["LP_NUM_THREADS"] = args.gl_threads  # before any OpenGL library loads
    work = Path(tempfile.mkdtemp(prefix="render_bench_"))
    if args.pyrender_child:
        print(json.dumps(pyrender_child(Path(args.pyrender_child), args.aa, args.repeats, work)))
        return

    import numpy as np
    import trimesh

    from mme3dr.assets import load_mesh
    from mme3dr.render import eval24, render_asset
    from mme3dr.render import renderer as renderer_module
    from mme3dr.render.renderer import Renderer, depth_range, projection

    asset = make_mesh(work, seed=0)
    n_faces = len(trimesh.load(asset, process=False).faces)
    rig = eval24()
    n = rig.n_views
    renderer = Renderer(rig.width, rig.height, samples=args.aa)
    renderer_module._RENDERER = renderer  # render_asset draws with this one (same AA as the floor)
    print(f"moderngl {renderer.gl_renderer}; mesh {n_faces:,} faces; {n} views at {rig.width}x{rig.height}; "
          f"MSAA {args.aa or 'none'}; LP_NUM_THREADS={os.environ.get('LP_NUM_THREADS', 'default')}; "
          f"cpus {os.cpu_count()}; load average {os.getloadavg()[0]:.1f}", flush=True)

    child = [sys.executable, str(Path(__file__).resolve()), "--pyrender-child", str(asset),
             "--aa", str(args.aa), "--repeats", str(args.repeats), "--gl-threads", args.gl_threads]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]))

    def run_child() -> dict | None:
        done = subprocess.run(child, capture_output=True, text=True, env=env)
        if done.returncode == 0:
            return json.loads(done.stdout.strip().splitlines()[-1])
        print(f"(c) skipped: the pyrender child failed ({done.stderr.strip().splitlines()[-1:]}); "
              "pip install pyrender PyOpenGL==3.1.10 (and apt-get install libosmesa6 for --aa 0)")
        return None

    # (c) runs in a child before and after (a)/(b); the two medians are averaged, so a drift of the
    # shared machine's speed during the run hits (c) about as much as (a) and (b).
    old_runs = [run_child()]

    # (a) floor: the protocol scene already uploaded; per view only the camera uniforms, draw, read-back.
    mesh = load_mesh(asset)
    drawn = renderer.upload(mesh)
    znear, zfar = depth_range(rig.c2w, mesh.bounds)
    proj = projection(rig.fov_y_deg, rig.width / rig.height, znear, zfar)
    views = [(proj @ np.linalg.inv(c), np.linalg.inv(c)) for c in rig.c2w]
    out = np.empty((rig.height, rig.width, 4), np.uint8)

    def floor():
        for clip, eye in views:
            renderer.draw_view(drawn, clip, eye, out)

    caches = iter(range(10_000))

    def ours():
        outcome = render_asset(asset, rig, work / f"cache{next(caches)}")
        assert outcome.ok and not outcome.cached, outcome

    floor()
    ours()
    timed = interleaved_medians({"a": floor, "b": ours}, args.repeats)
    if old_runs[0] is not None:
        old_runs.append(run_child())
    old = None
    if all(r is not None for r in old_runs):
        old = dict(old_runs[0])
        for key in ("c", "c_floor"):
            old[key] = [sum(r[key][i] for r in old_runs) / len(old_runs) for i in range(2)]
    (t_a, c_a), (t_b, c_b) = ((w / n, c / n) for w, c in timed.values())
    print("                                              wall ms/view   CPU ms/view   ratio wall / CPU")
    print(f"(a) floor: bare moderngl draw + read-back    {t_a * 1e3:9.1f}   {c_a * 1e3:11.1f}")
    print(f"(b) ours: whole per-asset path               {t_b * 1e3:9.1f}   {c_b * 1e3:11.1f}"
          f"   {t_b / t_a:.2f} / {c_b / c_a:.2f} x (a)  [target <= 1.25]")
    print(f"    per asset (24 views): {timed['b'][0]:.2f} s wall, {timed['b'][1]:.2f} s CPU on one core")
    if old is not None:
        (t_c, c_c), (t_f, c_f) = ((w / n, c / n) for w, c in (old["c"], old["c_floor"]))
        print(f"(c) pyrender per-asset path ({old['backend']})  {t_c * 1e3:9.1f}   {c_c * 1e3:11.1f}"
              f"   {t_c / t_b:.2f} / {c_c / c_b:.2f} x (b)  [target >= 2.5]")
        print(f"    pyrender's own bare floor                {t_f * 1e3:9.1f}   {c_f * 1e3:11.1f}"
              f"   {t_f / t_a:.2f} / {c_f / c_a:.2f} x (a)")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
