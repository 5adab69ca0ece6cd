"""Profiles tell the evaluate stage what to do, as data (light module: no torch import)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mme3dr.features import PROFILES, get_profile, prepare_prompt
from mme3dr.metrics import get_metric


def test_paper_profile_is_protocol_v1():
    p = get_profile("paper")
    assert p.metrics == ("clip", "kd_incep", "kd_dinov2", "fd_incep", "fd_dinov2")
    assert (p.clip, p.inception, p.dinov2) == ("clip-vit-b-32-openai", "inception-v3-fid", "dinov2-base")
    assert p.leaderboard_eligible and p.shading == "protocol" and p.render_size is None
    assert p.background == "white"


def test_script_profile_restates_the_authors_script():
    p = get_profile("ar3d-r1-script")
    assert p.render_size == 299 and p.shading == "plain_white" and p.prompt_rule == "first_sentence"
    assert not p.leaderboard_eligible
    assert "script_kd_dinov2_rbf" in p.metrics and get_metric("script_kd_dinov2_rbf").higher_is_better
    assert p.prepare_prompt("A deep red rose. Its petals curl.") == "A deep red rose"


def test_smoke_is_never_leaderboard_eligible_and_every_metric_exists():
    assert not get_profile("smoke").leaderboard_eligible
    for profile in PROFILES.values():
        for name in profile.metrics:
            get_metric(name)
        assert profile.to_dict()["name"] == profile.name


def test_prompt_rules():
    assert prepare_prompt("  A chair with five legs.  ") == "A chair with five legs."
    assert prepare_prompt("No period here", "first_sentence") == "No period here"
    with pytest.raises(ValueError, match="non-empty"):
        prepare_prompt("   ")
    with pytest.raises(ValueError, match="unknown prompt rule"):
        prepare_prompt("x", "last_word")


def test_profiles_and_metrics_import_without_torch():
    code = (
        "import sys; import mme3dr.features, mme3dr.metrics; "
        "from mme3dr.features import get_profile; get_profile('paper'); "
        "bad = [m for m in ('torch', 'open_clip', 'transformers') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
