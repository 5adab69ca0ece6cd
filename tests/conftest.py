"""Test-wide set-up: no hub access, fixtures for the real data in ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from judge_fixtures import proxy, served_vlm, tiny_vlm_dir  # noqa: F401  (the real judge test server)

# No hub is reachable here or in CI: fail at once instead of retrying for ~45 s (design.md §5).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real fixtures in ../shared/data; the test is skipped when they are absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real fixtures not found at {SHARED_DATA} (../shared is not beside this checkout)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def trellis_rose(shared_data: Path) -> Path:
    root = shared_data / "trellis_rose"
    if not root.is_dir():
        pytest.skip(f"{root} is missing")
    return root
