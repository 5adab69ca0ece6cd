"""Fixtures for the feature tests: an isolated weights environment (no real caches are read)."""

from __future__ import annotations

import importlib

import pytest

weights_module = importlib.import_module("mme3dr.features.weights")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread is ~50× faster than two contending
    (measured: a tiny-CLIP training step 2.3 s → 0.05 s), and leaves the other core to other work."""
    try:
        import torch
    except ImportError:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


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


def save_random_fid_inception(path) -> None:
    """A random-initialised state dict of torch-fidelity's FID Inception-v3 (real weights need a download).

    The constructor insists on loading weights, so its two loading calls are stubbed while it builds;
    the network itself is torch-fidelity's, unchanged.
    """
    from unittest import mock

    import torch
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    with (
        mock.patch.object(fe, "load_state_dict_from_url", lambda *a, **k: None),
        mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda *a, **k: None),
        torch.random.fork_rng(devices=[]),
    ):
        torch.manual_seed(0)
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    torch.save(net.state_dict(), path)


@pytest.fixture
def random_fid_inception():
    return save_random_fid_inception
