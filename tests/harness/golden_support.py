"""The golden runs of issue 22 (``tests/harness/golden/``): what a run is compared on, and how
``mme3dr score`` inputs are laid out from a finished run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden"
#: The demo as the issue names it: primitives on the demo benchmark, smoke profile, default render size.
DEMO_ARGS = ["--model", "primitives", "--benchmark", "demo", "--profile", "smoke"]
SAMPLE_KEYS = ("case_id", "sample_index", "metrics", "status", "failure", "seed", "asset_sha256",
               "reference_sha256", "render_sha256", "reference_render_sha256")


def golden_view(run: Path) -> dict:
    """The ``results`` block and each sample's scores, status, seed and hashes."""
    results = json.loads((run / "results.json").read_text())
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    return {"results": results["results"],
            "samples": [{k: s.get(k) for k in SAMPLE_KEYS} for s in samples]}


def load_golden(name: str) -> dict:
    return json.loads((GOLDEN / name).read_text())


def _render_dirs(run: Path) -> dict[str, str]:
    """``{render sha256: view folder}`` recorded by the run."""
    from mme3dr.results import shard_render_dirs

    return shard_render_dirs([run])


def score_inputs(run: Path, where: Path) -> tuple[Path, Path, Path]:
    """Lay a finished run's renders out for ``mme3dr score``: ``renders/<case>/NNN.png`` (generated),
    ``references/<case>/NNN.png`` and ``prompts.csv`` (case_id, prompt, category); symlinks to the views."""
    dirs = _render_dirs(run)
    renders, refs = where / "renders", where / "references"
    rows = []
    for line in (run / "samples.jsonl").read_text().splitlines():
        s = json.loads(line)
        rows.append((s["case_id"], s["prompt"], s["category"]))
        for side, sha in ((renders, s["render_sha256"]), (refs, s["reference_render_sha256"])):
            if sha and sha in dirs:
                d = side / s["case_id"]
                d.mkdir(parents=True, exist_ok=True)
                for png in sorted(Path(dirs[sha]).glob("[0-9][0-9][0-9].png")):
                    if not (d / png.name).exists():
                        (d / png.name).symlink_to(png)
    prompts = where / "prompts.csv"
    with open(prompts, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["case_id", "prompt", "category"])
        w.writerows(rows)
    return renders, refs, prompts
