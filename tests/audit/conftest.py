"""Demo runs for the audit tests: primitives, and the demo's own ground truth through the folder adapter,
once as is and once turned a quarter turn (+90° about X) without declaring it."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from demo_runs import demo_run


def _ground_truth_folder(folder: Path, turn: np.ndarray | None) -> Path:
    import trimesh

    from mme3dr.benchmark.demo import DEMO_CASES, build_reference

    folder.mkdir(parents=True, exist_ok=True)
    for suffix, *_ in DEMO_CASES:
        case_id = f"demo-{suffix}"
        data = build_reference(case_id)
        if turn is not None:
            scene = trimesh.load(io.BytesIO(data), file_type="glb")
            scene.apply_transform(turn)
            data = scene.export(file_type="glb")
        (folder / f"{case_id}.glb").write_bytes(data)
    return folder


@pytest.fixture(scope="session")
def primitives_run(tmp_path_factory) -> Path:
    return demo_run(tmp_path_factory, "primitives", "--model", "primitives")


@pytest.fixture(scope="session")
def ground_truth_run(tmp_path_factory) -> Path:
    folder = _ground_truth_folder(tmp_path_factory.mktemp("gt"), None)
    return demo_run(tmp_path_factory, "ground-truth", "--model", f"folder:{folder}")


@pytest.fixture(scope="session")
def turned_ground_truth_run(tmp_path_factory) -> Path:
    import trimesh

    turn = trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0])  # +90° about X, undeclared
    folder = _ground_truth_folder(tmp_path_factory.mktemp("gt-turned"), turn)
    return demo_run(tmp_path_factory, "ground-truth-turned", "--model", f"folder:{folder}")
