#!/usr/bin/env python3
"""A text-to-3D program for ``mme3dr evaluate --model 'cmd:...'``: Python standard library only.

It stands for a generator that lives in its own environment (its own virtualenv, torch and CUDA
extensions) and never imports mme3dr. It speaks the command adapter's contract (docs/evaluate.md):

    python generate.py --requests REQUESTS.jsonl --out-dir DIR

reads one JSON request per line (``id``, ``prompt``, ``seed``, ``case_id``, ``sample_index``) and writes
``DIR/<id>.obj`` plus ``DIR/<id>.json`` (``{"up_axis": "y", "seconds": ...}``) for each.

The "model" here is :func:`generate`: a seeded, prompt-dependent shape (a capsule-like solid of
revolution whose profile, height and colour come from the prompt's words and the seed). To wrap a real
generator, replace :func:`generate` with a call into it and keep the rest: see
``examples/cmd_generator/trellis_generate.py`` for TRELLIS.

    mme3dr evaluate --model 'cmd:/usr/bin/python3 examples/cmd_generator/generate.py' \\
        --benchmark demo --profile smoke --out runs/cmd-demo
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

COLOURS = {"red": (0.8, 0.1, 0.1), "green": (0.1, 0.7, 0.2), "blue": (0.1, 0.2, 0.8),
           "yellow": (0.9, 0.8, 0.1), "white": (0.9, 0.9, 0.9), "black": (0.1, 0.1, 0.1),
           "brown": (0.5, 0.3, 0.1), "orange": (0.9, 0.5, 0.1), "purple": (0.5, 0.1, 0.6)}


def generate(prompt: str, seed: int) -> tuple[list[tuple[float, float, float]], list[tuple[int, int, int]],
                                               tuple[float, float, float]]:
    """A closed solid of revolution about +Y for ``prompt``: ``(vertices, triangles (0-based), rgb)``."""
    rng = random.Random(seed)
    words = prompt.lower().split()
    rgb = next((COLOURS[w.strip(".,")] for w in words if w.strip(".,") in COLOURS), (0.7, 0.7, 0.7))
    height = 0.6 + 0.1 * (len(words) % 8) + 0.2 * rng.random()
    bulge = 0.2 + 0.3 * rng.random()
    rings, sectors = 16, 24
    verts = [(0.0, 0.0, 0.0)]
    for i in range(1, rings):
        t = i / rings
        radius = 0.25 + bulge * math.sin(math.pi * t) * (1.0 - 0.5 * t)
        for j in range(sectors):
            a = 2.0 * math.pi * j / sectors
            verts.append((radius * math.cos(a), height * t, radius * math.sin(a)))
    verts.append((0.0, height, 0.0))
    top = len(verts) - 1
    faces = []
    for j in range(sectors):  # bottom cap, side bands, top cap; counter-clockwise seen from outside
        faces.append((0, 1 + j, 1 + (j + 1) % sectors))
    for i in range(rings - 2):
        for j in range(sectors):
            a, b = 1 + i * sectors + j, 1 + i * sectors + (j + 1) % sectors
            faces += [(a, a + sectors, b), (b, a + sectors, b + sectors)]
    last = 1 + (rings - 2) * sectors
    for j in range(sectors):
        faces.append((top, last + (j + 1) % sectors, last + j))
    return verts, faces, rgb


def write_obj(path: Path, verts, faces, rgb) -> None:
    lines = [f"v {x:.5f} {y:.5f} {z:.5f} {rgb[0]:.3f} {rgb[1]:.3f} {rgb[2]:.3f}" for x, y, z in verts]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    tmp = path.with_suffix(".part")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)  # never leave a half-written OBJ under its final name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", required=True, type=Path)
    parser.add_argument("--out-dir", required=True, type=Path)
    args = parser.parse_args(argv)
    requests = [json.loads(line) for line in args.requests.read_text().splitlines() if line.strip()]
    for req in requests:
        t0 = time.perf_counter()
        verts, faces, rgb = generate(req["prompt"], int(req["seed"]))
        write_obj(args.out_dir / f"{req['id']}.obj", verts, faces, rgb)
        side = {"up_axis": "y", "seconds": round(time.perf_counter() - t0, 4)}
        (args.out_dir / f"{req['id']}.json").write_text(json.dumps(side))
        print(f"wrote {req['id']}.obj ({len(faces)} triangles)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
