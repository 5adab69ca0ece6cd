"""Two demo runs (primitives, oracle) for the compare tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from demo_runs import demo_run


@pytest.fixture(scope="session")
def primitives_run(tmp_path_factory) -> Path:
    return demo_run(tmp_path_factory, "primitives", "--model", "primitives")


@pytest.fixture(scope="session")
def oracle_run(tmp_path_factory) -> Path:
    return demo_run(tmp_path_factory, "oracle", "--model", "oracle")
