"""CLI commands of the evaluate stage: ``mme3dr evaluate``, ``mme3dr merge``, ``mme3dr report``.

``mme3dr evaluate``'s options are generated from :class:`mme3dr.harness.config.EvalConfig`
(``mme3dr.cli.options.config_command``); the command builds the config, runs
``mme3dr.harness.evaluate`` (judge and report are stages of it) and prints. Results go to stdout;
progress, warnings and errors to stderr, so ``mme3dr evaluate ... > log.txt`` keeps the results.
Heavy imports (torch, moderngl, matplotlib) happen inside the command bodies so ``mme3dr --help`` is fast.
"""

from __future__ import annotations

from pathlib import Path

import typer

from mme3dr.cli.options import config_command, error_exit, user_errors

EVALUATE_HELP = """Evaluate a text-to-3D model on a benchmark and write results.json + samples.jsonl.

The harness owns prompts, seeds, file names, rendering and scoring; the adapter (--model) only turns \
requests into 3D files. Re-running with --resume skips every finished sample and cached render. \
Guide: docs/evaluate.md.

The default profile is paper (the protocol): it needs the encoder weights (`mme3dr weights download`). \
Offline, check the pipeline with --profile smoke (tiny random encoders: numbers that test the pipeline, \
not scores).

Examples:

  mme3dr evaluate --model primitives --benchmark demo --profile smoke --out runs/demo

  mme3dr evaluate --model folder:gen/ --benchmark mme3dr-v1 --toys4k toys4k_blend_files.zip \
--captions Toys4k.csv --profile paper --out runs/mymodel
"""


def _stage_progress(console):
    """A rich progress display with one bar per pipeline stage; returns (progress, callback)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("[bold]{task.description:<18}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console)
    tasks: dict[str, int] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=max(total, 1))
        progress.update(tasks[stage], completed=done, total=max(total, 1))

    return progress, update


def _fmt(values: dict, m: str) -> tuple[str, str]:
    v = values.get(m)
    if v is None:
        return "", ""
    if f"{m}_ci95_low" in values:
        return f"{v:.2f}", f"[{values[f'{m}_ci95_low']:.2f}, {values[f'{m}_ci95_high']:.2f}]"
    if f"{m}_std" in values:
        return f"{v:.4g}", f"± {values[f'{m}_std']:.2g}"
    return f"{v:.4g}", ""


def _summary_tables(results: dict):
    """Two narrow tables (fit 80 columns): overall metrics, then CLIP per category."""
    from rich.table import Table

    bench = results["benchmark"]["name"]
    res = results["results"]
    hib = next(iter(results["higher_is_better"].values()), {})
    overall = res.get(bench, {})
    title = f"{results['model_info']['name']} on {bench} ({overall.get('n', 0)} scored, "
    title += f"{overall.get('n_failed', 0)} failed)"
    top = Table(title=title)
    for col, justify in (("metric", "left"), ("value", "right"), ("95% CI / std", "right")):
        top.add_column(col, justify=justify)
    for m in hib:
        if m in overall:
            top.add_row(f"{m} {'↑' if hib[m] else '↓'}", *_fmt(overall, m))
    per_cat = Table(title="per category")
    for col in ("category", "n", "failed", "clip", "95% CI", "reference_clip"):
        per_cat.add_column(col, justify="left" if col == "category" else "right")
    for cat in results["benchmark"]["categories"]:
        v = res.get(f"{bench}/{cat}")
        if v is not None:
            per_cat.add_row(cat, str(v.get("n", 0)), str(v.get("n_failed", 0)), *_fmt(v, "clip"),
                            _fmt(v, "reference_clip")[0])
    return top, per_cat


def _report_outcome(console, results: dict, out: Path) -> int:
    """The results on ``console`` (stdout): tables, failures, eligibility, files; returns the exit code."""
    from mme3dr.features.profiles import pipeline_check_note

    note = pipeline_check_note(results["profile"])
    if note:
        console.print(f"[bold yellow]{note}[/]", soft_wrap=True)
    for table in _summary_tables(results):
        console.print(table)
    if results["failures"]:
        console.print("failures: " + ", ".join(f"{k} × {v}" for k, v in results["failures"].items())
                      + f"  (details in {out / 'samples.jsonl'})")
    if not results["leaderboard_eligible"]:
        console.print("[yellow]not leaderboard-eligible:[/] " + "; ".join(results["ineligible_reasons"]))
    console.print(f"wrote {out / 'results.json'} and {out / 'samples.jsonl'}")
    overall = next(iter(results["results"].values()))
    if overall.get("n", 0) == 0:
        console.print("[red]every sample failed[/]: nothing could be scored. See the failure reasons above "
                      f"and each sample's failure_detail in {out / 'samples.jsonl'}.")
        return 1
    return 0


def run_evaluate(cfg) -> None:
    """``mme3dr evaluate``: run ``cfg`` through the harness and print the outcome (exit 0, or 1 when
    every sample failed)."""
    from rich.console import Console

    from mme3dr.harness.evaluate import evaluate
    from mme3dr.render.pool import reuse_freed_memory

    err, console = Console(stderr=True), Console(soft_wrap=True)
    reuse_freed_memory()  # this process encodes every render: see its docstring
    progress, update = _stage_progress(err)
    try:
        with user_errors(err, cfg.out), progress:
            summary = evaluate(cfg, progress=update)
    except KeyboardInterrupt:  # Ctrl-C: everything finished is kept; say how to go on (exit 130)
        err.print(f"interrupted: what finished is kept in {cfg.out}; continue with the same command and "
                  "--resume", soft_wrap=True, markup=False, highlight=False)
        raise typer.Exit(130) from None
    if summary.shard_only:
        console.print(f"shard {cfg.shard_index} of {cfg.num_shards} done: {summary.n_ok} scored, "
                      f"{summary.n_failed} failed. When every shard is done: "
                      f"mme3dr merge SHARD_DIRS... --out DIR")
        return
    code = _report_outcome(console, summary.results, cfg.out)
    if summary.judge_failures:
        console.print(f"judge failures ({', '.join(sorted(summary.judge_failures))}): details in "
                      f"{cfg.out / 'judge.jsonl'}")
    if summary.report_path is not None:
        console.print(f"report: {summary.report_path}")
    if summary.judge_error:  # as `mme3dr judge` with no answer: exit 1
        err.print(f"error: {summary.judge_error}", soft_wrap=True, markup=False, highlight=False)
        code = code or 1
    raise typer.Exit(code)


def merge(
    shards: list[Path] = typer.Argument(..., help="Shard run directories (every --shard-index once)."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the merged results."),
    report: bool = typer.Option(True, "--report/--no-report", help="Write the HTML report and plots."),
) -> None:
    """Combine `--num-shards` runs into one results.json, identical to a single run's."""
    from rich.console import Console

    from mme3dr.harness.merge import finalize

    err, console = Console(stderr=True), Console(soft_wrap=True)
    with user_errors(err, out):
        results = finalize(shards, out)
    code = _report_outcome(console, results, out)
    if report and code == 0:
        _write_report(console, out, shard_dirs=shards)
    raise typer.Exit(code)


def report(
    run_dir: Path = typer.Argument(..., help="A run directory with results.json and samples.jsonl."),
) -> None:
    """Write per-category bar and radar charts (PNG) and an HTML report into RUN_DIR/report/."""
    from rich.console import Console

    if not (run_dir / "results.json").is_file():
        error_exit(Console(stderr=True), f"{run_dir / 'results.json'} not found; run `mme3dr evaluate --out "
                   f"{run_dir}` first")
    _write_report(Console(soft_wrap=True), run_dir)


def _write_report(console, run_dir: Path, shard_dirs: list[Path] | None = None) -> None:
    from mme3dr.report import write_report

    index = write_report(run_dir, shard_dirs=shard_dirs)
    console.print(f"report: {index}")


def register(app: typer.Typer) -> None:
    """Add ``evaluate``, ``merge`` and ``report`` to the root app."""
    from mme3dr.harness.config import EvalConfig

    app.command("evaluate", help=EVALUATE_HELP)(config_command(EvalConfig, run_evaluate, EVALUATE_HELP))
    app.command("merge")(merge)
    app.command("report")(report)
