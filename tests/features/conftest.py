"""Fixtures for the feature tests: an isolated weights environment (no real caches are read)."""

from __future__ import annotations

import importlib

import pytest

weights_module = importlib.import_module("mme3dr.features.weights")


@pytest.fixture
def isolated_weights(tmp_path, monkeypatch):
    """Empty weights dir, default dir, HF cache and torch hub: only what the test writes is found."""
    monkeypatch.delenv("MME3DR_WEIGHTS_DIR", raising=False)
    monkeypatch.setattr(weights_module, "DEFAULT_WEIGHTS_DIR", tmp_path / "default-weights")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


@pytest.fixture
def hf_snapshot(isolated_weights):
    """``hf_snapshot(repo, {name: writer(path)})`` writes a snapshot into the isolated HF cache."""
    return lambda repo, files: write_hf_snapshot(isolated_weights / "hf-cache", repo, files)


def write_hf_snapshot(cache, repo: str, files: dict, revision: str = "0" * 40):
    """Lay files out as the Hugging Face cache does: models--org--name/snapshots/<rev>/ + refs/main."""
    root = cache / ("models--" + repo.replace("/", "--"))
    snap = root / "snapshots" / revision
    snap.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(revision)
    for name, writer in files.items():
        writer(snap / name)
    return snap
