"""Weight resolution: local dir, HF cache layout, offline errors that say what to do (fast)."""

from __future__ import annotations

import importlib
import time

import pytest

from mme3dr.features import CATALOGUE, WeightsNotFoundError, WeightSpec, resolve_weights
from mme3dr.features.weights import file_sha256, weights_status

weights_module = importlib.import_module("mme3dr.features.weights")


def test_offline_missing_weight_fails_at_once_naming_model_file_and_place(isolated_weights):
    start = time.monotonic()
    with pytest.raises(WeightsNotFoundError) as info:
        resolve_weights("dinov2-base", weights_dir=isolated_weights / "w")
    assert time.monotonic() - start < 2.0  # no retry loop
    msg = str(info.value)
    assert "facebook/dinov2-base" in msg
    assert "'config.json'" in msg
    assert str(isolated_weights / "w" / "dinov2-base" / "config.json") in msg
    assert "HF_HUB_OFFLINE" in msg and "mme3dr weights download" in msg


def test_offline_inception_error_names_the_fid_weight_file(isolated_weights):
    with pytest.raises(WeightsNotFoundError, match="weights-inception-2015-12-05-6726825d.pth"):
        resolve_weights("inception-v3-fid")


def test_local_dir_then_env_then_hf_cache(isolated_weights, hf_snapshot, monkeypatch):
    spec = WeightSpec(key="toy", kind="dinov2", model_id="test/toy", files=("a.bin",), hub_repo="test/toy")
    snap = hf_snapshot("test/toy", {"a.bin": lambda p: p.write_bytes(b"hub")})
    got = resolve_weights(spec)
    assert got.source == "hf-cache" and got.path().read_bytes() == b"hub" and got.directory == snap

    env_dir = isolated_weights / "env"
    (env_dir / "toy").mkdir(parents=True)
    (env_dir / "toy" / "a.bin").write_bytes(b"env")
    monkeypatch.setenv("MME3DR_WEIGHTS_DIR", str(env_dir))
    assert resolve_weights(spec).path().read_bytes() == b"env"

    explicit = isolated_weights / "explicit"
    (explicit / "toy").mkdir(parents=True)
    (explicit / "toy" / "a.bin").write_bytes(b"explicit")
    got = resolve_weights(spec, weights_dir=explicit)
    assert got.source == "weights-dir" and got.path().read_bytes() == b"explicit"
    assert got.sha256() == file_sha256(explicit / "toy" / "a.bin")
    assert len(got.sha256()) == 64


def test_download_disabled_error(isolated_weights, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(WeightsNotFoundError, match="downloads are disabled"):
        resolve_weights("clip-vit-b-32-openai", download=False)


def test_status_lists_every_paper_weight_without_downloading(isolated_weights):
    rows = weights_status(list(CATALOGUE))
    assert {r["key"] for r in rows} == set(CATALOGUE)
    assert not any(r["present"] for r in rows)


def test_no_network_without_offline_flag_still_fails_at_once(isolated_weights, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(weights_module, "_reachable", lambda host, timeout=3.0: False)
    start = time.monotonic()
    with pytest.raises(WeightsNotFoundError, match="no network: huggingface.co is unreachable"):
        resolve_weights("dinov2-base")
    assert time.monotonic() - start < 2.0
