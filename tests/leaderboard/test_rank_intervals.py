"""Rank intervals of the leaderboard, against an independent re-derivation, and on the built site."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from leaderboard.rank_intervals import adjacent_significant, case_matrix, rank_intervals
from mme3dr.metrics.definitions import ClipScore

BOOT = {"n": ClipScore.bootstrap_resamples, "seed": ClipScore.bootstrap_seed,
        "level": ClipScore.bootstrap_level}


def _independent(scores: list[list[float]], higher: bool, n: int, seed: int, level: float):
    """Plain-Python restatement: same case draw, ranks by counting better rows, sorted-list quantiles."""
    rows, cases = len(scores), len(scores[0])
    idx = np.random.default_rng(seed).integers(0, cases, size=(n, cases)).tolist()
    ranks = [[] for _ in range(rows)]
    for draw in idx:
        means = [sum(row[c] for c in draw) / cases for row in scores]
        for r in range(rows):
            better = sum(1 for o in range(rows) if (means[o] > means[r] if higher else means[o] < means[r]))
            ranks[r].append(1 + better)
    out = []
    for rs in ranks:
        rs = sorted(rs)
        lo_pos, hi_pos = (1 - level) / 2 * (n - 1), (1 + level) / 2 * (n - 1)
        out.append((rs[int(np.floor(lo_pos))], rs[int(np.ceil(hi_pos))]))
    return out


@pytest.mark.parametrize("higher", [True, False])
def test_rank_intervals_match_an_independent_rederivation(higher):
    rng = random.Random(3)
    # five rows: two clearly apart, three close together
    shifts = [0.0, 0.2, 0.25, 3.0, -3.0]
    scores = [[20 + s + rng.gauss(0, 2) for _ in range(40)] for s in shifts]
    got = rank_intervals(np.array(scores), higher, **BOOT)
    assert got == _independent(scores, higher, **BOOT)
    best, worst = (3, 4) if higher else (4, 3)
    assert got[best] == (1, 1) and got[worst] == (5, 5)
    assert all(2 <= lo <= hi <= 4 for lo, hi in (got[0], got[1], got[2]))


def test_identical_rows_share_every_rank_and_are_not_significantly_different():
    scores = np.tile(np.linspace(10, 30, 25), (3, 1))
    assert rank_intervals(scores, True, **BOOT) == [(1, 1)] * 3
    assert adjacent_significant(scores, [0, 1, 2], **BOOT) == [False, False]


def test_adjacent_significance_is_the_paired_bootstrap_ci_excluding_zero():
    rng = np.random.default_rng(0)
    base = rng.normal(20, 5, 60)
    scores = np.stack([base + 2.0 + rng.normal(0, 0.5, 60), base + 1.9 + rng.normal(0, 0.5, 60), base])
    assert adjacent_significant(scores, [0, 1, 2], **BOOT) == [False, True]


def test_case_matrix_keeps_the_cases_every_row_scored():
    cases, m = case_matrix([{"a": 1.0, "b": 2.0, "c": 3.0}, {"b": 5.0, "c": 6.0}])
    assert cases == ["b", "c"] and m.tolist() == [[2.0, 3.0], [5.0, 6.0]]


def test_site_json_and_index_carry_the_rank_intervals(site, registry):
    from leaderboard.registry import iter_entries, row_from_entry

    subs = json.loads((site / "leaderboard.json").read_text())["benchmarks"]["mme3dr-v1"]["submissions"]
    by_name = {r.model_name: r for r in (row_from_entry(f, e) for f, e in iter_entries(registry))}
    per_case = [by_name[s["model_name"]].case_scores for s in subs]
    _, scores = case_matrix(per_case)
    want = _independent(scores.tolist(), True, **BOOT)
    assert [tuple(s["rank_ci95"]) for s in subs] == want
    assert [s["differs_from_next"] for s in subs[:-1]] == adjacent_significant(scores, [0, 1, 2], **BOOT)
    index = (site / "index.html").read_text()
    assert "95% rank" in index and f"{want[0][0]}–{want[0][1]}" in index
