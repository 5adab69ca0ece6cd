"""Session fixtures for the judge and reward tests: one tiny Qwen2.5-VL built offline, served once by
``transformers serve`` (about 20 s on 2 cores, only when a test asks for it), with a counting proxy
per test in front of it. Registered for the whole suite by ``tests/conftest.py``."""

from __future__ import annotations

import importlib.util
import os

import pytest
from judge_server import CountingProxy, ServedModel, build_tiny_vlm


@pytest.fixture(scope="session")
def tiny_vlm_dir(tmp_path_factory):
    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-qwen2_5_vl") / "model")


@pytest.fixture(scope="session")
def served_vlm(tiny_vlm_dir, tmp_path_factory):
    """The real server (skipped, naming the extra, when ``transformers[serving]`` is not installed)."""
    missing = [m for m in ("fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        message = f"transformers serve needs {missing}: pip install -e '.[test-serving]'"
        if os.environ.get("CI"):  # CI installs .[dev], which has it: a skip there would hide a break
            pytest.fail(message)
        pytest.skip(message)
    server = ServedModel(tiny_vlm_dir, tmp_path_factory.mktemp("serve") / "serve.log")
    yield server
    server.close()


@pytest.fixture
def proxy(served_vlm):
    """A fresh counting proxy in front of the session's server."""
    p = CountingProxy(served_vlm.url)
    yield p
    p.close()
