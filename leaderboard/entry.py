"""A registry entry (``entry.json``) and its verification record: the data model shared by validation,
verification, admission into the registry and the site.

Light module: pydantic only.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from leaderboard.bundle import Submitter
from leaderboard.rows import Tier


class Verification(BaseModel):
    """The record of a verification beyond validation (``leaderboard verify``)."""

    model_config = ConfigDict(extra="forbid")

    tier: Tier
    bundle_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    passed: bool
    verifier: str = Field(min_length=1, max_length=200)
    date: str
    tolerance: dict[str, float] = Field(default_factory=dict)
    comparisons: dict[str, dict[str, float | None]] = Field(default_factory=dict)
    problems: list[str] = Field(default_factory=list)
    notes: dict[str, str] = Field(default_factory=dict)


class Entry(BaseModel):
    """``entry.json``."""

    model_config = ConfigDict(extra="forbid")

    benchmark: str
    slug: str
    submitter: Submitter
    tier: Tier
    generated_by: str
    scored_by: str
    added: str = Field(description="date the bundle was accepted (YYYY-MM-DD)")
    bundle_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    asset_set_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    verification: Verification | None = None
