"""Write the golden runs (issue 22, Must-show 1): what a pipeline gives on the demo, kept as test data.

Run from the repository root of the code to record
(``PYTHONPATH=. python tests/harness/golden/make_golden.py WORK_DIR``); it writes
``tests/harness/golden/*.json``. Each file keeps only what the comparison needs:
the ``results`` block, and per sample its ``metrics``, ``status``, ``failure``, ``seed`` and the asset,
reference and render hashes (``golden_view``). The runs:

- ``demo.json``: ``mme3dr evaluate --model primitives --benchmark demo --profile smoke`` (default size);
- ``judge.json``: the same with ``--judge`` against the test server (a tiny random Qwen2.5-VL under
  ``transformers serve``), plus each sample's judge failure reason;
- ``score.json``: ``mme3dr score`` on the demo run's renders (generated and reference views);
- ``shards.json``: the demo as two shards, merged by ``mme3dr merge``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # tests/ (judge_server)
sys.path.insert(0, str(HERE.parent))  # tests/harness (golden_support)

from golden_support import DEMO_ARGS, golden_view, score_inputs  # noqa: E402

CLI = [sys.executable, "-c", "from mme3dr.cli import main; main()"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "100"}


def run(*args: str) -> None:
    proc = subprocess.run([*CLI, *args], env=ENV, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def write(name: str, doc: dict) -> None:
    (HERE / name).write_text(json.dumps(doc, sort_keys=True, indent=1) + "\n")
    print("wrote", HERE / name)


def main(work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    demo = work / "demo"
    run("evaluate", "--out", str(demo), *DEMO_ARGS, "--no-report")
    write("demo.json", golden_view(demo))

    renders, refs, prompts = score_inputs(demo, work / "score-inputs")
    scores = work / "scores.json"
    run("score", str(renders), "--reference", str(refs), "--prompts", str(prompts), "--profile", "smoke",
        "--out", str(scores))
    write("score.json", json.loads(scores.read_text()) | {"card": None})

    shards = [work / f"shard{i}" for i in range(2)]
    for i, s in enumerate(shards):
        run("evaluate", "--out", str(s), *DEMO_ARGS, "--no-report", "--num-shards", "2", "--shard-index",
            str(i), "--cache-dir", str(demo / "cache"))
    merged = work / "merged"
    run("merge", *map(str, shards), "--out", str(merged), "--no-report")
    write("shards.json", golden_view(merged))

    from judge_server import ServedModel, build_tiny_vlm

    server = ServedModel(build_tiny_vlm(work / "tiny-vlm"), work / "serve.log")
    try:
        judged = work / "judged"
        run("evaluate", "--out", str(judged), *DEMO_ARGS, "--no-report", "--cache-dir", str(demo / "cache"),
            "--judge", server.url + "/v1", "--judge-model", server.model, "--judge-profile", "transformers",
            "--judge-concurrency", "1", "--judge-retries", "0")
    finally:
        server.close()
    doc = golden_view(judged)
    doc["judge_failures"] = {f"{r['case_id']}#{r['sample_index']}": (r.get("failure") or "").split(":")[0]
                             for r in map(json.loads, (judged / "judge.jsonl").read_text().splitlines())}
    write("judge.json", doc)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
