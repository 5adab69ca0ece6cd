"""`leaderboard build --preview BUNDLE`: the submitter's row among the entries, marked, registry untouched;
and the site's own "how to submit" page."""

from __future__ import annotations

import json
from pathlib import Path

from bundle_factory import make_run, submitter
from typer.testing import CliRunner

from leaderboard.cli import app
from leaderboard.pack import pack_run
from leaderboard.registry import iter_entries


def _registry_state(registry: Path) -> list[tuple[str, bytes]]:
    return sorted((str(p.relative_to(registry)), p.read_bytes()) for p in registry.rglob("*") if p.is_file())


def _build(*args: str):
    return CliRunner().invoke(app, ["build", *args])


def test_preview_shows_an_eligible_bundle_ranked_among_the_entries_and_changes_nothing(
        registry: Path, tmp_path: Path) -> None:
    run = make_run(tmp_path / "mine", seed=11, with_renders=False)
    bundle = tmp_path / "mine.tar.gz"
    pack_run(run, bundle, submitter(model_name="My New Model"))
    before = _registry_state(registry)
    result = _build("--registry", str(registry), "--out", str(tmp_path / "site"), "--preview", str(bundle))
    assert result.exit_code == 0, result.output
    assert "PREVIEW" in result.output
    assert _registry_state(registry) == before  # nothing filed
    index = (tmp_path / "site" / "index.html").read_text()
    assert index.count('class="preview"') == 1 and "My New Model" in index
    assert "Validation would accept this bundle" in index
    assert "Submissions: validated bundles and the previewed bundle (marked PREVIEW), best" in index
    data = json.loads((tmp_path / "site" / "leaderboard.json").read_text())
    rows = data["benchmarks"]["mme3dr-v1"]["submissions"]
    assert len(rows) == len(list(iter_entries(registry))) + 1
    mine = next(r for r in rows if r["model_name"] == "My New Model")
    assert mine["tier"] == "preview" and mine["preview"] == {"would_be_refused_for": []}
    page = tmp_path / "site" / mine["page"]
    assert "PREVIEW" in page.read_text()


def test_preview_of_an_ineligible_bundle_is_shown_with_every_reason_it_would_be_refused(
        registry: Path, tmp_path: Path) -> None:
    run = make_run(tmp_path / "smoke", profile="smoke", seed=7, with_renders=False)
    bundle = tmp_path / "smoke.tar.gz"
    pack_run(run, bundle, submitter(model_name="Smoke Model"))
    result = _build("--registry", str(registry), "--out", str(tmp_path / "site"), "--preview", str(bundle))
    assert result.exit_code == 0, result.output
    index = (tmp_path / "site" / "index.html").read_text()
    assert "Validation would <strong>refuse</strong> this bundle" in index
    assert "never leaderboard-eligible" in index and "would be refused" in index


def test_preview_of_something_that_is_not_a_bundle_is_one_clear_error(registry: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not an archive")
    result = _build("--registry", str(registry), "--out", str(tmp_path / "site"), "--preview", str(junk))
    assert result.exit_code == 1
    assert "nothing to preview" in result.output and "Traceback" not in result.output
    missing = _build("--registry", str(registry), "--out", str(tmp_path / "s2"), "--preview",
                     str(tmp_path / "nope.tar.gz"))
    assert missing.exit_code == 1 and "no such bundle" in missing.output


def test_every_page_links_the_sites_own_how_to_submit_page(site: Path) -> None:
    guide = site / "how-to-submit.html"
    assert guide.is_file()
    text = guide.read_text()
    assert "<h1>" in text and "mme3dr submit" in text  # docs/leaderboard.md, rendered
    for page in (site / "index.html", *site.glob("submissions/*/*/index.html")):
        html = page.read_text()
        assert 'how-to-submit.html"' in html, page
