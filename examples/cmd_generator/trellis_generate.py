#!/usr/bin/env python3
"""Recipe: TRELLIS text-to-3D as a ``cmd:`` program, run in TRELLIS's own environment.

TRELLIS (microsoft/TRELLIS) pins its own torch and needs CUDA extensions (spconv, nvdiffrast,
flash-attn or xformers, kaolin) that cannot live beside mme3dr. Install it as its README says, in its
own conda env or venv, then point ``mme3dr evaluate`` at that env's interpreter (from the TRELLIS
checkout, so ``import trellis`` works):

    cd /path/to/TRELLIS
    TRELLIS_PY=$(conda run -n trellis which python)
    RECIPE=/path/to/mme3dr/examples/cmd_generator/trellis_generate.py
    mme3dr evaluate --model "cmd:$TRELLIS_PY $RECIPE" \\
        --model-args batch_size=8,name=trellis-text-xlarge,revision=microsoft/TRELLIS-text-xlarge \\
        --benchmark mme3dr-v1 --profile paper --toys4k toys4k_obj_files.zip --out runs/trellis

This file is a recipe: it needs a GPU and TRELLIS, so mme3dr's tests run the contract with
``generate.py`` beside it instead. It imports nothing from mme3dr. It follows TRELLIS's
``example_text.py``: ``TrellisTextTo3DPipeline.from_pretrained`` and ``pipeline.run(prompt, seed=...)``,
then ``postprocessing_utils.to_glb`` (TRELLIS's own defaults, ``simplify=0.95, texture_size=1024``),
whose GLB is Y up.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", required=True, type=Path)
    parser.add_argument("--out-dir", required=True, type=Path)
    parser.add_argument("--checkpoint", default=os.environ.get("TRELLIS_CHECKPOINT",
                                                               "microsoft/TRELLIS-text-xlarge"))
    args = parser.parse_args()
    os.environ.setdefault("SPCONV_ALGO", "native")  # TRELLIS's advice for one-off runs

    from trellis.pipelines import TrellisTextTo3DPipeline
    from trellis.utils import postprocessing_utils

    pipeline = TrellisTextTo3DPipeline.from_pretrained(args.checkpoint)
    pipeline.cuda()
    for line in args.requests.read_text().splitlines():
        req = json.loads(line)
        t0 = time.perf_counter()
        try:
            outputs = pipeline.run(req["prompt"], seed=int(req["seed"]))
            glb = postprocessing_utils.to_glb(outputs["gaussian"][0], outputs["mesh"][0], simplify=0.95,
                                              texture_size=1024)
            glb.export(str(args.out_dir / f"{req['id']}.glb"))
        except Exception as e:  # one failed prompt costs that sample only (missing_output)
            print(f"{req['id']}: {type(e).__name__}: {e}", file=sys.stderr)
            continue
        side = {"up_axis": "y", "seconds": round(time.perf_counter() - t0, 3)}
        (args.out_dir / f"{req['id']}.json").write_text(json.dumps(side))
    return 0


if __name__ == "__main__":
    sys.exit(main())
