"""Metric classes: facts are class-level data; accumulation gives the pure functions' numbers, scaled."""

from __future__ import annotations

import numpy as np
import pytest

from mme3dr.metrics import (
    METRICS,
    ClipScore,
    FdIncep,
    KdDinov2,
    KdIncep,
    ScriptRbfSimilarity,
    fd,
    get_metric,
    kid,
)


def test_facts_are_class_level_data():
    assert KdIncep.scale == 100 and KdIncep.higher_is_better is False and KdIncep.feature == "inception"
    assert KdDinov2.feature == "dinov2"
    assert ClipScore.higher_is_better is True and ClipScore.upper_bound == 100.0
    assert FdIncep.higher_is_better is False and FdIncep.scale == 1.0
    assert ScriptRbfSimilarity.leaderboard_eligible is False and ScriptRbfSimilarity.higher_is_better
    assert set(METRICS) >= {"clip", "kd_incep", "kd_dinov2", "fd_incep", "fd_dinov2"}
    assert get_metric("kd_incep").facts()["scale"] == 100
    with pytest.raises(KeyError, match="known"):
        get_metric("nope")


def test_accumulated_kd_and_fd_equal_pure_functions():
    rng = np.random.default_rng(0)
    gen, ref = rng.normal(size=(120, 16)), rng.normal(size=(110, 16)) + 0.2
    metric = KdIncep()
    metric.update(feats_gen=gen[:60])
    metric.update(feats_gen=gen[60:], feats_ref=ref)
    with pytest.warns(UserWarning, match="clamped"):
        value = metric.compute()
    with pytest.warns(UserWarning):
        mean, std = kid(gen, ref)
    assert value.value == pytest.approx(100 * mean) and value.std == pytest.approx(100 * std)
    assert value.extra["subset_size"] == 110
    f = FdIncep()
    f.update(gen, ref)
    assert f.compute().value == pytest.approx(fd(gen, ref))
    with pytest.raises(ValueError, match="reference"):
        empty = FdIncep()
        empty.update(feats_gen=gen)
        empty.compute()


def test_clip_metric_aggregates_per_category():
    m = ClipScore()
    for score, cat in [(10.0, "a"), (20.0, "a"), (40.0, "b")]:
        m.update(score, cat)
    out = m.compute().to_dict()
    assert out["value"] == pytest.approx(70 / 3)
    assert out["per_category"]["b"]["mean"] == 40.0
    assert len(out["ci95"]) == 2
