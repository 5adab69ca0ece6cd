"""mme3dr.harness.scoring with feature_store's memo: KD/FD memoised by their exact inputs give the
computed values, and only for them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import mme3dr.metrics.definitions as definitions
from mme3dr.harness.feature_store import SetMetricMemo
from mme3dr.harness.scoring import features_from_dirs, results_block
from mme3dr.results import SampleRecord

pytestmark = pytest.mark.filterwarnings("ignore:KD subset size clamped")
SUITE = "s" * 16
METRICS = ("clip", "kd_incep", "fd_incep", "kd_dinov2", "fd_dinov2")


def _write_features(features: Path, sha: str, rng: np.random.Generator, shift: float = 0.0) -> None:
    features.mkdir(parents=True, exist_ok=True)
    np.savez(features / f"{sha}.{SUITE}.npz", inception=rng.normal(shift, 1.0, (4, 32)),
             dinov2=rng.normal(shift, 1.0, (4, 16)), clip=rng.normal(size=(4, 8)))


def _run(tmp_path: Path, memo: SetMetricMemo | None, shift: float = 0.0) -> dict:
    rng = np.random.default_rng(0)
    features = tmp_path / "features"
    samples, references = [], {}
    for k in range(6):
        case = f"case-{k}"
        _write_features(features, f"{k:064x}", rng, shift)
        _write_features(features, f"ref{k}", rng)
        references[case] = f"ref{k}"
        samples.append(SampleRecord(case_id=case, sample_index=0, category="spatial", status="ok", seed=0,
                                    prompt="p", prompt_sha256="0" * 64, render_sha256=f"{k:064x}",
                                    metrics={"clip": 20.0 + k}))
    return results_block(samples, references, features_from_dirs([features], SUITE), metrics=METRICS,
                         categories=["spatial"], task="t", memo=memo)["t"]


def test_a_memo_hit_returns_exactly_what_was_computed(tmp_path, monkeypatch):
    plain = _run(tmp_path / "a", None)
    memo = SetMetricMemo(tmp_path / "memo")
    first = _run(tmp_path / "b", memo)
    assert first == plain and memo.hits == 0

    def boom(*args, **kwargs):
        raise AssertionError("recomputed despite a memo entry")

    monkeypatch.setattr(definitions, "kid", boom)
    monkeypatch.setattr(definitions, "fd", boom)
    again = SetMetricMemo(tmp_path / "memo")
    assert _run(tmp_path / "c", again) == plain
    assert again.hits == 4


def test_different_features_miss_the_memo(tmp_path):
    memo = SetMetricMemo(tmp_path / "memo")
    base = _run(tmp_path / "a", memo)
    shifted = _run(tmp_path / "b", memo, shift=0.5)
    assert memo.hits == 0
    assert shifted["fd_incep"] > base["fd_incep"]
    assert len(list((tmp_path / "memo").glob("*.json"))) == 8


def test_memo_key_covers_metric_shape_and_bytes():
    memo = SetMetricMemo("unused")
    x = np.arange(12.0).reshape(4, 3)
    k = memo.key("kd_incep", x, x)
    assert memo.key("fd_incep", x, x) != k
    assert memo.key("kd_incep", x.reshape(3, 4), x) != k
    y = x.copy()
    y[0, 0] = np.nextafter(y[0, 0], 1.0)
    assert memo.key("kd_incep", y, x) != k
    assert memo.key("kd_incep", x.astype(np.float32), x) == k  # float64 bytes: what the metric sees
