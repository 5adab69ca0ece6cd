"""The command adapter's test programs: a stdlib-only virtualenv of another interpreter, and a generator
whose behaviour a ``--mode`` argument picks (each mode is one way a real program misbehaves)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

#: A generator that never imports mme3dr. Modes: ok (one OBJ + side JSON per request), fail (exit 3
#: after some stderr), hang (a child process and itself sleep; the child's pid goes to hang.pid), half
#: (only the even requests), outside (odd requests written beside --out-dir, not in it), symlink (odd
#: requests are symlinks to a file outside --out-dir), zup (side JSON says z up). ``$CMD_SLEEP`` seconds
#: of sleep per call; ``$CMD_CALLS`` logs each call's ids.
PROGRAM = textwrap.dedent(
    '''
    import argparse, json, os, subprocess, sys, time
    from pathlib import Path

    OBJ = "v 0 0 0\\nv 1 0 0\\nv 0 1 0\\nv 0 0 1\\nf 1 3 2\\nf 1 2 4\\nf 1 4 3\\nf 2 3 4\\n"

    p = argparse.ArgumentParser()
    p.add_argument("--mode", default="ok")
    p.add_argument("--requests", required=True)
    p.add_argument("--out-dir", required=True)
    a = p.parse_args()
    out = Path(a.out_dir)
    reqs = [json.loads(l) for l in Path(a.requests).read_text().splitlines()]
    with open(os.environ.get("CMD_CALLS", os.devnull), "a") as f:
        f.write(json.dumps([r["id"] for r in reqs]) + "\\n")
    print(f"interpreter {sys.executable} prefix {sys.prefix}")
    if a.mode == "fail":
        print("loading weights", file=sys.stderr)
        print("RuntimeError: CUDA out of memory", file=sys.stderr)
        sys.exit(3)
    if a.mode == "hang":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        Path(os.environ["HANG_PID"]).write_text(str(child.pid))
        print("sampling step 1/64", file=sys.stderr, flush=True)
        time.sleep(300)
    time.sleep(float(os.environ.get("CMD_SLEEP", "0")))
    for i, r in enumerate(reqs):
        if a.mode == "half" and i % 2:
            continue
        target = out / (r["id"] + ".obj")
        if a.mode == "outside" and i % 2:
            target = out.parent / (r["id"] + ".obj")
        if a.mode == "symlink" and i % 2:
            elsewhere = out.parent.parent / (r["id"] + "-elsewhere.obj")
            elsewhere.write_text(OBJ)
            os.symlink(elsewhere, target)
            continue
        target.write_text(OBJ)
        side = {"up_axis": "z" if a.mode == "zup" else "y", "seconds": 0.25}
        (out / (r["id"] + ".json")).write_text(json.dumps(side))
    '''
)


def stdlib_venv(root: Path) -> Path:
    """A virtualenv without pip of another interpreter (``/usr/bin/python3``); returns its python.
    Skips when no such interpreter exists."""
    base = shutil.which("python3", path="/usr/bin:/usr/local/bin")
    if base is None or Path(base).resolve() == Path(sys.executable).resolve():
        pytest.skip("no second Python interpreter (/usr/bin/python3) to build a stdlib-only venv from")
    subprocess.run([base, "-m", "venv", "--without-pip", str(root)], check=True, capture_output=True)
    python = root / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import numpy"], capture_output=True, text=True,
                           env={"PATH": "/usr/bin:/bin"})
    assert probe.returncode != 0, "the test venv must hold the standard library only"
    return python


def write_program(directory: Path) -> Path:
    path = Path(directory) / "fake_generator.py"
    path.write_text(PROGRAM)
    return path
