"""Must show 4: a full disk ends the run with one clear line, leaves every output file parseable (no
half-written file, no stray temporary), and ``--resume`` once space is freed completes with the same
results as an undisturbed run.

The disk is a real tmpfs of 1 or 2 MB (full while the render workers write PNGs, or while this process
writes feature arrays), mounted in a private mount namespace (``unshare``), so
nothing outside the test sees it; the test is skipped where namespaces are not allowed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from evaluate_support import CLI, FAST, assert_same_run, evaluate_cmd, run_cli

UNSHARE = shutil.which("unshare")


def _namespace_prefix() -> list[str] | None:
    """An ``unshare`` command line in which ``mount -t tmpfs`` works, or None."""
    if UNSHARE is None:
        return None
    for prefix in ([UNSHARE, "--user", "--map-root-user", "--mount"], [UNSHARE, "--mount"]):
        probe = subprocess.run([*prefix, "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                               capture_output=True)
        if probe.returncode == 0:
            return prefix
    return None


def _check_parseable(run: Path) -> None:
    leftovers = [p for p in run.rglob("*") if ".tmp" in p.name or p.name.endswith(".partial")]
    assert leftovers == [], f"stray temporary files: {leftovers}"
    for path in run.rglob("*.json"):
        json.loads(path.read_text())
    for path in run.rglob("*.jsonl"):
        for line in path.read_text().splitlines():
            json.loads(line)
    for path in run.rglob("*.npz"):
        with np.load(path) as data:
            [data[k] for k in data.files]


ARGS = ["--model", "primitives", "--benchmark", "demo", "--limit", "3", "--no-report", *FAST]


@pytest.fixture(scope="module")
def undisturbed(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("disk-full") / "undisturbed"
    proc = run_cli(evaluate_cmd(run, *ARGS))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run


@pytest.mark.slow
@pytest.mark.parametrize("size", ["1m", "2m"], ids=["full-while-rendering", "full-while-encoding"])
def test_disk_full_ends_cleanly_and_resume_completes(tmp_path: Path, size: str, undisturbed: Path) -> None:
    prefix = _namespace_prefix()
    if prefix is None:
        pytest.skip("cannot mount a tmpfs in a private mount namespace here (unshare not permitted)")
    args = ARGS

    disk, saved = tmp_path / "disk", tmp_path / "saved"
    disk.mkdir()
    cli = " ".join(f"'{a}'" for a in CLI)
    flags = " ".join(args)
    script = f"""
        set -u
        mount -t tmpfs -o size={size} tmpfs '{disk}'
        {cli} evaluate --out '{disk}/run' {flags} 2> '{tmp_path}/full.err'; echo $? > '{tmp_path}/full.rc'
        cp -a '{disk}/run' '{saved}/full'
        mount -o remount,size=64m '{disk}'
        {cli} evaluate --out '{disk}/run' {flags} --resume 2> '{tmp_path}/resume.err'
        echo $? > '{tmp_path}/resume.rc'
        cp -a '{disk}/run' '{saved}/resumed'
    """
    saved.mkdir()
    subprocess.run([*prefix, "bash", "-c", script], check=True, timeout=900,
                   env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ":".join(sys.path)})

    err = (tmp_path / "full.err").read_text()
    assert (tmp_path / "full.rc").read_text().strip() == "2", err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "no space left" in lines[0].lower() and "--resume" in lines[0], err[-3000:]
    assert "Traceback" not in err
    _check_parseable(saved / "full")

    resume_err = (tmp_path / "resume.err").read_text()
    assert (tmp_path / "resume.rc").read_text().strip() == "0", resume_err[-3000:]
    _check_parseable(saved / "resumed")
    assert_same_run(saved / "resumed", undisturbed)
