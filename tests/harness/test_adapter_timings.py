"""An adapter's reported generation time is data, not trust: a NaN, an infinity, a negative number or a
string (``Asset.seconds``, a ``cmd:`` program's ``<id>.json``, a folder's ``timings.json``) is not
recorded, and never stops the run when results.json is written at its end (it used to end every run and
every ``--resume`` with "Out of range float values are not JSON compliant")."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import trimesh
from evaluate_support import FAST, evaluate_cmd, run_cli

from mme3dr.harness.evaluate import _usable_seconds
from mme3dr.results import read_samples


@pytest.mark.parametrize(("value", "kept"), [
    (1.5, 1.5), (0, 0.0), (math.nan, None), (math.inf, None), (-1e999, None), (-3.0, None),
    ("fast", None), (None, None), (True, None), ([1], None),
])
def test_only_finite_non_negative_numbers_are_kept(value, kept):
    assert _usable_seconds(value) == kept


def test_a_folder_run_with_unusable_timings_finishes_and_records_none(tmp_path: Path):
    folder = tmp_path / "generated"
    folder.mkdir()
    for case in ("demo-000", "demo-001"):
        trimesh.creation.box().export(folder / f"{case}.obj")
    (folder / "timings.json").write_text(json.dumps({"demo-000_0": "fast", "demo-001_0": 2.5}))
    out = tmp_path / "run"
    proc = run_cli(evaluate_cmd(out, "--model", f"folder:{folder}", "--benchmark", "demo", *FAST,
                                "--categories", "spatial", "--limit", "2"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    seconds = {s.case_id: s.seconds for s in read_samples(out / "samples.jsonl")}
    assert seconds == {"demo-000": None, "demo-001": 2.5}
