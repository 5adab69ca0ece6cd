"""Profiles tell the evaluate stage what to do, as data (light module: no torch import)."""

from __future__ import annotations

import json
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


def test_raw_captions_column_prompt_source_reproduces_the_scripts_clip_text(tmp_path):
    """The authors' eval.py main() reads the CSV's ``captions`` column unparsed and cuts its first
    sentence, so the CLIP text of '["A deep red rose. …", …]' is '["A deep red rose'. Re-derived with
    the csv module and str.split, as the script does."""
    import csv

    from mme3dr.features.profiles import with_options

    raw = json.dumps(["A deep red rose with curled petals. It has thorns.", "A red rose."])
    path = tmp_path / "Toys4k.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([["sha256", "file_identifier", "captions"],
                                 ["0" * 64, "rose/rose_001.blend", raw]])
    with path.open(newline="") as f:
        column = next(csv.DictReader(f))["captions"]
    script_text = column.split(".")[0]
    assert script_text == '["A deep red rose with curled petals'

    script = get_profile("ar3d-r1-script")
    assert script.prompt_source == "case"  # default: the parsed prompt, not the quirk
    assert script.clip_text("A red rose.", column) == "A red rose"
    quirk = with_options(script, prompt_source="raw_captions_column")
    assert quirk.clip_text("A red rose.", column) == script_text
    assert quirk.to_dict()["prompt_source"] == "raw_captions_column"
    with pytest.raises(ValueError, match="needs the captions CSV's raw column"):
        quirk.clip_text("A red rose.", None)
    with pytest.raises(ValueError, match="use it with --profile ar3d-r1-script, not paper"):
        with_options(get_profile("paper"), prompt_source="raw_captions_column")
    with pytest.raises(ValueError, match="unknown prompt source"):
        with_options(script, prompt_source="raw")
