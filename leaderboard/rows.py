"""Leaderboard rows: what one accepted submission (or one paper reference row) shows on the site.

Rows are plain frozen dataclasses built from a registry entry (``leaderboard.registry``); the site
builder only formats them. Sorting reads each metric's ``higher_is_better`` from its ``MetricFact``,
which the site builds from the metric classes (``mme3dr.metrics``; validation has checked that each
submission's ``results.json`` agrees), so no metric name is special-cased here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, get_args

from leaderboard.reference_rows import REFERENCE_LABEL, ReferenceRow

#: Tiers, weakest to strongest (docs/leaderboard.md explains each).
Tier = Literal["self-reported", "re-scored", "reproduced"]
TIERS: tuple[str, ...] = get_args(Tier)
PAPER_TIER = "paper (not verified)"


@dataclass(frozen=True)
class MetricFact:
    """How to show and rank one metric: ``higher_is_better`` decides the sort direction."""

    name: str
    label: str
    higher_is_better: bool
    decimals: int = 2


@dataclass(frozen=True)
class MetricValue:
    """A metric's value with its optional 95% CI (``ci_low``/``ci_high``) or subset std."""

    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    std: float | None = None

    @property
    def finite(self) -> bool:
        return self.value is not None and math.isfinite(self.value)


@dataclass(frozen=True)
class LeaderboardRow:
    """One row of a benchmark's table and the content of its submission page."""

    benchmark: str
    model_name: str
    revision: str
    slug: str
    tier: str
    generated_by: str
    scored_by: str
    date: str
    metrics: dict[str, MetricValue]
    per_category: dict[str, MetricValue] = field(default_factory=dict)
    is_reference: bool = False
    link: str | None = None
    licence: str | None = None
    description: str = ""
    evaluator_relationship: str | None = None
    profile: str | None = None
    protocol_version: str | None = None
    manifest_sha256: str | None = None
    bundle_sha256: str | None = None
    metric_card: dict = field(default_factory=dict)
    thumbnails: tuple[str, ...] = ()
    n_cases: int | None = None
    n_failures: int | None = None
    verification: dict = field(default_factory=dict)
    source_note: str | None = None
    #: A submitter's own bundle shown by ``leaderboard build --preview``: not in the registry, never
    #: published; ``preview_problems`` are what validation would refuse it for (empty: it would pass).
    is_preview: bool = False
    preview_problems: tuple[str, ...] = ()
    #: Mean CLIP of each scored case (over its samples), from the bundle's samples.jsonl: the input of
    #: the rank intervals (leaderboard.rank_intervals).
    case_scores: dict[str, float] = field(default_factory=dict)


def row_from_reference(ref: ReferenceRow) -> LeaderboardRow:
    """A paper Table 4 row, marked so that it can never pass for a verified one."""
    return LeaderboardRow(
        benchmark=ref.benchmark,
        model_name=ref.model_name,
        revision="paper",
        slug=f"paper__{ref.model_name}",
        tier=PAPER_TIER,
        generated_by="paper authors",
        scored_by="paper authors",
        date="2025-12",
        metrics={k: MetricValue(v) for k, v in ref.metrics.items()},
        is_reference=True,
        source_note=f"{REFERENCE_LABEL} ({ref.source})",
    )


def sort_value(row: LeaderboardRow, key: str) -> float | None:
    """The number a column sorts by: a metric, or ``cat:<id>`` for a per-category CLIP."""
    mv = row.per_category.get(key[4:]) if key.startswith("cat:") else row.metrics.get(key)
    return mv.value if mv is not None and mv.finite else None


def rank_rows(rows: list[LeaderboardRow], fact: MetricFact) -> list[LeaderboardRow]:
    """Rows best first by ``fact`` (direction from ``higher_is_better``); missing values go last.

    Ties break by model name then revision, so the order is reproducible.
    """

    def key(row: LeaderboardRow) -> tuple:
        v = sort_value(row, fact.name)
        missing = v is None
        score = 0.0 if missing else (-v if fact.higher_is_better else v)
        return (missing, score, row.model_name.casefold(), row.revision)

    return sorted(rows, key=key)


def metric_number(value: float, decimals: int) -> str:
    """``value`` with the column's ``decimals``; a non-zero value those decimals would show as 0 (the demo's
    KD of 4.5e-07 as "0.000") in 2 significant digits instead, so no number is hidden as a zero."""
    if value != 0 and abs(value) < 0.5 * 10.0 ** -decimals:
        return f"{value:.1e}"
    return f"{value:.{decimals}f}"
