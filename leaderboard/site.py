"""Build the static leaderboard site: index, one page per submission, JSON + CSV exports.

Pure output of its inputs: the same rows give the same bytes (sorted iteration, no build timestamp),
so the published site can be rebuilt and diffed. Jinja2 autoescapes every value (model names and
descriptions are untrusted text) and every bidirectional control character (a right-to-left override
would show "Shape\u202eX" reversed) is replaced by U+FFFD on the pages and in the CSV; the pages load
nothing from the network and read without JavaScript, which only adds column sorting
(``static/sort.js``).

A build is all or nothing: every registry entry is re-checked first (``published_run_problems``), the
site is written into a fresh folder beside ``--out`` and swapped in only when complete, so a refused
entry (named in the error) or a crash leaves the previous site as it was.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from leaderboard.charts import bar_chart
from leaderboard.names import neutralise_bidi
from leaderboard.reference_rows import PAPER_BENCHMARKS, PAPER_CITATION, reference_rows
from leaderboard.rows import TIERS, LeaderboardRow, MetricFact, metric_number, rank_rows, row_from_reference

#: Column order of the index tables; metrics not listed here follow in name order.
METRIC_ORDER: tuple[str, ...] = ("clip", "kd_incep", "kd_dinov2", "fd_incep", "fd_dinov2")
#: Display only (label, decimals); ranking direction always comes from the metric facts.
_DISPLAY: dict[str, tuple[str, int]] = {
    "clip": ("CLIP", 2), "kd_incep": ("KD_incep", 3), "kd_dinov2": ("KD_dinov2", 2),
    "fd_incep": ("FD_incep", 1), "fd_dinov2": ("FD_dinov2", 1),
}
PRIMARY_METRIC = "clip"


def metric_fact(name: str, higher_is_better: bool) -> MetricFact:
    label, decimals = _DISPLAY.get(name, (name, 3))
    return MetricFact(name=name, label=label, higher_is_better=higher_is_better, decimals=decimals)


def paper_metric_facts() -> dict[str, bool]:
    """``higher_is_better`` for the paper's columns, from the metric classes (``mme3dr.metrics``).

    Used for the paper's rows and when no submission supplies the facts for a benchmark (numpy only:
    ``mme3dr.metrics`` imports no torch).
    """
    from mme3dr.metrics import METRICS

    return {name: bool(cls.higher_is_better) for name, cls in METRICS.items() if cls.leaderboard_eligible}


@dataclass
class _RowView:
    """A row plus what only the site needs (page link, tier rank, copied thumbnails)."""

    row: LeaderboardRow
    page: str
    tier_rank: int
    thumbnails: list[dict] = field(default_factory=list)
    #: 95% bootstrap rank interval among the rows on the same cases (None: no comparable rows).
    rank_interval: tuple[int, int] | None = None
    #: Whether the next row's difference from this one is significant (None: not comparable).
    differs_from_next: bool | None = None

    def __getattr__(self, name: str):
        return getattr(self.row, name)


@dataclass
class _BenchmarkView:
    name: str
    title: str
    rows: list[_RowView]
    paper_rows: list[LeaderboardRow]
    columns: list[MetricFact]
    category_columns: list[MetricFact]
    paper_columns: list[MetricFact]
    default_fact: MetricFact


def _finalize(value):
    """Every ``{{ }}`` value on a page: bidi controls neutralised (before autoescaping)."""
    from markupsafe import Markup

    if isinstance(value, Markup):
        return Markup(neutralise_bidi(str(value)))
    return neutralise_bidi(value) if isinstance(value, str) else value


def _environment():
    import jinja2

    loader = jinja2.FileSystemLoader(str(resources.files("leaderboard") / "templates"))
    # Autoescape every template (.j2 included): all text shown comes from submitters.
    env = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=False, lstrip_blocks=False, keep_trailing_newline=True,
                             finalize=_finalize)
    env.filters["metric_number"] = metric_number
    return env


#: The site's copy of the project's submission guide (docs/leaderboard.md), linked from every page.
SUBMIT_PAGE = "how-to-submit.html"
SUBMIT_DOC = Path(__file__).resolve().parents[1] / "docs" / "leaderboard.md"


def _how_to_submit_page(env, protocol_version: str) -> str:
    """docs/leaderboard.md as a page of the site (CommonMark through markdown-it-py, which rich already
    brings; raw HTML in the markdown is escaped, not passed through). An installed wheel has no docs/
    folder: the page then names the guide and the commands instead."""
    from markdown_it import MarkdownIt
    from markupsafe import Markup

    text = SUBMIT_DOC.read_text("utf-8") if SUBMIT_DOC.is_file() else (
        "# How to submit\n\nThe guide is `docs/leaderboard.md` in the mme3dr repository. In short: "
        "`mme3dr evaluate` with `--profile paper`, then `mme3dr submit RUN_DIR --out BUNDLE.tar.gz`, then "
        "`leaderboard build --preview BUNDLE.tar.gz --out preview/` to see your row, then send the bundle.\n")
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
    return env.get_template("how_to_submit.html.j2").render(root="", protocol_version=protocol_version,
                                                            body=Markup(body))


def _page_path(row: LeaderboardRow) -> str:
    return f"submissions/{row.benchmark}/{row.slug}/index.html"


def _benchmark_order(names: set[str]) -> list[str]:
    known = [b for b in PAPER_BENCHMARKS if b in names]
    return known + sorted(names - set(known))


def _facts_for(rows: list[LeaderboardRow]) -> dict[str, bool]:
    """The ranked columns of a benchmark and their direction.

    Columns are the leaderboard metrics (metric classes marked ``leaderboard_eligible``) that some row
    reports, or all of them when there is no row yet; diagnostics such as ``reference_clip`` are not
    ranked. Directions come from the metric classes; validation has checked that every submission's
    ``higher_is_better`` agrees with them.
    """
    known = paper_metric_facts()
    present = {k for r in rows for k in r.metrics}
    names = [k for k in known if k in present] if rows else list(known)
    return {k: known[k] for k in names}


def build_site(rows: list[LeaderboardRow], out: Path, *, category_labels: dict[str, str],
               protocol_version: str, include_paper: bool = True,
               schema_files: list[Path] = ()) -> list[Path]:
    """Write the site into ``out`` (replacing a previous build only when the new one is complete);
    return the written files.

    ``category_labels``: category id -> display name, in display order.
    """
    out = Path(out).absolute()
    # Replace a previous build only: never delete a folder that is not one (e.g. `--out .`).
    previous = out.is_dir() and (not any(out.iterdir()) or (out / "leaderboard.json").is_file())
    if out.exists() and not previous:
        raise ValueError(f"{out} exists and is not a previous leaderboard build (no leaderboard.json); "
                             "pass a new or empty folder to --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    try:
        written = _write_site(rows, stage, category_labels=category_labels, protocol_version=protocol_version,
                              include_paper=include_paper, schema_files=schema_files)
        _swap_in(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return [out / p.relative_to(stage) for p in written]


def _swap_in(stage: Path, out: Path) -> None:
    """Put the finished ``stage`` folder at ``out``; a previous build there is removed afterwards."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{stage.name.rsplit('-', 1)[-1]}")
        out.rename(old)
    stage.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_site(rows: list[LeaderboardRow], out: Path, *, category_labels: dict[str, str],
                protocol_version: str, include_paper: bool, schema_files: list[Path]) -> list[Path]:
    (out / "static").mkdir(parents=True)
    env = _environment()
    written: list[Path] = []

    def emit(rel: str, text: str) -> None:
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)

    for name in ("site.css", "sort.js"):
        shutil.copyfile(str(resources.files("leaderboard") / "static" / name), out / "static" / name)
        written.append(out / "static" / name)
    (out / "schema").mkdir()
    for schema in schema_files:
        shutil.copyfile(schema, out / "schema" / Path(schema).name)
        written.append(out / "schema" / Path(schema).name)
    emit("schema/index.html", env.get_template("schema_index.html.j2").render(
        root="../", protocol_version=protocol_version, files=sorted(Path(s).name for s in schema_files)))

    names = {r.benchmark for r in rows} | (set(PAPER_BENCHMARKS) if include_paper else set())
    benches = _benchmark_order(names)
    views: list[_BenchmarkView] = []
    for bench in benches:
        bench_rows = [r for r in rows if r.benchmark == bench and not r.is_reference]
        hib = _facts_for(bench_rows)
        ordered = sorted(hib, key=lambda k: (METRIC_ORDER.index(k) if k in METRIC_ORDER else 99, k))
        columns = [metric_fact(k, hib[k]) for k in ordered]
        primary = metric_fact(PRIMARY_METRIC, hib.get(PRIMARY_METRIC, True))
        # Short headers (the category id); the chart and the header's tooltip use the full name.
        cat_columns = [MetricFact(f"cat:{c}", c.capitalize(), primary.higher_is_better, primary.decimals)
                       for c in category_labels
                       if any(c in r.per_category for r in bench_rows)]
        paper = [row_from_reference(r) for r in reference_rows(bench)] if include_paper else []
        paper_columns = [c for c in columns if any(c.name in r.metrics for r in paper)]
        row_views = []
        for row in rank_rows(bench_rows, primary):
            page = _page_path(row)
            thumbs = []
            for src in row.thumbnails:
                dest = Path(page).parent / "thumbnails" / Path(src).name
                (out / dest).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, out / dest)
                written.append(out / dest)
                thumbs.append({"src": f"thumbnails/{Path(src).name}", "caption": Path(src).stem})
            tier_rank = TIERS.index(row.tier) if row.tier in TIERS else -1
            row_views.append(_RowView(row, page, tier_rank, thumbs))
        _add_rank_intervals(row_views, primary)
        views.append(_BenchmarkView(bench, PAPER_BENCHMARKS.get(bench, bench), row_views, paper, columns,
                                    cat_columns, paper_columns, primary))
        for view in row_views:
            chart = bar_chart(f"{view.model_name}: CLIP per category",
                              {c: view.per_category[c] for c in category_labels if c in view.per_category},
                              category_labels, decimals=primary.decimals)
            emit(view.page, env.get_template("submission.html.j2").render(
                root="../../../", protocol_version=protocol_version, row=view, columns=columns, chart=chart))

    emit(SUBMIT_PAGE, _how_to_submit_page(env, protocol_version))
    emit("index.html", env.get_template("index.html.j2").render(
        root="", protocol_version=protocol_version, benchmarks=views, paper_citation=PAPER_CITATION,
        previews=[v for b in views for v in b.rows if v.is_preview]))
    emit("leaderboard.json", leaderboard_json(views, protocol_version))
    emit("leaderboard.csv", leaderboard_csv(views))
    return written


def _add_rank_intervals(views: list[_RowView], fact: MetricFact) -> None:
    """Set ``rank_interval`` and ``differs_from_next`` on rows sharing manifest, protocol and profile
    (they scored the same cases), from their per-case CLIP (``leaderboard.rank_intervals``)."""
    from leaderboard.rank_intervals import adjacent_significant, case_matrix, rank_intervals
    from mme3dr.metrics import get_metric

    cls = get_metric(fact.name)
    boot = {"n": cls.bootstrap_resamples, "seed": cls.bootstrap_seed, "level": cls.bootstrap_level}
    groups: dict[tuple, list[int]] = {}
    for i, v in enumerate(views):
        if v.row.case_scores:
            groups.setdefault((v.row.manifest_sha256, v.row.protocol_version, v.row.profile), []).append(i)
    for members in groups.values():
        cases, scores = case_matrix([views[i].row.case_scores for i in members])
        if len(members) < 2 or len(cases) < 2:
            continue
        for i, interval in zip(members, rank_intervals(scores, fact.higher_is_better, **boot), strict=True):
            views[i].rank_interval = interval
        significant = adjacent_significant(scores, list(range(len(members))), **boot)
        for k, (i, j) in enumerate(zip(members, members[1:], strict=False)):
            if j == i + 1:  # neighbours in the displayed table
                views[i].differs_from_next = significant[k]


def _row_record(view: _RowView | LeaderboardRow, rank: int | None) -> dict:
    row = view.row if isinstance(view, _RowView) else view
    record = {
        "rank": rank, "model_name": row.model_name, "revision": row.revision, "tier": row.tier,
        "generated_by": row.generated_by, "scored_by": row.scored_by, "date": row.date,
        "metrics": {k: {f: getattr(v, f) for f in ("value", "ci_low", "ci_high", "std")}
                    for k, v in sorted(row.metrics.items())},
    }
    if row.is_preview:
        record["preview"] = {"would_be_refused_for": list(row.preview_problems)}
    if row.is_reference:
        record["note"] = row.source_note
    else:
        record.update({
            "per_category_clip": {k: v.value for k, v in row.per_category.items()},
            "page": view.page, "bundle_sha256": row.bundle_sha256, "profile": row.profile,
            "protocol_version": row.protocol_version, "manifest_sha256": row.manifest_sha256,
            "evaluator_relationship": row.evaluator_relationship, "link": row.link,
            "rank_ci95": list(view.rank_interval) if view.rank_interval else None,
            "differs_from_next": view.differs_from_next,
        })
    return record


def leaderboard_json(views: list[_BenchmarkView], protocol_version: str) -> str:
    """Machine-readable site content; paper rows live under their own key, never among submissions."""
    data = {"protocol_version": protocol_version, "benchmarks": {}}
    for v in views:
        data["benchmarks"][v.name] = {
            "title": v.title,
            "columns": [{"name": c.name, "label": c.label, "higher_is_better": c.higher_is_better}
                        for c in v.columns],
            "submissions": [_row_record(r, i) for i, r in enumerate(v.rows, start=1)],
            "paper_reference_rows": [_row_record(r, None) for r in v.paper_rows],
        }
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def _cell(text: str | None) -> str:
    # A cell starting with = + - @ is a formula to spreadsheets (CSV injection); quote it as text.
    text = "" if text is None else neutralise_bidi(str(text))
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def leaderboard_csv(views: list[_BenchmarkView]) -> str:
    """One line per submission (paper rows are left out: they are not verified results)."""
    metric_names = sorted({c.name for v in views for c in v.columns},
                          key=lambda k: (METRIC_ORDER.index(k) if k in METRIC_ORDER else 99, k))
    cat_names = sorted({c.name[4:] for v in views for c in v.category_columns})
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["benchmark", "rank", "model_name", "revision", "tier", "generated_by", "scored_by",
                     "date",
                     *metric_names, "clip_ci95_low", "clip_ci95_high", *[f"clip_{c}" for c in cat_names],
                     "bundle_sha256"])
    for v in views:
        for rank, r in enumerate(v.rows, start=1):
            clip = r.metrics.get(PRIMARY_METRIC)

            def num(mv):
                return "" if mv is None or not mv.finite else repr(float(mv.value))

            writer.writerow([v.name, rank, *map(_cell, (r.model_name, r.revision, r.tier, r.generated_by,
                                                           r.scored_by, r.date)),
                             *[num(r.metrics.get(m)) for m in metric_names],
                             "" if clip is None or clip.ci_low is None else repr(clip.ci_low),
                             "" if clip is None or clip.ci_high is None else repr(clip.ci_high),
                             *[num(r.per_category.get(c)) for c in cat_names], r.bundle_sha256 or ""])
    return buf.getvalue()


def build_from_registry(registry: Path, out: Path, *, include_paper: bool = True,
                        preview: Path | None = None) -> list[Path]:
    """Build the site from every entry of a submissions registry (``leaderboard build``).

    ``preview``: a submission bundle shown among the entries, marked as a preview
    (:mod:`leaderboard.preview`); the registry is not changed.
    """
    from leaderboard.registry import RegistryError, iter_entries, row_from_entry
    from leaderboard.schema_export import export_bundle_schemas
    from leaderboard.validate import published_run_problems
    from mme3dr import PROTOCOL_VERSION
    from mme3dr.benchmark.taxonomy import CATEGORIES
    from mme3dr.results import export_json_schemas

    rows = []
    for folder, entry in iter_entries(registry):
        problems = published_run_problems(folder)
        if problems:
            listed = "; ".join(str(p) for p in problems[:3]) + ("; …" if len(problems) > 3 else "")
            raise RegistryError(f"registry entry {folder} cannot be published ({len(problems)} problem(s): "
                                f"{listed}); remove or replace it. Nothing was built.")
        try:
            rows.append(row_from_entry(folder, entry))
        except (ValueError, OSError, KeyError, TypeError) as exc:
            raise RegistryError(f"registry entry {folder} cannot be published: {exc}. Nothing was built.") \
                from None
    with tempfile.TemporaryDirectory(prefix="mme3dr-schemas-") as tmp:
        if preview is not None:
            from leaderboard.preview import preview_row

            rows.append(preview_row(preview, registry, Path(tmp) / "preview"))
        schemas = export_json_schemas(tmp) + export_bundle_schemas(tmp)
        labels = {c.id: c.name for c in CATEGORIES}
        try:
            return build_site(rows, out, category_labels=labels, protocol_version=PROTOCOL_VERSION,
                              include_paper=include_paper, schema_files=schemas)
        except OSError as exc:  # e.g. a registry thumbnail that cannot be copied
            raise RegistryError(f"the site could not be built ({exc}); {out} is as it was") from None
