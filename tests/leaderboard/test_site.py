"""Registry and static site: filing, ordering, hostile text, paper rows, exports, reproducibility."""

from __future__ import annotations

import csv
import io
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from bundle_factory import make_run, submitter
from pydantic import ValidationError

from leaderboard.admission import add_bundle
from leaderboard.pack import pack_run
from leaderboard.registry import RegistryError, iter_entries
from leaderboard.rows import LeaderboardRow, MetricFact, MetricValue, rank_rows
from leaderboard.site import build_from_registry


class _Elements(HTMLParser):
    """Collects every start tag with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _elements(html: str) -> list[tuple[str, dict]]:
    parser = _Elements()
    parser.feed(html)
    return parser.tags


def test_registry_layout_is_benchmark_then_model_revision(registry: Path) -> None:
    folders = sorted(p.relative_to(registry).as_posix() for p, _ in iter_entries(registry))
    assert "mme3dr-v1/Synthetic-Tetra__r1" in folders and len(folders) == 3
    entry = registry / "mme3dr-v1" / "Synthetic-Tetra__r1"
    assert {p.name for p in entry.iterdir()} >= {"entry.json", "bundle.json", "results.json", "samples.jsonl"}
    assert len(list((entry / "thumbnails").glob("*.png"))) == 10


def test_same_asset_set_under_another_name_is_refused(registry: Path, run_template: Path,
                                                      tmp_path: Path) -> None:
    bundle = tmp_path / "renamed.tar.gz"
    pack_run(run_template, bundle, submitter(model_name="Totally Different Model"))
    with pytest.raises(RegistryError, match="same asset set is already on the leaderboard as 'Synthetic"):
        add_bundle(bundle, registry)


def test_existing_entry_is_not_overwritten_without_replace(registry: Path, good_bundle: Path) -> None:
    with pytest.raises(RegistryError, match="already exists; pass --replace"):
        add_bundle(good_bundle, registry)


def test_ineligible_bundle_is_not_added(tmp_path: Path) -> None:
    run = make_run(tmp_path / "smoke", profile="smoke", seed=7, with_renders=False)
    pack_run(run, tmp_path / "smoke.tar.gz", submitter(model_name="Smoke"))
    with pytest.raises(RegistryError, match="never leaderboard-eligible"):
        add_bundle(tmp_path / "smoke.tar.gz", tmp_path / "reg")
    assert not (tmp_path / "reg" / "mme3dr-v1").exists()


def test_javascript_link_is_refused_at_submission() -> None:
    with pytest.raises(ValidationError, match="https://"):
        submitter(link="javascript:alert(1)")


def test_index_lists_submissions_best_clip_first(site: Path) -> None:
    data = json.loads((site / "leaderboard.json").read_text())
    subs = data["benchmarks"]["mme3dr-v1"]["submissions"]
    clips = [s["metrics"]["clip"]["value"] for s in subs]
    assert len(subs) == 3 and clips == sorted(clips, reverse=True)
    assert [s["rank"] for s in subs] == [1, 2, 3]
    columns = {c["name"]: c["higher_is_better"] for c in data["benchmarks"]["mme3dr-v1"]["columns"]}
    assert columns == {"clip": True, "kd_incep": False, "kd_dinov2": False, "fd_incep": False,
                       "fd_dinov2": False}


def test_hostile_text_renders_as_text_not_markup(site: Path) -> None:
    index = (site / "index.html").read_text()
    page = next(site.glob("submissions/mme3dr-v1/*script*/index.html")).read_text()
    for html in (index, page):
        tags = _elements(html)
        # The only script is our own sort.js; no injected <b>, <img onerror> or inline script.
        scripts = [a.get("src") for t, a in tags if t == "script"]
        assert scripts in (["static/sort.js"], ["../../../static/sort.js"])
        assert not any(t == "b" for t, _ in tags)
        assert not any("onerror" in a for _, a in tags)
        assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in page  # the description, shown literally


def test_pages_load_nothing_from_the_network(site: Path) -> None:
    for html_path in site.rglob("*.html"):
        for tag, attrs in _elements(html_path.read_text()):
            for attr in ("src", "href"):
                url = attrs.get(attr) or ""
                if tag == "a":
                    continue  # plain links are navigation, not loaded assets
                assert not url.startswith(("http:", "https:", "//")), (html_path, tag, url)


def test_paper_rows_are_separate_and_marked(site: Path) -> None:
    index = (site / "index.html").read_text()
    assert index.count("reported in paper, not verified") >= 1
    data = json.loads((site / "leaderboard.json").read_text())
    bench = data["benchmarks"]["mme3dr-v1"]
    assert {r["model_name"] for r in bench["paper_reference_rows"]} >= {"AR3D-R1", "TRELLIS"}
    assert all("not verified" in r["note"] for r in bench["paper_reference_rows"])
    assert not {r["model_name"] for r in bench["submissions"]} & {"AR3D-R1", "TRELLIS"}
    rows = list(csv.DictReader(io.StringIO((site / "leaderboard.csv").read_text())))
    assert len(rows) == 3 and not any(r["model_name"] == "AR3D-R1" for r in rows)
    # Formula injection is neutralised in the CSV; the text itself is kept.
    assert any(r["model_name"].startswith("<script>") for r in rows)


def test_submission_page_has_chart_thumbnails_and_metric_card(site: Path) -> None:
    page_dir = site / "submissions" / "mme3dr-v1" / "Synthetic-Tetra__r1"
    html = (page_dir / "index.html").read_text()
    tags = _elements(html)
    assert sum(t == "rect" for t, _ in tags) == 5  # one bar per category
    imgs = [a["src"] for t, a in tags if t == "img"]
    assert len(imgs) == 10 and all((page_dir / src).is_file() for src in imgs)
    assert "clip-vit-b-32-openai" in html or "open_clip:ViT-B-32/openai" in html
    assert (site / "schema" / "bundle.schema.json").is_file()
    assert (site / "schema" / "results.schema.json").is_file()


def test_site_build_is_byte_reproducible(registry: Path, site: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    build_from_registry(registry, again)
    files = sorted(p.relative_to(site) for p in site.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert all((site / f).read_bytes() == (again / f).read_bytes() for f in files)


def test_ranking_follows_higher_is_better() -> None:
    def row(name: str, kd: float | None) -> LeaderboardRow:
        metrics = {} if kd is None else {"kd_incep": MetricValue(kd)}
        return LeaderboardRow("b", name, "r", name, "self-reported", "x", "x", "2026-01-01", metrics)

    rows = [row("a", 0.3), row("b", None), row("c", 0.1), row("d", 0.2)]
    lower = rank_rows(rows, MetricFact("kd_incep", "KD", higher_is_better=False))
    higher = rank_rows(rows, MetricFact("kd_incep", "KD", higher_is_better=True))
    assert [r.model_name for r in lower] == ["c", "d", "a", "b"]  # missing values last either way
    assert [r.model_name for r in higher] == ["a", "d", "c", "b"]


def test_build_refuses_to_replace_a_folder_that_is_not_a_site(registry: Path, tmp_path: Path) -> None:
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("keep me")
    with pytest.raises(ValueError, match="not a previous leaderboard build"):
        build_from_registry(registry, precious)
    assert (precious / "thesis.tex").read_text() == "keep me"


def test_a_number_the_columns_decimals_would_show_as_zero_keeps_two_significant_digits() -> None:
    from leaderboard.rows import metric_number

    assert metric_number(4.5e-07, 3) == "4.5e-07"  # the demo's KD_incep, once shown as "0.000"
    assert metric_number(1.4e-4, 1) == "1.4e-04"
    assert metric_number(0.217, 3) == "0.217" and metric_number(26.5, 2) == "26.50"
    assert metric_number(0.0, 3) == "0.000" and metric_number(-3e-9, 3) == "-3.0e-09"
