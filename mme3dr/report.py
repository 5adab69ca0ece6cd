"""``mme3dr report RUN_DIR``: per-category charts (PNG) and an HTML page of every case.

Light: matplotlib (Agg), pillow and jinja2; no torch, no renderer. It reads ``results.json``,
``samples.jsonl`` and, for thumbnails, the render directories that ``shard.json`` points at (views from
the render cache). Output: ``RUN_DIR/report/{index.html, category_bars.png, category_radar.png,
thumbs/*.png}``. The HTML is rendered with autoescaping, so a prompt can never inject markup.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mme3dr.results import load_results, read_samples, shard_render_dirs

__all__ = ["category_rows", "plot_category_bars", "plot_category_radar", "write_report"]

THUMB_VIEWS = (0, 8, 16)  # three views spread around the object (eval24 Hammersley order)
THUMB_SIZE = 128
SHEET_TILE = 96  # px per view on a case's all-views sheet (opened on demand in the page)
SHEET_COLUMNS = 6
#: Legend lines for report columns that are not metric classes.
EXTRA_LEGEND = {
    "reference_clip": "CLIP of the reference object's renders against the same prompt: the ceiling a "
                      "model could reach on these prompts (over every case of the benchmark)",
    "n": "assets scored", "failed": "samples that failed (their reasons are in the Status column)",
}

#: The page template (jinja2, autoescaped), shipped as package data beside this module.
TEMPLATE_FILE = Path(__file__).with_name("report_template.html.j2")


def category_rows(results: dict[str, Any], metric: str = "clip", *,
                  include_empty: bool = False) -> list[tuple[str, float, float, float]]:
    """``[(category, value, ci_low, ci_high)]`` from ``results["results"]`` for the per-category tasks.

    With ``include_empty`` every benchmark category is listed, in taxonomy order, and one with nothing
    scored gets ``nan`` values (the charts show it as an empty slot rather than dropping it)."""
    bench = results["benchmark"]["name"]
    rows = []
    # Taxonomy order (results.json itself is written with sorted keys).
    for cat in results["benchmark"]["categories"]:
        v = results["results"].get(f"{bench}/{cat}", {})
        if v.get(metric) is not None:
            rows.append((cat, v[metric], v.get(f"{metric}_ci95_low", v[metric]),
                         v.get(f"{metric}_ci95_high", v[metric])))
        elif include_empty:
            rows.append((cat, math.nan, math.nan, math.nan))
    return rows


def _empty_categories(results: dict[str, Any], metric: str) -> set[str]:
    return {c for c, v, _, _ in category_rows(results, metric, include_empty=True) if math.isnan(v)}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_category_bars(results: dict[str, Any], path: Path,
                       metrics=("clip", "reference_clip")) -> Path | None:
    """Grouped bars per category with 95% CI whiskers; ``None`` when there is nothing to plot."""
    series = {m: category_rows(results, m, include_empty=True) for m in metrics}
    series = {m: rows for m, rows in series.items() if any(not math.isnan(v) for _, v, _, _ in rows)}
    if not series:
        return None
    plt = _pyplot()
    empty = _empty_categories(results, metrics[0])
    cats = [c for c, *_ in next(iter(series.values()))]
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    width = 0.8 / len(series)
    for k, (m, rows) in enumerate(series.items()):
        by_cat = {c: (v, lo, hi) for c, v, lo, hi in rows}
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(cats))]
        vals = [by_cat.get(c, (math.nan,) * 3) for c in cats]
        ax.bar(xs, [v for v, _, _ in vals], width, label=m,
               yerr=[[v - lo for v, lo, _ in vals], [hi - v for v, _, hi in vals]], capsize=3)
    ax.set_xticks(range(len(cats)), [f"{c}\n(none scored)" if c in empty else c for c in cats])
    ax.set_ylabel("score (mean over assets, 95% CI)")
    ax.set_title(f"{results['model_info']['name']}: per-category scores")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_category_radar(results: dict[str, Any], path: Path, metric: str = "clip") -> Path | None:
    """Radar (spider) chart of one metric per category, with the reference ceiling when present."""
    rows = category_rows(results, metric, include_empty=True)
    if len(rows) < 3 or all(math.isnan(v) for _, v, _, _ in rows):
        return None  # a radar of fewer than three axes is not a shape
    plt = _pyplot()
    empty = _empty_categories(results, metric)
    cats = [c for c, *_ in rows]
    angles = [2 * math.pi * i / len(cats) for i in range(len(cats))] + [0.0]
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=110, subplot_kw={"projection": "polar"})
    for m, style in ((metric, "-o"), (f"reference_{metric}", "--")):
        vals = {c: v for c, v, _, _ in category_rows(results, m)}
        if vals:  # an empty category is a gap in the line (nan), not a zero
            ys = [vals.get(c, math.nan) for c in cats]
            ax.plot(angles, ys + ys[:1], style, label=m)
    ax.set_xticks(angles[:-1], [f"{c}\n(none scored)" if c in empty else c for c in cats])
    ax.set_title(f"{metric} per category", pad=18)
    ax.legend(fontsize=7, loc="lower right", bbox_to_anchor=(1.15, -0.1))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _tiles(views: list[Path], size: int) -> list:
    """Each view composited on white (as every metric sees them), resized to ``size`` px."""
    from PIL import Image

    tiles = []
    for v in views:
        with Image.open(v) as im:
            rgba = im.convert("RGBA")
            canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            canvas.alpha_composite(rgba)
            tiles.append(canvas.convert("RGB").resize((size, size), Image.Resampling.LANCZOS))
    return tiles


def _sheet(views: list[Path], out: Path, size: int, columns: int) -> bool:
    """``views`` tiled row by row, ``columns`` per row, into one PNG; False when there is no view."""
    from PIL import Image

    if not views:
        return False
    tiles = _tiles(views, size)
    rows = math.ceil(len(tiles) / columns)
    sheet = Image.new("RGB", (size * min(columns, len(tiles)), size * rows), "white")
    for k, tile in enumerate(tiles):
        sheet.paste(tile, ((k % columns) * size, (k // columns) * size))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return True


def _thumbnail(render_dir: Path, out: Path) -> bool:
    """A strip of ``THUMB_VIEWS`` composited on white (as every metric sees them)."""
    views = [v for v in (render_dir / f"{i:03d}.png" for i in THUMB_VIEWS) if v.is_file()]
    return _sheet(views, out, THUMB_SIZE, len(THUMB_VIEWS))


def _all_views(render_dir: Path, out: Path) -> bool:
    """Every view of a render (``000.png``, ``001.png``, ...), ``SHEET_COLUMNS`` to a row."""
    return _sheet(sorted(render_dir.glob("[0-9][0-9][0-9].png")), out, SHEET_TILE, SHEET_COLUMNS)


def _attach_images(samples: list[dict], render_dirs: dict[str, str], out: Path) -> None:
    """Set each sample's ``gen_thumb``/``ref_thumb`` and ``gen_views``/``ref_views`` (page-relative paths)."""
    for s in samples:
        for side, sha_key in (("gen", "render_sha256"), ("ref", "reference_render_sha256")):
            sha = s.get(sha_key)
            s[f"{side}_thumb"] = s[f"{side}_views"] = None
            if not (sha and sha in render_dirs):
                continue
            for key, folder, make in (("thumb", "thumbs", _thumbnail), ("views", "views", _all_views)):
                image = out / folder / f"{sha[:20]}.png"
                if image.is_file() or make(Path(render_dirs[sha]), image):
                    s[f"{side}_{key}"] = f"{folder}/{image.name}"


def _legend(names: list[str]) -> list[tuple[str, str]]:
    """``[(name, meaning)]`` for the page's columns: the metric classes' own descriptions."""
    from mme3dr.metrics.definitions import METRICS

    out = []
    for name in names:
        cls = METRICS.get(name)
        text = cls.description if cls is not None else EXTRA_LEGEND.get(name)
        if text:
            out.append((name, text))
    return out


def _pipeline_check_note(profile_name: str) -> str | None:
    """The banner for a profile whose numbers are not scores (``MetricProfile.pipeline_check_only``)."""
    from mme3dr.features.profiles import pipeline_check_note

    return pipeline_check_note(profile_name)


def write_report(run_dir: str | Path, *, shard_dirs: list[Path] | None = None) -> Path:
    """Write ``RUN_DIR/report/`` and return the path of ``index.html``."""
    from jinja2 import Environment

    run_dir = Path(run_dir)
    results = load_results(run_dir / "results.json").model_dump(by_alias=True, mode="json")
    samples = [s.model_dump(mode="json") for s in read_samples(run_dir / "samples.jsonl")]
    out = run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    charts = [p.name for p in (plot_category_bars(results, out / "category_bars.png"),
                               plot_category_radar(results, out / "category_radar.png")) if p]
    _attach_images(samples, shard_render_dirs([run_dir, *(shard_dirs or [])]), out)
    hib = next(iter(results["higher_is_better"].values()), {})
    overall = next(iter(results["results"].values()), {})
    metrics = [m for m in hib if m in overall]
    sample_metrics = sorted({k for s in samples for k in s["metrics"]})
    env = Environment(autoescape=True)
    html = env.from_string(TEMPLATE_FILE.read_text(encoding="utf-8")).render(
        title=f"{results['model_info']['name']} on {results['benchmark']['name']}", r=results, hib=hib,
        metrics=metrics, samples=samples, sample_metrics=sample_metrics, charts=charts,
        legend=_legend([*metrics, *(m for m in sample_metrics if m not in metrics), "n", "failed"]),
        smoke_note=_pipeline_check_note(results["profile"]),
        files=[f for f in ("results.json", "samples.jsonl", "judge.jsonl") if (run_dir / f).is_file()],
    )
    index = out / "index.html"
    index.write_text(html, encoding="utf-8")
    return index
