"""``mme3dr evaluate --model 'cmd:...'`` end to end: the shipped example run by a stdlib-only interpreter
scores demo cases (Must show 2), and ``--resume`` after ``kill -9`` calls the program only for what is
missing and leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cmd_support import stdlib_venv, write_program

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from evaluate_support import FAST, evaluate_cmd, run_cli  # noqa: E402
from process_tags import tagged  # noqa: E402

from mme3dr.results import load_results, read_samples  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cmd_generator" / "generate.py"


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory) -> Path:
    return stdlib_venv(tmp_path_factory.mktemp("stdlib-venv") / "venv")


def test_the_example_in_a_stdlib_venv_scores_demo_cases_in_batches(tmp_path, venv_python):
    out = tmp_path / "run"
    proc = run_cli(evaluate_cmd(out, "--model", f"cmd:{venv_python} {EXAMPLE}", "--model-args",
                                "batch_size=2", "--benchmark", "demo", "--limit", "5", "--no-report", *FAST))
    assert proc.returncode == 0, proc.stderr[-3000:]
    samples = read_samples(out / "samples.jsonl")
    assert len(samples) == 5 and all(s.status == "ok" for s in samples), [s.failure_detail for s in samples]
    results = load_results(out / "results.json")
    assert results.adapter.kind == "command" and results.model_info.name == "cmd:python"
    batches = sorted((out / "work" / "cmd-batches").iterdir())
    assert [len((b / "requests.jsonl").read_text().splitlines()) for b in batches] == [2, 2, 1]
    assert all((b / "stderr.txt").read_text().startswith("wrote demo-") for b in batches)


@pytest.mark.slow
def test_resume_after_kill_9_calls_the_program_only_for_the_missing_samples(tmp_path, venv_python):
    program = write_program(tmp_path)
    calls, out, tag = tmp_path / "calls.jsonl", tmp_path / "run", f"cmd-resume-{os.getpid()}"
    cmd = evaluate_cmd(out, "--model", f"cmd:{venv_python} {program}", "--model-args", "batch_size=1",
                       "--benchmark", "demo", "--limit", "5", "--no-report", *FAST)
    env = {**os.environ, "CMD_CALLS": str(calls), "CMD_SLEEP": "1.5", "MME3DR_TEST_TAG": tag}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = out / "state" / "generated"
    deadline = time.monotonic() + 300
    try:
        while len(list(records.glob("*.json"))) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, "the run never reached the kill point"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    for _ in range(50):  # the adapter process and the program die with it
        if not tagged(tag):
            break
        time.sleep(0.1)
    assert not tagged(tag), f"left alive after kill -9: {tagged(tag)}"
    done = {p.name.split("__")[0] for p in records.glob("*.json")}
    before = len(calls.read_text().splitlines())

    proc2 = run_cli([*cmd, "--resume"], env={"CMD_CALLS": str(calls), "CMD_SLEEP": "0"})
    assert proc2.returncode == 0, proc2.stderr[-3000:]
    later = [json.loads(line)[0] for line in calls.read_text().splitlines()[before:]]
    assert not {i.split("_")[0] for i in later} & done, f"{later} repeats one of {done}"
    assert sorted({i.split("_")[0] for i in later} | done) == [f"demo-{i:03d}" for i in range(5)]
    assert all(s.status == "ok" for s in read_samples(out / "samples.jsonl"))
