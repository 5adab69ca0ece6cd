"""``mme3dr compare RUN_A RUN_B [RUN_C …]``: paired differences of finished runs (docs/evaluate.md)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

COMPARE_HELP = """Is run B really better than run A? Paired comparison of finished runs on the same cases.

The first run is the baseline. Samples pair up by (case_id, sample_index). Per-sample metrics (CLIP, \
judge): mean difference, paired bootstrap 95% CI over cases and a sign-flip permutation p-value. KD \
and FD: the difference with a CI from resampling cases jointly, from the features the runs stored. \
Overall and per category. With three or more runs the p-values are Holm-adjusted. Runs that differ in \
manifest, protocol, profile, rig or encoders are refused.

Example:

  mme3dr compare runs/baseline runs/mine
  mme3dr compare runs/baseline runs/mine --json > delta.json
"""


def _fmt(x: float | None) -> str:
    if x is None:
        return ""
    return f"{x:+.4g}" if abs(x) >= 1e-3 or x == 0 else f"{x:+.3e}"


def _print_tables(console, doc: dict) -> None:
    from rich.table import Table

    from mme3dr.compare.text import metric_title, sentence

    for comp in doc["comparisons"]:
        title = (f"{comp['label']} − {doc['baseline_label']}: {comp['paired']} of "
                 f"{max(comp['baseline_samples'], comp['run_samples'])} samples pair up")
        table = Table(title=title)
        for col in ("metric", "group", "Δ", "95% CI", "p", "n"):
            table.add_column(col, justify="left" if col in ("metric", "group") else "right")
        for metric, groups in comp["metrics"].items():
            arrow = "↑" if comp["higher_is_better"][metric] else "↓"
            for i, (group, s) in enumerate(groups.items()):
                significant = not (s["ci95_low"] <= 0 <= s["ci95_high"])
                delta = _fmt(s["delta"])
                table.add_row(f"{metric_title(metric)} {arrow}" if i == 0 else "", group,
                              f"[bold]{delta}[/]" if significant else delta,
                              f"[{_fmt(s['ci95_low'])}, {_fmt(s['ci95_high'])}]",
                              "" if s["p_value"] is None else f"{s['p_value']:.3g}", str(s["n_pairs"]))
            table.add_section()
        console.print(table)
        for metric, groups in comp["metrics"].items():
            if "overall" in groups:
                console.print(sentence(comp["label"], doc["baseline_label"], metric, groups["overall"],
                                       comp["higher_is_better"][metric], doc["correction"]),
                              highlight=False, soft_wrap=True)
    notes = ["Δ = run − baseline; bold: the 95% CI excludes 0. KD/FD: CI from resampling cases jointly "
             "(no p-value); n counts cases."]
    if doc["correction"] == "holm":
        notes.append(f"{len(doc['comparisons'])} comparisons with the baseline: p-values are "
                     "Holm-adjusted per metric and group (the raw ones are in --json as p_value_raw); "
                     "CIs are not adjusted.")
    for note in notes:
        console.print(note, style="dim", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``compare`` to the root app."""

    @app.command("compare", help=COMPARE_HELP)
    def compare_cmd(
        runs: list[Path] = typer.Argument(..., metavar="RUN_A RUN_B [RUN_C]",
                                          help="Finished run folders; the first is the baseline."),
        as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON for scripts."),
    ) -> None:
        from rich.console import Console
        from rich.markup import escape

        from mme3dr.compare import CompareError, compare_runs

        err = Console(stderr=True)

        def progress(line: str) -> None:  # stderr, so that --json and the tables stay clean on stdout
            err.print(f"compare: resampling {escape(line)}", style="dim", highlight=False, soft_wrap=True)

        try:
            doc = compare_runs(runs, progress=progress)
        except CompareError as e:
            err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        if as_json:
            typer.echo(json.dumps(doc, indent=2, sort_keys=True))
            return
        _print_tables(Console(), doc)
