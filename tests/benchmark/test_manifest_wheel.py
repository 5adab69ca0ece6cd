"""Must show 2: the built-in manifests load from an installed wheel, not from the source tree."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
V1_SHA256 = "32885090fd6aa862711365d75c0ae299f31baac1c58cf373afeb29508a400cf7"


def _copy_source(dst: Path) -> None:
    """Copy what the wheel is built from (symlinks kept: mme3dr/_data links to data/mme3dr)."""
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dst / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("mme3dr", "leaderboard", "ar3d_r1", "data"):
        if (REPO / name).exists():
            shutil.copytree(REPO / name, dst / name, symlinks=True, ignore=ignore)


def test_manifest_loads_from_installed_wheel(tmp_path):
    src, wheels, target = tmp_path / "src", tmp_path / "wheels", tmp_path / "site"
    src.mkdir()
    _copy_source(src)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels)]
        + ["."],
        cwd=src,
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = wheels.glob("mme3dr-*.whl")
    inst = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
    )
    assert inst.returncode == 0, inst.stderr
    shutil.rmtree(src)  # nothing left to fall back on
    # -S: no site-packages, so neither the editable install nor anything but the wheel can answer.
    code = (
        "import mme3dr, sys; from mme3dr.benchmark.manifest import load_manifest; "
        f"assert mme3dr.__file__.startswith({str(target)!r}), mme3dr.__file__; "
        "from importlib import resources; r = resources.files('mme3dr'); "
        "assert (r / 'benchmark' / 'blender_scripts' / 'blend_to_glb.py').is_file(); "
        "assert all((r / '_data' / 'v1' / n).is_file() for n in ('category_map.json', 'README.md')); "
        "m = load_manifest('mme3dr-v1'); t = load_manifest('toys4k-800'); "
        "print(len(m), m.sha256, len(t), sorted(m.counts().items()))"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    n, sha, n800, _ = out.stdout.split(" ", 3)
    assert (n, sha, n800) == ("249", V1_SHA256, "800")
