"""`mme3dr report`: charts and an HTML page that escapes whatever a prompt contains."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from test_results import SHA, minimal_results

from mme3dr import report
from mme3dr.results import Results, SampleRecord, dump_results, write_samples

CATS = ["spatial", "mechanical", "biological"]


def _run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    views = tmp_path / "views"
    views.mkdir()
    for i in range(24):  # the eval24 rig's views
        rgba = np.zeros((32, 32, 4), np.uint8)
        rgba[8:24, 8:24] = (255, 0, 0, 255)
        Image.fromarray(rgba).save(views / f"{i:03d}.png")
    samples = [
        SampleRecord(case_id=f"c{k}", category=cat, sample_index=0, seed=k,
                     prompt="<script>alert(1)</script>", prompt_sha256=SHA, status="ok",
                     metrics={"clip": 10.0 + k, "reference_clip": 12.0},
                     render_sha256="a" * 64, reference_render_sha256="b" * 64)
        for k, cat in enumerate(CATS)
    ]
    sha = write_samples(samples, run / "samples.jsonl")
    results = minimal_results(samples_sha256=sha)
    results["benchmark"]["categories"] = CATS
    results["higher_is_better"] = {"mme3dr-demo": {"clip": True, "reference_clip": True}}
    for k, cat in enumerate(CATS):
        results["results"][f"mme3dr-demo/{cat}"] = {
            "clip": 10.0 + k, "clip_ci95_low": 9.0 + k, "clip_ci95_high": 11.0 + k, "reference_clip": 12.0,
            "n": 1,
        }
    dump_results(Results.model_validate(results), run / "results.json")
    dirs = {"a" * 64: str(views), "b" * 64: str(views)}
    (run / "shard.json").write_text(json.dumps({"render_dirs": dirs}))
    return run


def test_report_writes_charts_thumbnails_and_escaped_html(tmp_path: Path):
    run = _run_dir(tmp_path)
    index = report.write_report(run)
    html = index.read_text()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    for chart in ("category_bars.png", "category_radar.png"):
        assert chart in html and Image.open(run / "report" / chart).size[0] > 200
    thumbs = list((run / "report" / "thumbs").glob("*.png"))
    assert len(thumbs) == 2 and Image.open(thumbs[0]).size == (3 * report.THUMB_SIZE, report.THUMB_SIZE)
    # composited on white, as the metrics see the views
    assert Image.open(thumbs[0]).getpixel((2, 2)) == (255, 255, 255)


def test_category_rows_follow_taxonomy_order(tmp_path: Path):
    run = _run_dir(tmp_path)
    results = json.loads((run / "results.json").read_text())
    assert [r[0] for r in report.category_rows(results)] == CATS  # not the sorted key order of the file


def test_categories_with_nothing_scored_stay_in_the_charts(tmp_path: Path, monkeypatch):
    run = _run_dir(tmp_path)
    results = json.loads((run / "results.json").read_text())
    results["benchmark"]["categories"] = [*CATS, "stylized"]  # nothing scored there
    assert [r[0] for r in report.category_rows(results)] == CATS
    rows = report.category_rows(results, include_empty=True)
    assert [r[0] for r in rows] == [*CATS, "stylized"] and np.isnan(rows[-1][1])

    labels = []
    plt = report._pyplot()
    real_close = plt.close

    def close(fig):  # read each chart's category labels before the figure goes
        labels.append([t.get_text() for t in fig.axes[0].get_xticklabels()])
        real_close(fig)

    monkeypatch.setattr(plt, "close", close)
    assert report.plot_category_bars(results, tmp_path / "bars.png")
    assert report.plot_category_radar(results, tmp_path / "radar.png")
    for chart in labels:
        assert chart[:3] == CATS and chart[3] == "stylized\n(none scored)"


def test_cases_table_has_a_fixed_layout_that_fits_the_page(tmp_path: Path):
    html = report.write_report(_run_dir(tmp_path)).read_text()
    assert '<table class="cases" id="cases">' in html and "table.cases{table-layout:fixed;width:100%}" in html
    assert "max-width:1200px" in html
    # a long metric name breaks after its underscore instead of running into the status title
    assert '<th class="sortable" data-type="num">reference_<wbr>clip</th>' in html
    assert "table.cases th{overflow-wrap:anywhere}" in html


def test_smoke_numbers_carry_a_banner_that_says_they_are_not_scores(tmp_path: Path):
    run = _run_dir(tmp_path)
    html = report.write_report(run).read_text()
    assert 'id="pipeline-check"' in html and "they are not scores" in html
    results = json.loads((run / "results.json").read_text())
    results["profile"] = "paper"
    (run / "results.json").write_text(json.dumps(results))
    assert 'id="pipeline-check"' not in report.write_report(run).read_text()


def test_report_names_the_run_and_links_its_files_and_explains_each_column(tmp_path: Path):
    run = _run_dir(tmp_path)
    html = report.write_report(run).read_text()
    assert "2026-01-01T00:00:00Z" in html  # the run's date
    assert 'href="../results.json"' in html and 'href="../samples.jsonl"' in html
    assert "revision <code>" in html
    from mme3dr.metrics.definitions import ClipScore

    assert f"<dt>clip</dt><dd>{ClipScore.description}</dd>" in html.replace("&#39;", "'")
    assert "<dt>reference_clip</dt>" in html


def test_each_sample_links_a_sheet_of_all_its_views(tmp_path: Path):
    run = _run_dir(tmp_path)
    html = report.write_report(run).read_text()
    sheets = sorted((run / "report" / "views").glob("*.png"))
    assert len(sheets) == 2 and 'src="views/' in html and "<summary>all views</summary>" in html
    size = report.SHEET_TILE
    assert Image.open(sheets[0]).size == (report.SHEET_COLUMNS * size, 24 // report.SHEET_COLUMNS * size)
