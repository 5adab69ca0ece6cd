"""Blender .blend -> .glb conversion: one Blender process per batch vs one process per file (baseline).

Converts the same real Toys4K .blend N times (distinct output files, no cache) both ways in this
process's run and prints seconds per file and the speed-up ratio. Needs Blender (`bash
.ci/install_blender`) and a .blend (default: ../shared/data/toys4k/airplane_010/airplane_010.blend).

    python benchmarks/blend_convert.py --n 8
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mme3dr.benchmark.blender_convert import convert_blend_files, find_blender

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DEFAULT_BLEND = SHARED / "toys4k" / "airplane_010" / "airplane_010.blend"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blend", type=Path, default=DEFAULT_BLEND, help="a .blend file to convert")
    ap.add_argument("--n", type=int, default=8, help="conversions per mode")
    ap.add_argument("--blender", default=None, help="blender binary or python with bpy (default: search)")
    args = ap.parse_args()
    blender = find_blender(args.blender)
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [(args.blend, Path(tmp) / f"batch_{i}.glb") for i in range(args.n)]
        t0 = time.perf_counter()
        batch = convert_blend_files(jobs, blender)
        t_batch = time.perf_counter() - t0
        t0 = time.perf_counter()
        single = [
            convert_blend_files([(args.blend, Path(tmp) / f"one_{i}.glb")], blender)[0] for i in range(args.n)
        ]
        t_single = time.perf_counter() - t0
    assert all(r["ok"] for r in batch + single), [r.get("error") for r in batch + single]
    version = batch[0]["blender_version"]
    print(f"blender {version} ({blender.kind}), {args.blend.name}, n={args.n}")
    print(f"one process per file (baseline): {t_single / args.n:.2f} s/file")
    print(f"one process per batch:           {t_batch / args.n:.2f} s/file")
    print(f"speed-up: {t_single / t_batch:.2f}x")


if __name__ == "__main__":
    main()
